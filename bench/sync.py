"""Sync cost: ours (``services.sync_models``) against a naive ``update_or_create`` loop.

Each figure comes from its own pass over an emptied table, so that no instrument skews another:
time without tracemalloc or query capture, peak memory under tracemalloc alone, and the query
count under ``CaptureQueriesContext`` alone (on SQLite it re-quotes every parameter).
"""

from __future__ import annotations

import gc
import json
import os
import time
import tracemalloc
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path
from typing import Any

import requests
import responses
from django.apps import apps
from django.core.management.color import no_style
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext, override_settings
from django.utils import timezone

from models_sync import bulk, openrouter, services
from models_sync.models import LLMModel, ModelChange, RecordText, SyncRun
from models_sync.openrouter import ParsedModel

API_URL = "https://openrouter.ai/api/v1/models"
FIXTURES = Path(
    os.environ.get(
        "OPENROUTER_FIXTURES", Path(__file__).resolve().parents[2] / "shared/fixtures/openrouter"
    )
)
FIXTURE_FILES = {
    100: "models-2024-02-18.json",
    321: "models-2025-06-17.json",
    414: "models-2026-08-19.json",
}
MIB = 1024 * 1024
# The app refuses bodies over 32 MiB by default; a 100 000-model catalogue is 156 MiB.
BENCH_SETTINGS: dict[str, Any] = {
    "MODELS_SYNC_API_URL": API_URL,
    "MODELS_SYNC_API_KEY": "",
    "MODELS_SYNC_RETRIES": 0,
    "MODELS_SYNC_BACKOFF_FACTOR": 0,
    "MODELS_SYNC_MAX_RETRY_AFTER": 0,
    "MODELS_SYNC_MAX_RESPONSE_BYTES": 1024 * MIB,
    "MODELS_SYNC_WEBHOOKS": [],
}


def fixture_body(size: int, fixtures: Path = FIXTURES) -> bytes:
    return (fixtures / FIXTURE_FILES[size]).read_bytes()


def synthetic_body(size: int, fixtures: Path = FIXTURES) -> bytes:
    """The 2026 records repeated under unique ids ``bench/model-N``, compact like the live API."""
    base = json.loads(fixture_body(414, fixtures))["data"]
    records = [{**base[i % len(base)], "id": f"bench/model-{i}"} for i in range(size)]
    return json.dumps({"data": records}, separators=(",", ":")).encode()


def catalogue_body(size: int, fixtures: Path = FIXTURES) -> bytes:
    return fixture_body(size, fixtures) if size in FIXTURE_FILES else synthetic_body(size, fixtures)


@contextmanager
def mocked_upstream(body: bytes) -> Iterator[None]:
    """OpenRouter answers ``body`` to every GET; nothing leaves the machine."""
    with (
        override_settings(**BENCH_SETTINGS),
        responses.RequestsMock(assert_all_requests_are_fired=False) as mock,
    ):
        mock.add(responses.GET, API_URL, body=body, status=200, content_type="application/json")
        yield


def wipe() -> None:
    """Empty the app's tables the way ``flush`` does: DELETE on SQLite, TRUNCATE on PostgreSQL,
    where deleted rows would stay as dead tuples that every later sequential scan reads.
    """
    tables = [model._meta.db_table for model in apps.get_app_config("models_sync").get_models()]
    if connection.in_atomic_block:  # a test's transaction: TRUNCATE meets pending FK checks
        with connection.cursor() as cursor:
            for table in tables:
                cursor.execute(f"DELETE FROM {connection.ops.quote_name(table)}")
    else:
        connection.ops.execute_sql_flush(connection.ops.sql_flush(no_style(), tables))
    services.invalidate_model_cache()


def ours() -> None:
    services.sync_models(trigger="cli")


def naive() -> None:
    """What a first attempt writes: fetch, ``json.loads`` the body, validate every record with
    our parser, then one ``update_or_create`` per model and one UPDATE per vanished model. Run
    in one transaction, as ours, so the comparison is per-row queries against bulk queries and
    not per-row commits (which would be far slower).
    """
    response = requests.get(API_URL, timeout=(5, 30))
    response.raise_for_status()
    ordered = _naive_read(response.content)
    now = timezone.now()
    with transaction.atomic():
        for rank, model in enumerate(ordered, start=1):
            values = {
                **services._row_values(model),  # the same column values as ours
                "quality_rank": rank,
                "is_available": True,
                "last_seen_at": now,
            }
            LLMModel.objects.update_or_create(
                **_identity(model.model_id),
                defaults=values,
                create_defaults={**values, "first_seen_at": now},
            )
        seen = {m.model_id for m in ordered}
        for model_id in LLMModel.objects.filter(is_available=True, **_catalogue()).values_list(
            "model_id", flat=True
        ):
            if model_id not in seen:
                LLMModel.objects.filter(**_identity(model_id)).update(is_available=False)


def _naive_read(body: bytes) -> list[ParsedModel]:
    """The naive loop's reading: the whole body decoded at once, validated, sorted."""
    parsed = openrouter.parse_models(json.loads(body)["data"])
    return sorted(
        parsed.models,
        key=lambda m: services.sort_key(m.author, m.context_length, m.name, m.model_id),
    )


@dataclass(slots=True)
class FloorFigures:
    """A first sync cut down to what no sync can skip: the naive loop's fetch and reading, then
    the insert ours uses (``bulk.insert``) of the very rows ours writes (models, then their
    ``added`` changelog rows, built as ours builds them) and the commit. Everything else ours
    does (the run's row, the lease, content hashes, the availability query, the checks before
    writing, a streamed walk instead of ``json.loads``) is left out: ours' time minus this is
    its cost."""

    read_seconds: float = 0.0  # the fetch (mocked), json.loads, validation, the sort
    rows_seconds: float = 0.0  # building and inserting the model rows, and the commit
    changelog_seconds: float = 0.0

    @property
    def seconds(self) -> float:
        return self.read_seconds + self.rows_seconds + self.changelog_seconds


def bare_write(body: bytes) -> FloorFigures:
    """One floor pass into an emptied table (see ``FloorFigures``), upstream mocked with
    ``body`` (``mocked_upstream``); leaves the rows behind."""
    # Untimed: the record texts ours stores as raw, of the records ours keeps.
    document = openrouter.read_document(body)
    texts = {
        entry.model_id: RecordText(document.text_at(entry.start, entry.end))
        for entry in openrouter.scan_document(document)
    }
    del document
    run = SyncRun.objects.create(started_at=timezone.now(), trigger=SyncRun.Trigger.CLI)
    gc.collect()
    with services._cyclic_gc_paused():  # as ours: a floor is measured at its best
        return _timed_bare_write(texts, run)


def _timed_bare_write(texts: dict[str, RecordText], run: SyncRun) -> FloorFigures:
    now = run.started_at
    start = time.perf_counter()
    response = requests.get(API_URL, timeout=(5, 30))
    response.raise_for_status()
    ordered = _naive_read(response.content)
    del response
    read_done = time.perf_counter()
    with transaction.atomic():
        rows = [
            {
                **services._row_values(model),
                "raw": texts[model.model_id],
                "quality_rank": rank,
                "availability": 1.0 if model.is_free else 0.0,  # listed free in 1 run of 1
                "source": "openrouter",
                "model_id": model.model_id,
                "first_seen_at": now,
                "last_seen_at": now,
            }
            for rank, model in enumerate(ordered, start=1)
        ]
        keys = []
        for batch in services._batched(rows, services.BATCH_SIZE):
            keys += bulk.insert(LLMModel, batch)
        rows_done = time.perf_counter()
        added = [
            services._change(
                run,
                pk,
                m.model_id,
                m.author,
                ModelChange.Kind.ADDED,
                None,
                services._snapshot(m.name, m.is_free, m.context_length, m.price_signature),
            )
            for pk, m in zip(keys, ordered, strict=True)
        ]
        for batch in services._batched(added, services.BATCH_SIZE):
            bulk.insert(ModelChange, batch)
        changelog_done = time.perf_counter()
    committed = time.perf_counter()
    return FloorFigures(
        read_seconds=read_done - start,
        rows_seconds=(rows_done - read_done) + (committed - changelog_done),
        changelog_seconds=changelog_done - rows_done,
    )


def _catalogue() -> dict[str, str]:
    """OpenRouter's rows: the table holds several catalogues, unique by (source, model_id)."""
    fields = {f.name for f in LLMModel._meta.get_fields()}
    return {"source": "openrouter"} if "source" in fields else {}


def _identity(model_id: str) -> dict[str, str]:
    return {**_catalogue(), "model_id": model_id}


@dataclass(slots=True)
class SyncFigures:
    """One implementation at one size: a first sync into an empty table, then an unchanged one."""

    first_seconds: float = 0.0
    resync_seconds: float = 0.0
    first_queries: int | None = None
    resync_queries: int | None = None
    first_peak_mib: float | None = None
    resync_peak_mib: float | None = None
    # ``bare_write`` beside ours (``Plan(floor=True)``): the pass with the lowest total; not
    # ours' figures, but kept here so that they come from the same turns.
    floor_seconds: float | None = None
    floor_read_seconds: float | None = None
    floor_rows_seconds: float | None = None
    floor_changelog_seconds: float | None = None


def _timed(sync: Callable[[], None]) -> float:
    gc.collect()
    start = time.perf_counter()
    sync()
    return time.perf_counter() - start


def _peak_mib(sync: Callable[[], None]) -> float:
    gc.collect()
    tracemalloc.start()
    try:
        sync()
        return tracemalloc.get_traced_memory()[1] / MIB
    finally:
        tracemalloc.stop()


def _queries(sync: Callable[[], None]) -> int:
    with CaptureQueriesContext(connection) as captured:
        sync()
    return len(captured)


@contextmanager
def _counting_queries() -> Iterator[list[int]]:
    """A bare counter for the naive loop: capturing its SQL would cost more than the loop."""
    count = [0]

    def wrapper(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        count[0] += 1
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        yield count


def _time_pair(sync: Callable[[], None]) -> tuple[float, float]:
    wipe()
    return _timed(sync), _timed(sync)


@dataclass(frozen=True, slots=True)
class Plan:
    """What to measure on one catalogue: ``repeats`` turns of ours, the naive baseline in the
    first ``baseline_repeats`` of them (all when None), a ``bare_write`` floor in each with
    ``floor``; after the turns, a peak-memory pass with ``memory``, and the query counts."""

    body: bytes
    repeats: int = 1
    baseline: bool = True
    baseline_repeats: int | None = None
    memory: bool = True
    floor: bool = False


@dataclass(slots=True)
class _Passes:
    plan: Plan
    ours: list[tuple[float, float]] = field(default_factory=list)
    naive: list[tuple[float, float]] = field(default_factory=list)
    naive_queries: tuple[int, int] | None = None
    floors: list[FloorFigures] = field(default_factory=list)


def measure(body: bytes, **plan: Any) -> tuple[SyncFigures, SyncFigures | None]:
    """Ours and (optionally) the naive baseline on one catalogue (``Plan`` for the options)."""
    return measure_together([Plan(body, **plan)])[0]


def measure_together(plans: Sequence[Plan]) -> list[tuple[SyncFigures, SyncFigures | None]]:
    """Several catalogues in the same turns; for each, ours' figures and the baseline's.

    Times are the best of the plan's turns; in a turn, every catalogue's pair of ours (a first
    sync into an emptied table, then an unchanged one) runs first, one after the other, then
    each catalogue's floor and baseline. So load from other processes, which only ever adds
    time, hits ours and the baseline alike, and the passes of two sizes are a minute apart, not
    a quarter of an hour: the VM's speed moves by half in that time, which a ratio of two
    sizes would read as scaling. Then, per catalogue, ours' peak memory and its queries, each
    in its own pass; the baseline's queries are counted in its first timed pair.
    """
    all_passes = [_Passes(plan) for plan in plans]
    for turn in range(max((plan.repeats for plan in plans), default=0)):
        active = [passes for passes in all_passes if turn < passes.plan.repeats]
        for passes in active:
            with mocked_upstream(passes.plan.body):
                passes.ours.append(_time_pair(ours))
        for passes in active:
            _extras(passes, turn)
    return [_figures(passes) for passes in all_passes]


def _extras(passes: _Passes, turn: int) -> None:
    """A turn's floor and baseline passes of one catalogue."""
    plan = passes.plan
    with mocked_upstream(plan.body):
        if plan.floor:
            wipe()
            passes.floors.append(bare_write(plan.body))
        if not plan.baseline or turn >= (plan.baseline_repeats or plan.repeats):
            return
        if turn:
            passes.naive.append(_time_pair(naive))
            return
        wipe()
        with _counting_queries() as first:
            first_seconds = _timed(naive)
        with _counting_queries() as resync:
            passes.naive.append((first_seconds, _timed(naive)))
        passes.naive_queries = (first[0], resync[0])


def _figures(passes: _Passes) -> tuple[SyncFigures, SyncFigures | None]:
    plan = passes.plan
    figures = SyncFigures(
        first_seconds=min(t[0] for t in passes.ours),
        resync_seconds=min(t[1] for t in passes.ours),
    )
    if passes.floors:
        best = min(passes.floors, key=attrgetter("seconds"))
        figures.floor_seconds = best.seconds
        figures.floor_read_seconds = best.read_seconds
        figures.floor_rows_seconds = best.rows_seconds
        figures.floor_changelog_seconds = best.changelog_seconds
    naive_figures = None
    if passes.naive:
        first_queries, resync_queries = passes.naive_queries or (None, None)
        naive_figures = SyncFigures(
            first_seconds=min(t[0] for t in passes.naive),
            resync_seconds=min(t[1] for t in passes.naive),
            first_queries=first_queries,
            resync_queries=resync_queries,
        )
    with mocked_upstream(plan.body):
        if plan.memory:
            wipe()
            figures.first_peak_mib = _peak_mib(ours)
            figures.resync_peak_mib = _peak_mib(ours)
        wipe()
        figures.first_queries = _queries(ours)
        figures.resync_queries = _queries(ours)
        wipe()
    return figures, naive_figures
