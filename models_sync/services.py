"""Sync, cache tiers and stats: the one place every face (command, admin, API, task) calls."""

from __future__ import annotations

import dataclasses
import gc
import json
import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable, Container, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache, partial
from itertools import islice
from operator import attrgetter
from typing import Any, NamedTuple, TypeVar

from django.core.cache import caches
from django.db import transaction
from django.db.models import Avg, Count, FloatField, Max, Model, Q, Subquery, Value
from django.utils import timezone

from . import bulk, catalogues, conf, openrouter
from .models import (
    UNSTABLE_BELOW,
    Favorite,
    HealthCheck,
    LLMModel,
    ModelChange,
    RecordText,
    SyncLock,
    SyncRun,
)
from .openrouter import ParsedModel, UpstreamError

logger = logging.getLogger("models_sync")

BATCH_SIZE = 500
# Parsed models a sync keeps between reading the answer and writing it (about 45 MiB); past
# that a record is only checked when read and parsed when written, so memory stays flat
# however large the catalogue.
KEEP_PARSED = 5_000
LOCK_NAME = "openrouter-sync"
CACHE_KEY = "models_sync:free-models:v2"
# Tier 1 entries are (generation, Catalogue); a sync rotates the generation after it commits.
GENERATION_KEY = "models_sync:free-models:generation"
# The columns taken from the upstream record (``_row_values``), then the ones a sync sets.
_ROW_FIELDS = (
    "canonical_slug",
    "name",
    "author",
    "description",
    "context_length",
    "input_modalities",
    "output_modalities",
    "has_vision",
    "supported_parameters",
    "parameters_text",
    "pricing",
    "is_free",
    "non_free_reason",
    "category",
    "created_upstream",
    "metadata",
    "raw",
)
SYNCED_FIELDS = (*_ROW_FIELDS, "content_hash", "quality_rank", "is_available", "availability")
T = TypeVar("T")
M = TypeVar("M", bound=Model)


class SyncError(Exception):
    """A sync that did not succeed; ``run`` is its recorded ``SyncRun``."""

    def __init__(self, message: str, *, run: SyncRun) -> None:
        super().__init__(message)
        self.message = message
        self.run = run


class SyncFailed(SyncError):
    """Upstream unreachable or its body unusable, or an unexpected error; no row changed."""


class SyncRefused(SyncError):
    """The answer looked wrong (empty, or most models gone); no row changed. ``force`` overrides."""


class SyncAlreadyRunning(SyncError):
    """Another sync holds the lock."""


class ModelsUnavailable(Exception):
    """No model can be served at all: upstream failed and the table is empty."""


class _Refusal(Exception):
    pass


@dataclass(slots=True)
class _Counts:
    added: int = 0
    updated: int = 0
    unavailable: int = 0
    restored: int = 0
    changes: int = 0


# --------------------------------------------------------------------------------------------
# Sync


def sync_models(
    *,
    trigger: str,
    source: str | None = None,
    force: bool = False,
    catalogue: str = catalogues.OPENROUTER,
) -> SyncRun:
    """Fetch, parse, classify and upsert a catalogue; record a ``SyncRun`` whatever happens.

    ``source`` replaces the catalogue's URL by another URL or a local snapshot file. The HTTP
    call happens before any transaction; the write is one transaction, under a lease lock so
    that only one sync writes at a time across processes.
    """
    reader = catalogues.get(catalogue)
    clock = time.monotonic()
    token = uuid.uuid4().hex
    with transaction.atomic():  # the run's row and the lease: one commit
        run = SyncRun.objects.create(
            started_at=timezone.now(),
            trigger=trigger,
            source=(source or reader.url())[:500],
            catalogue=catalogue,
            forced=force,
        )
        locked = _acquire_lock(token)
    if not locked:
        _finish(run, clock, SyncRun.Status.REFUSED, error="another sync is already running")
        raise SyncAlreadyRunning(run.error, run=run)
    try:
        with _cyclic_gc_paused():
            return _sync_locked(run, clock, token=token, source=source, force=force, reader=reader)
    except BaseException:
        _release_lock(token)  # freed already with the run's outcome, unless that failed
        raise


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """A sync allocates millions of acyclic objects (the parsed body, one ORM object per row);
    each full collection walks them all again, which made a 100 000-model sync quadratic (the
    benchmark measured 43 s of 82 s in the collector). Reference counting still frees them."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _sync_locked(
    run: SyncRun,
    clock: float,
    *,
    token: str,
    source: str | None,
    force: bool,
    reader: catalogues.Catalogue,
) -> SyncRun:
    try:
        fetched = openrouter.read_source(source) if source else openrouter.fetch(reader.url())
        run.http_status, run.upstream_latency_ms = fetched.status, fetched.latency_ms
        logger.info("[OpenRouter Sync] Parsing %d bytes", len(fetched.body))
        document = openrouter.read_document(fetched.body)
        del fetched  # the text is kept, not the bytes
        existing = _stored_rows(reader.name)
        entries, scan = _read_entries(document, reader=reader, existing=existing)
    except UpstreamError as exc:
        run.http_status = exc.status if exc.status is not None else run.http_status
        run.upstream_latency_ms = exc.latency_ms or run.upstream_latency_ms
        logger.error("[OpenRouter Sync] Sync failed: %s", exc.message)
        _finish(run, clock, SyncRun.Status.FAILED, error=exc.message, token=token)
        raise SyncFailed(exc.message, run=run) from exc
    except Exception as exc:
        logger.exception("[OpenRouter Sync] Unexpected error while reading the response")
        message = f"unexpected error while reading the response: {type(exc).__name__}: {exc}"
        _finish(run, clock, SyncRun.Status.FAILED, error=message[:2000], token=token)
        raise SyncFailed(message, run=run) from exc

    run.fetched_count = scan.fetched
    run.skipped_count = scan.skipped
    run.free_count = sum(1 for e in entries if e.is_free)
    logger.info("[OpenRouter Sync] Successfully fetched %d models", scan.fetched - scan.skipped)
    logger.info("[OpenRouter Sync] Found %d free models", run.free_count)
    try:
        with transaction.atomic():
            counts = _apply(
                entries,
                existing,
                run=run,
                token=token,
                force=force,
                source=reader.name,
                materialize=partial(_materialize, document=document, reader=reader),
            )
            _record_counts(run, counts, sorted(e.model_id for e in entries if e.is_free))
            # The models, the run's success and the lease's release commit together.
            _finish(run, clock, SyncRun.Status.SUCCESS, token=token)
    except _Refusal as exc:
        logger.warning("[OpenRouter Sync] Sync refused: %s", exc)
        _finish(run, clock, SyncRun.Status.REFUSED, error=str(exc), token=token)
        raise SyncRefused(str(exc), run=run) from exc
    except Exception as exc:
        logger.exception("[OpenRouter Sync] Writing the models failed; nothing was changed")
        message = f"writing the models failed: {type(exc).__name__}: {exc}"
        _record_counts(run, _Counts(), [])  # the write was rolled back
        _finish(run, clock, SyncRun.Status.FAILED, error=message[:2000], token=token)
        raise SyncFailed(message, run=run) from exc
    invalidate_model_cache()
    if counts.changes:
        _notify(run)
    logger.info(
        "[OpenRouter Sync] Sync done in %d ms: %d added, %d updated, %d unavailable, %d returned",
        run.duration_ms,
        counts.added,
        counts.updated,
        counts.unavailable,
        counts.restored,
    )
    return run


def _record_counts(run: SyncRun, counts: _Counts, free_ids: list[str]) -> None:
    run.added_count = counts.added
    run.updated_count = counts.updated
    run.unavailable_count = counts.unavailable
    run.restored_count = counts.restored
    run.changes_count = counts.changes
    run.free_ids = free_ids


def _materialize(
    entry: _Entry, *, document: openrouter.Document, reader: catalogues.Catalogue
) -> tuple[ParsedModel, RecordText | dict[str, Any]]:
    """The entry's model, and what to store as its upstream record: the text as received,
    unless a number in it is far out (``Document.far_numbers``; PostgreSQL's ``numeric``
    refuses ``1e-16384`` as written): then the record as Python decoded it, with a number
    beyond a float's range (``1e999``, infinite) as null, which JSON has."""
    model = entry.model or reader.parse_record(document.decode_at(entry.start))
    if entry.start not in document.far_numbers:
        return model, RecordText(document.text_at(entry.start, entry.end))
    return model, json.loads(json.dumps(model.raw), parse_constant=lambda _constant: None)


def _notify(run: SyncRun) -> None:
    """Tell subscribers; a failing receiver or webhook queue never fails the sync."""
    from .signals import models_changed

    changes = run.changes.order_by("pk")  # lazy: a receiver that needs only the run reads none
    for receiver, result in models_changed.send_robust(sender=SyncRun, run=run, changes=changes):
        if isinstance(result, Exception):
            logger.error(
                "[OpenRouter Sync] models_changed receiver %r failed: %s", receiver, result
            )
    if conf.webhooks():
        from .tasks import enqueue_webhooks

        try:
            enqueue_webhooks(run)
        except Exception:
            logger.exception("[OpenRouter Sync] Could not queue the webhooks of run %s", run.pk)


def _finish(
    run: SyncRun, clock: float, status: str, *, error: str = "", token: str | None = None
) -> None:
    """Record how the run ended; with ``token``, free the lease in the same commit."""
    run.status = status
    run.error = error
    run.finished_at = timezone.now()
    run.duration_ms = round((time.monotonic() - clock) * 1000)
    with transaction.atomic(savepoint=False):
        run.save()
        if token is not None:
            _release_lock(token)


def _acquire_lock(token: str, name: str = LOCK_NAME) -> bool:
    """Take the lease with one conditional UPDATE: atomic on every database, across machines."""
    now = timezone.now()
    free = SyncLock.objects.filter(Q(expires_at__isnull=True) | Q(expires_at__lt=now), name=name)
    lease = {"holder": token, "expires_at": now + timedelta(seconds=conf.lock_seconds())}
    if free.update(**lease) == 1:
        return True
    # Not taken: held by another sync, or the row is missing (a flushed table); make sure it
    # exists, then try once more.
    SyncLock.objects.get_or_create(name=name)
    return free.update(**lease) == 1


def _release_lock(token: str, name: str = LOCK_NAME) -> None:
    SyncLock.objects.filter(name=name, holder=token).update(holder="", expires_at=None)


def sync_is_running() -> bool:
    return SyncLock.objects.filter(
        name=LOCK_NAME, holder__gt="", expires_at__gte=timezone.now()
    ).exists()


def sort_key(
    author: str,
    context_length: int,
    name: str,
    model_id: str,
    *,
    known: Container[str] | None = None,
) -> tuple[Any, ...]:
    """The seed's order: known providers first (one group), then larger context, then name.

    ``known`` is ``conf.known_providers()``, read once by a caller that sorts many models."""
    if known is None:
        known = conf.known_providers()
    return (0 if author in known else 1, -context_length, name.casefold(), model_id)


def _row_values(model: ParsedModel) -> dict[str, Any]:
    return {
        "canonical_slug": model.canonical_slug,
        "name": model.name,
        "author": model.author[:100],
        "description": model.description,
        "context_length": model.context_length,
        "input_modalities": model.input_modalities,
        "output_modalities": model.output_modalities,
        "has_vision": model.has_vision,
        "supported_parameters": model.supported_parameters,
        "parameters_text": "|" + "|".join(model.supported_parameters) + "|",
        "pricing": model.pricing,
        "is_free": model.is_free,
        "non_free_reason": model.non_free_reason[:200],
        "category": model.category,
        "created_upstream": model.created_upstream,
        "metadata": model.metadata,
        "raw": model.raw,
    }


def _batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


@cache
def _constructor(
    model: type[Model],
) -> tuple[tuple[tuple[str, Callable[[], Any]], ...], frozenset[str]]:
    fields = tuple((f.attname, f.get_default) for f in model._meta.concrete_fields)
    return fields, frozenset(name for name, _default in fields)


def _instance(model: type[M], values: dict[str, Any]) -> M:
    """``model(**values)`` (keyed by attname) built by position, as ``Model.from_db`` builds the
    rows a query reads: the keyword path pops each field from the kwargs and raises a KeyError
    for each one missing, which was a sixth of the cost of writing a new row."""
    fields, names = _constructor(model)
    if not values.keys() <= names:
        unknown = ", ".join(sorted(values.keys() - names))
        raise TypeError(f"{model.__name__} has no field {unknown}")
    return model(*[values[name] if name in values else default() for name, default in fields])


def _snapshot(name: str, is_free: bool, context_length: int, prices: dict[str, str]):
    return {"name": name, "isFree": is_free, "contextLength": context_length, "pricing": prices}


def _field_changes(before: dict[str, Any], model: ParsedModel) -> list[tuple[str, Any, Any]]:
    """The kinds of change between a stored row and the new record, with before/after values."""
    changes: list[tuple[str, Any, Any]] = []
    if before["isFree"] != model.is_free:
        kind = ModelChange.Kind.BECAME_FREE if model.is_free else ModelChange.Kind.BECAME_PAID
        changes.append((kind, {"isFree": before["isFree"]}, {"isFree": model.is_free}))
    if before["name"] != model.name:
        changes.append((ModelChange.Kind.RENAMED, before["name"], model.name))
    if before["contextLength"] != model.context_length:
        changes.append(
            (ModelChange.Kind.CONTEXT_CHANGED, before["contextLength"], model.context_length)
        )
    prices = model.price_signature
    if before["pricing"] != prices:
        changes.append((ModelChange.Kind.PRICING_CHANGED, before["pricing"], prices))
    return changes


class _Stored(NamedTuple):
    """What the last syncs stored for one model, as the next sync needs it."""

    pk: int
    content_hash: str
    is_available: bool
    quality_rank: int
    is_free: bool
    author: str
    availability: float
    name: str
    context_length: int


def _stored_rows(source: str) -> dict[str, _Stored]:
    """Read under the lease, before the write transaction: no other sync writes these rows."""
    rows = LLMModel.objects.filter(source=source).values_list("model_id", *_Stored._fields)
    return {row[0]: _Stored._make(row[1:]) for row in rows}


@dataclass(slots=True)
class _Entry:
    """One usable record of the answer, as light as possible: a sync holds one per model."""

    model_id: str
    start: int
    end: int
    content_hash: str
    key: tuple[Any, ...]
    is_free: bool
    model: ParsedModel | None  # None: unchanged since the last sync, or to be parsed when written
    rank: int = 0


def _read_entries(
    document: openrouter.Document,
    *,
    reader: catalogues.Catalogue,
    existing: dict[str, _Stored],
) -> tuple[list[_Entry], openrouter.ModelScan]:
    """First pass, before any write: every record is read, so a broken body fails here; a
    record whose text is the one stored is not parsed again. At most ``KEEP_PARSED`` parsed
    models are kept for the writes, so that a huge catalogue is never held parsed whole: past
    them, a record is only checked (``record_facts``) and is parsed when it is written."""
    known = {model_id: row.content_hash for model_id, row in existing.items() if row.is_available}
    kept = 0

    def parse(record: Any) -> ParsedModel | openrouter.RecordFacts:
        return reader.parse_record(record) if kept < KEEP_PARSED else reader.record_facts(record)

    scan = openrouter.scan_document(document, parse=parse, known=known)
    providers = frozenset(conf.known_providers())
    entries: list[_Entry] = []
    for found in scan:
        facts = found.model
        if facts is None:  # unchanged: its sort key and free flag are the stored ones
            row = existing[found.model_id]
            key = sort_key(
                row.author, row.context_length, row.name, found.model_id, known=providers
            )
            is_free = row.is_free
        else:
            key = sort_key(
                facts.author, facts.context_length, facts.name, facts.model_id, known=providers
            )
            is_free = facts.is_free
        model = facts if isinstance(facts, ParsedModel) else None
        kept += model is not None
        entry = _Entry(
            found.model_id, found.start, found.end, found.content_hash, key, is_free, model
        )
        entries.append(entry)
    return entries, scan


def _apply(
    entries: list[_Entry],
    existing: dict[str, _Stored],
    *,
    run: SyncRun,
    token: str,
    force: bool,
    source: str,
    materialize: Callable[[_Entry], tuple[ParsedModel, RecordText | dict[str, Any]]],
) -> _Counts:
    now = run.started_at
    lock = SyncLock.objects.select_for_update().get(name=LOCK_NAME)
    if lock.holder != token:
        raise RuntimeError("the sync lock expired and was taken by another sync")
    shares = _availability_with(
        [e.model_id for e in entries if e.is_free], now=now, catalogue=source
    )
    seen = {e.model_id for e in entries}
    available_before = sum(1 for row in existing.values() if row.is_available)
    vanished = [(mid, row) for mid, row in existing.items() if row.is_available and mid not in seen]
    if not force:
        if not entries:
            raise _Refusal("upstream returned no models; nothing was changed (use force to accept)")
        limit = available_before * conf.max_unavailable_ratio()
        if available_before and len(vanished) > limit:
            raise _Refusal(
                f"the answer would mark {len(vanished)} of {available_before} available models "
                f"unavailable (more than {conf.max_unavailable_ratio():.0%}); nothing was changed "
                "(use force to accept)"
            )
    for rank, entry in enumerate(sorted(entries, key=attrgetter("key")), start=1):
        entry.rank = rank

    counts = _Counts(unavailable=len(vanished))
    for batch in _batched(entries, BATCH_SIZE):
        _write_batch(
            batch,
            existing,
            run=run,
            source=source,
            shares=shares,
            counts=counts,
            materialize=materialize,
        )
    gone = [
        _instance(
            LLMModel,
            {"id": row.pk, "quality_rank": row.quality_rank, "availability": share},
        )
        for mid, row in existing.items()
        if mid not in seen and row.availability != (share := shares.get(mid, 0.0))
    ]
    LLMModel.objects.bulk_update(gone, ["quality_rank", "availability"], batch_size=BATCH_SIZE)
    for batch in _batched([row.pk for _mid, row in vanished], BATCH_SIZE):
        LLMModel.objects.filter(pk__in=batch).update(is_available=False)
    # After the writes above, the available rows are exactly the ones this answer listed; the
    # rows this sync created carry its time already.
    LLMModel.objects.filter(source=source, is_available=True, last_seen_at__lt=now).update(
        last_seen_at=now
    )
    removed = [
        _change(run, row.pk, mid, row.author, ModelChange.Kind.REMOVED, {"isFree": row.is_free})
        for mid, row in vanished
    ]
    for batch in _batched(removed, BATCH_SIZE):
        bulk.insert(ModelChange, batch)
    counts.changes += len(removed)
    return counts


def _change(
    run: SyncRun, pk: int, model_id: str, author: str, kind: str, old: Any, new: Any = None
) -> dict[str, Any]:
    """A ``ModelChange`` row's values, for ``bulk.insert``."""
    return {
        "run_id": run.pk,
        "llm_model_id": pk,
        "model_id": model_id,
        "author": author[:100],
        "kind": kind,
        "before": old,
        "after": new,
        "timestamp": run.started_at,
    }


def _write_batch(
    batch: list[_Entry],
    existing: dict[str, _Stored],
    *,
    run: SyncRun,
    source: str,
    shares: dict[str, float],
    counts: _Counts,
    materialize: Callable[[_Entry], tuple[ParsedModel, RecordText | dict[str, Any]]],
) -> None:
    """Writes up to ``BATCH_SIZE`` models and their changes: a constant number of queries."""
    now = run.started_at
    to_create: list[tuple[dict[str, Any], ParsedModel]] = []
    to_update: list[tuple[LLMModel, ParsedModel, _Stored]] = []
    rank_only: list[LLMModel] = []
    for entry in batch:
        row = existing.get(entry.model_id)
        share = shares.get(entry.model_id, 0.0)
        if row is not None and row.is_available and row.content_hash == entry.content_hash:
            if (row.quality_rank, row.availability) != (entry.rank, share):
                rank = {"id": row.pk, "quality_rank": entry.rank, "availability": share}
                rank_only.append(_instance(LLMModel, rank))
            continue
        model, text = materialize(entry)
        values = {
            **_row_values(model),
            "raw": text,
            "content_hash": entry.content_hash,
            "quality_rank": entry.rank,
            "is_available": True,
            "availability": share,
        }
        if row is None:
            values |= {
                "source": source,
                "model_id": model.model_id,
                "first_seen_at": now,
                "last_seen_at": now,
            }
            to_create.append((values, model))
        else:
            to_update.append((_instance(LLMModel, {"id": row.pk, **values}), model, row))

    # The stored values of the rows whose record text changed: one query for the batch.
    changed = [row.pk for obj, _model, row in to_update if row.content_hash != obj.content_hash]
    stored: dict[int, dict[str, Any]] = {}
    if changed:
        for before in LLMModel.objects.filter(pk__in=changed).values("pk", *_ROW_FIELDS):
            stored[before["pk"]] = before

    created = bulk.insert(LLMModel, [values for values, _model in to_create])
    LLMModel.objects.bulk_update([obj for obj, _m, _r in to_update], SYNCED_FIELDS)
    LLMModel.objects.bulk_update(rank_only, ["quality_rank", "availability"])

    changes: list[dict[str, Any]] = []
    for (_values, model), pk in zip(to_create, created, strict=True):
        snap = _snapshot(model.name, model.is_free, model.context_length, model.price_signature)
        changes.append(
            _change(run, pk, model.model_id, model.author, ModelChange.Kind.ADDED, None, snap)
        )
    for obj, model, row in to_update:
        counts.restored += not row.is_available
        if not row.is_available:
            changes.append(
                _change(run, obj.pk, model.model_id, model.author, ModelChange.Kind.RETURNED, None)
            )
        if obj.pk in stored:
            before = stored[obj.pk]
            counts.updated += before["raw"] != model.raw or any(
                before[f] != getattr(obj, f) for f in _ROW_FIELDS if f != "raw"
            )
            snap = _snapshot(
                before["name"],
                before["is_free"],
                before["context_length"],
                openrouter.price_signature(before["pricing"]),
            )
            for kind, old, new in _field_changes(snap, model):
                changes.append(_change(run, obj.pk, model.model_id, model.author, kind, old, new))
        elif not row.is_available and row.is_free != model.is_free:
            kind = ModelChange.Kind.BECAME_FREE if model.is_free else ModelChange.Kind.BECAME_PAID
            changes.append(
                _change(run, obj.pk, model.model_id, model.author, kind, {"isFree": row.is_free})
            )
    bulk.insert(ModelChange, changes)
    counts.added += len(to_create)
    counts.changes += len(changes)


# --------------------------------------------------------------------------------------------
# Serving: app format, stats, cache tiers


def iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with milliseconds and a Z, as the seed's JavaScript ``toISOString``."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def to_app_format(
    model: LLMModel, *, new_since: datetime, catalogue_start: datetime | None
) -> dict[str, Any]:
    """The seed's ``convertToAppModel``, the contract of the API and ``--save``."""
    pricing = model.pricing if isinstance(model.pricing, dict) else {}
    return {
        "id": model.model_id,
        "name": model.name,
        "description": model.description,
        "provider": model.source,
        "source": model.source,
        "contextLength": model.context_length,
        "isFree": model.is_free,
        "category": model.category,
        "isNew": openrouter.is_new(
            model.created_upstream,
            model.first_seen_at,
            since=new_since,
            catalogue_start=catalogue_start,
        ),
        "features": {"rag": True, "vision": model.has_vision, "streaming": True},
        "pricing": {"prompt": pricing.get("prompt"), "completion": pricing.get("completion")},
        "metadata": model.metadata,
        "author": model.author,
        "canonicalSlug": model.canonical_slug,
        "inputModalities": model.input_modalities,
        "outputModalities": model.output_modalities,
        "supportedParameters": model.supported_parameters,
        "createdUpstream": iso(model.created_upstream),
        "firstSeen": iso(model.first_seen_at),
        "lastSeen": iso(model.last_seen_at),
        "available": model.is_available,
        "availability": round(model.availability, 4),
        "health": model.health or None,
        "unstable": model.is_free and model.availability < UNSTABLE_BELOW,
    }


def compute_stats(models: Sequence[dict[str, Any]], *, total_available: int) -> dict[str, Any]:
    """The seed API's stats over the served (free) models; zeros, never nulls, when empty."""
    contexts = [m["contextLength"] for m in models]
    by_provider = Counter(m["author"] for m in models)
    return {
        "total": len(models),
        "totalAvailable": total_available,
        "free": len(models),
        "byProvider": dict(sorted(by_provider.items(), key=lambda kv: (-kv[1], kv[0]))),
        "withVision": sum(1 for m in models if m["features"]["vision"]),
        "averageContextLength": round(sum(contexts) / len(contexts)) if contexts else 0,
        "maxContextLength": max(contexts, default=0),
        "minContextLength": min(contexts, default=0),
        "new": sum(1 for m in models if m["isNew"]),
        "byCategory": dict(Counter(m["category"] for m in models).most_common()),
    }


@dataclass(slots=True)
class Catalogue:
    """What the serving tiers return: the free models in order, with where they came from."""

    models: list[dict[str, Any]]
    total_available: int
    last_sync: datetime | None
    source: str  # memory | database | openrouter
    stale: bool = False
    error: str = ""
    built_at: datetime = field(default_factory=timezone.now)
    metrics: dict[str, Any] = field(default_factory=dict)
    # The unfiltered models encoded once (per process and generation), not on every GET.
    encoded: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def models_json(self) -> bytes:
        if "models" not in self.encoded:
            self.encoded["models"] = json.dumps(self.models, ensure_ascii=False).encode()
        return self.encoded["models"]

    @property
    def stats(self) -> dict[str, Any]:
        """The seed's stats, plus the sync metrics (success rate, latency, last success)."""
        return {
            **compute_stats(self.models, total_available=self.total_available),
            "sync": self.metrics,
        }


def _cache():
    return caches[conf.cache_alias()]


def load_catalogue_from_db(*, now: datetime | None = None) -> Catalogue:
    """Tier 2 in one query: the free available rows in order, with table-wide figures attached."""
    now = now or timezone.now()
    table = LLMModel.objects.order_by()
    available = table.filter(is_available=True)
    rows = list(
        LLMModel.objects.available()
        .free()
        .by_quality()
        .defer("raw")
        .annotate(
            catalogue_start=Subquery(table.order_by("first_seen_at").values("first_seen_at")[:1]),
            total_available=Subquery(
                available.values("is_available").annotate(n=Count("pk")).values("n")[:1]
            ),
            last_sync=Subquery(available.order_by("-last_seen_at").values("last_seen_at")[:1]),
            **_metric_subqueries(now),
        )
    )
    if not rows:
        summary = available.aggregate(n=Count("pk"), last=Max("last_seen_at"))
        return Catalogue(
            [], summary["n"], summary["last"], "database", built_at=now, metrics=sync_metrics()
        )
    first = rows[0]
    new_since = openrouter.new_since(now)
    models = [
        to_app_format(r, new_since=new_since, catalogue_start=first.catalogue_start) for r in rows
    ]
    return Catalogue(
        models=models,
        total_available=first.total_available or 0,
        last_sync=first.last_sync,
        source="database",
        built_at=now,
        metrics=_metrics(
            first.runs_total, first.runs_ok, first.mean_latency, first.last_success, now=now
        ),
    )


# This process's decoded copy of tier 1: (generation, expires at, catalogue). A hit then reads
# only the small generation key instead of unpickling the whole catalogue every time.
_memo: tuple[str, float, Catalogue] | None = None


def invalidate_model_cache() -> None:
    """Drop tier 1 for every process sharing the cache backend (one shared key).

    The generation changes first: a reader that loaded the rows before the sync committed and
    stores them afterwards tags them with the old generation, so no one serves them.
    """
    global _memo
    _memo = None
    cache = _cache()
    cache.set(GENERATION_KEY, uuid.uuid4().hex, None)
    cache.delete(CACHE_KEY)


def _remember(generation: str, catalogue: Catalogue, duration: float) -> None:
    """Keep a copy marked as served from memory; hits return it as is (callers never mutate)."""
    global _memo
    _memo = (
        generation,
        time.monotonic() + duration,
        dataclasses.replace(catalogue, source="memory"),
    )


def _tier_one(cache: Any) -> tuple[Catalogue | None, str | None]:
    """The cached catalogue of the current generation, if any, and that generation."""
    memo = _memo
    if memo is not None:
        generation = cache.get(GENERATION_KEY)
        if generation == memo[0] and time.monotonic() < memo[1]:
            return memo[2], generation
    found = cache.get_many([GENERATION_KEY, CACHE_KEY])
    generation, entry = found.get(GENERATION_KEY), found.get(CACHE_KEY)
    if (
        generation is not None
        and isinstance(entry, tuple)
        and len(entry) == 3
        and entry[0] == generation
    ):
        _remember(generation, entry[2], max(0, entry[1] - time.time()))
        return dataclasses.replace(entry[2], source="memory"), generation
    return None, generation


def _store(cache: Any, generation: str, catalogue: Catalogue, duration: int) -> None:
    cache.set(CACHE_KEY, (generation, time.time() + duration, catalogue), duration)
    _remember(generation, catalogue, duration)


def _generation(cache, known: str | None = None) -> str:
    """The current generation, read before the database so that it is never newer than it."""
    generation = known if known is not None else cache.get(GENERATION_KEY)
    if generation is None:
        generation = uuid.uuid4().hex
        if not cache.add(GENERATION_KEY, generation, None):
            generation = cache.get(GENERATION_KEY) or generation
    return generation


def _is_fresh(catalogue: Catalogue, now: datetime) -> bool:
    return catalogue.last_sync is not None and catalogue.last_sync >= now - timedelta(
        hours=conf.fresh_hours()
    )


def get_cached_free_models(
    *,
    force_refresh: bool = False,
    cache_duration: int | None = None,
    trigger: str = SyncRun.Trigger.API,
) -> Catalogue:
    """The seed's ``getCachedFreeModels``: memory, then the DB (24 h), then OpenRouter."""
    cache = _cache()
    duration = conf.cache_seconds() if cache_duration is None else cache_duration
    if not force_refresh:
        cached, known = _tier_one(cache)
        if cached is not None:
            logger.debug("[OpenRouter Sync] Using cached models")
            return cached
        generation = _generation(cache, known)
        now = timezone.now()
        catalogue = load_catalogue_from_db(now=now)
        if catalogue.models and _is_fresh(catalogue, now):
            _store(cache, generation, catalogue, duration)
            return catalogue
        logger.info("[OpenRouter Sync] Cache expired, fetching new models")
    try:
        sync_models(trigger=trigger)
    except SyncError as exc:
        now = timezone.now()
        catalogue = load_catalogue_from_db(now=now)
        if not catalogue.models:
            raise ModelsUnavailable(
                f"no models available: the sync failed ({exc.message}) and the table is empty"
            ) from exc
        catalogue.stale = not _is_fresh(catalogue, now)
        catalogue.error = exc.message
        return catalogue
    generation = _generation(cache)
    catalogue = load_catalogue_from_db()
    catalogue.source = "openrouter"
    _store(cache, generation, catalogue, duration)
    return catalogue


def get_free_models_stats() -> dict[str, Any]:
    return get_cached_free_models().stats


def filter_app_models(
    models: Iterable[dict[str, Any]],
    *,
    source: str | None = None,
    provider: str | None = None,
    has_vision: bool | None = None,
    min_context_length: int | None = None,
    search: str | None = None,
) -> list[dict[str, Any]]:
    """``LLMModelQuerySet.filter_models`` over app-format dicts (tier 1 filters without SQL)."""
    author = provider.strip().lstrip("~").lower() if provider else None
    needle = search.strip().casefold() if search and search.strip() else None
    if not (source or author or needle or min_context_length) and has_vision is None:
        return list(models)
    return [
        m
        for m in models
        if (source is None or m["source"] == source)
        and (author is None or m["author"] == author)
        and (has_vision is None or m["features"]["vision"] == has_vision)
        and (not min_context_length or m["contextLength"] >= min_context_length)
        and (
            needle is None
            or needle in m["id"].casefold()
            or needle in m["name"].casefold()
            or needle in (m["description"] or "").casefold()
        )
    ]


# --------------------------------------------------------------------------------------------
# History: changes, availability, metrics


def recent_changes(
    *, since: datetime | None = None, kinds: Sequence[str] = (), limit: int = 1000
) -> list[ModelChange]:
    qs = ModelChange.objects.order_by("-timestamp", "-pk")
    if since is not None:
        qs = qs.filter(timestamp__gte=since)
    if kinds:
        qs = qs.filter(kind__in=kinds)
    return list(qs[:limit])


def change_as_dict(change: ModelChange) -> dict[str, Any]:
    return {
        "runId": change.run_id,
        "timestamp": iso(change.timestamp),
        "kind": change.kind,
        "modelId": change.model_id,
        "before": change.before,
        "after": change.after,
    }


def _availability_with(
    current_free: list[str], *, now: datetime, catalogue: str
) -> dict[str, float]:
    """Per model id, the share of the window's successful syncs in which it was listed free.

    One query whatever the catalogue size: each run keeps its (short) list of free ids.
    """
    runs = list(
        SyncRun.objects.filter(
            status=SyncRun.Status.SUCCESS,
            catalogue=catalogue,
            started_at__gte=now - timedelta(days=conf.history_days()),
        ).values_list("free_ids", flat=True)
    )
    runs.append(current_free)
    if not runs:
        return {}
    seen = Counter(model_id for free_ids in runs for model_id in free_ids)
    return {model_id: count / len(runs) for model_id, count in seen.items()}


def _metric_subqueries(now: datetime) -> dict[str, Subquery]:
    """Sync metrics as scalar subqueries, so that tier 2 stays one query."""
    window = (
        SyncRun.objects.order_by()
        .filter(started_at__gte=now - timedelta(days=conf.history_days()))
        .exclude(status=SyncRun.Status.RUNNING)
        .annotate(whole=Value(1))  # a constant: aggregate over the whole window, no GROUP BY
        .values("whole")
    )
    successes = SyncRun.objects.filter(status=SyncRun.Status.SUCCESS).order_by("-started_at")
    return {
        "runs_total": Subquery(window.annotate(n=Count("pk")).values("n")[:1]),
        "runs_ok": Subquery(
            window.filter(status=SyncRun.Status.SUCCESS).annotate(n=Count("pk")).values("n")[:1]
        ),
        "mean_latency": Subquery(
            window.annotate(a=Avg("upstream_latency_ms")).values("a")[:1],
            output_field=FloatField(),
        ),
        "last_success": Subquery(successes.values("finished_at")[:1]),
    }


def _metrics(
    total: int | None,
    ok: int | None,
    latency: float | None,
    last_success: datetime | None,
    *,
    now: datetime,
) -> dict[str, Any]:
    total, ok = total or 0, ok or 0
    return {
        "syncs": total,
        "successRate": round(ok / total, 4) if total else 0,
        "meanLatencyMs": round(latency) if latency is not None else 0,
        "lastSuccess": iso(last_success),
        "secondsSinceLastSuccess": round((now - last_success).total_seconds())
        if last_success
        else None,
    }


def sync_metrics(*, now: datetime | None = None) -> dict[str, Any]:
    """Success rate and mean upstream latency over the history window; time since last success.

    The same figures as the serving tiers attach to their catalogue, for callers without one.
    """
    now = now or timezone.now()
    window = SyncRun.objects.filter(
        started_at__gte=now - timedelta(days=conf.history_days())
    ).exclude(status=SyncRun.Status.RUNNING)
    summary = window.aggregate(
        total=Count("pk"),
        ok=Count("pk", filter=Q(status=SyncRun.Status.SUCCESS)),
        latency=Avg("upstream_latency_ms"),
    )
    last_success = (
        SyncRun.objects.filter(status=SyncRun.Status.SUCCESS)
        .order_by("-started_at")
        .values_list("finished_at", flat=True)
        .first()
    )
    return _metrics(summary["total"], summary["ok"], summary["latency"], last_success, now=now)


# --------------------------------------------------------------------------------------------
# Favourites


class UnknownModel(Exception):
    pass


def favorite_as_dict(favorite: Favorite) -> dict[str, Any]:
    model = favorite.llm_model
    return {
        "modelId": model.model_id,
        "source": model.source,
        "name": model.name,
        "addedAt": iso(favorite.created_at),
        "isFree": model.is_free,
        "available": model.is_available,
        "flagged": bool(favorite.problem),
        "reason": favorite.problem or None,
    }


def list_favorites(*, user: Any) -> list[Favorite]:
    return list(
        Favorite.objects.filter(user=user).select_related("llm_model").defer("llm_model__raw")
    )


def add_favorite(*, user: Any, model_id: str, source: str = catalogues.OPENROUTER) -> bool:
    """Star a model; True when it was not a favourite yet."""
    model = LLMModel.objects.filter(source=source, model_id=model_id).first()
    if model is None:
        raise UnknownModel(f"unknown model {model_id!r}")
    _favorite, created = Favorite.objects.get_or_create(user=user, llm_model=model)
    return created


def remove_favorite(*, user: Any, model_id: str, source: str = catalogues.OPENROUTER) -> bool:
    deleted, _rows = Favorite.objects.filter(
        user=user, llm_model__source=source, llm_model__model_id=model_id
    ).delete()
    return bool(deleted)


# --------------------------------------------------------------------------------------------
# Live health of the free models


HEALTH_LOCK = "openrouter-health"
PROBE_LOCK = "openrouter-probe"


class HealthAlreadyRunning(Exception):
    pass


def _free_openrouter_models() -> list[LLMModel]:
    return list(
        LLMModel.objects.available()
        .free()
        .from_source(catalogues.OPENROUTER)
        .only("pk", "model_id", "canonical_slug", "health")
        .order_by("quality_rank")
    )


def check_health() -> dict[str, int]:
    """One polite pass over the free models' endpoints: two at a time, one pass at a time."""
    from concurrent.futures import ThreadPoolExecutor

    token = uuid.uuid4().hex
    if not _acquire_lock(token, HEALTH_LOCK):
        raise HealthAlreadyRunning("a health pass is already running")
    try:
        models = _free_openrouter_models()

        def look(model: LLMModel) -> tuple[openrouter.EndpointHealth | None, str]:
            try:
                return openrouter.fetch_endpoints(model.model_id, model.canonical_slug), ""
            except (UpstreamError, openrouter.RecordError) as exc:
                return None, str(exc)[:300]

        with ThreadPoolExecutor(max_workers=conf.health_concurrency()) as pool:
            results = list(pool.map(look, models))
        now = timezone.now()
        summary = {"checked": len(models), "up": 0, "degraded": 0, "down": 0, "errors": 0}
        checks = []
        for model, (health, error) in zip(models, results, strict=True):
            status = health.status if health else "unknown"
            summary[status if health else "errors"] += 1
            checks.append(
                HealthCheck(
                    llm_model=model,
                    kind=HealthCheck.Kind.ENDPOINTS,
                    checked_at=now,
                    ok=health is not None and health.status == "up",
                    status=status,
                    uptime=health.uptime if health else None,
                    latency_ms=health.latency_ms if health else None,
                    free_endpoints=health.free_endpoints if health else None,
                    error=error,
                )
            )
            model.health = {
                **(model.health or {}),
                "status": status,
                "uptime": health.uptime if health else None,
                "latencyMs": health.latency_ms if health else None,
                "freeEndpoints": health.free_endpoints if health else None,
                "providers": health.providers if health else [],
                "checkedAt": iso(now),
                "error": error or None,
            }
        with transaction.atomic():
            HealthCheck.objects.bulk_create(checks, batch_size=BATCH_SIZE)
            LLMModel.objects.bulk_update(models, ["health"], batch_size=BATCH_SIZE)
            HealthCheck.objects.filter(
                checked_at__lt=now - timedelta(hours=conf.health_history_hours())
            ).delete()
        invalidate_model_cache()
        logger.info("[OpenRouter Sync] Health pass: %s", summary)
        return summary
    finally:
        _release_lock(token, HEALTH_LOCK)


def probe_models(*, sleep=time.sleep) -> dict[str, int]:
    """With an API key, a one-token completion per free model at most once a day, paced."""
    if not conf.api_key():
        return {"probed": 0, "ok": 0, "skipped": 0, "disabled": 1}
    token = uuid.uuid4().hex
    if not _acquire_lock(token, PROBE_LOCK):
        raise HealthAlreadyRunning("a probe pass is already running")
    try:
        now = timezone.now()
        recent = set(
            HealthCheck.objects.filter(
                kind=HealthCheck.Kind.PROBE,
                checked_at__gte=now - timedelta(hours=conf.probe_every_hours()),
            ).values_list("llm_model_id", flat=True)
        )
        due = [m for m in _free_openrouter_models() if m.pk not in recent]
        summary = {"probed": 0, "ok": 0, "skipped": len(recent), "disabled": 0}
        session = openrouter.build_session()
        for index, model in enumerate(due):
            if index:
                sleep(conf.probe_interval_seconds())
            result = openrouter.probe(model.model_id, session=session)
            checked = timezone.now()
            HealthCheck.objects.create(
                llm_model=model,
                kind=HealthCheck.Kind.PROBE,
                checked_at=checked,
                ok=result.ok,
                status="ok" if result.ok else "failed",
                latency_ms=result.latency_ms,
                error=result.error[:300],
            )
            model.health = {
                **(model.health or {}),
                "probe": {"ok": result.ok, "latencyMs": result.latency_ms, "at": iso(checked)},
            }
            model.save(update_fields=["health"])
            summary["probed"] += 1
            summary["ok"] += result.ok
        invalidate_model_cache()
        return summary
    finally:
        _release_lock(token, PROBE_LOCK)


# --------------------------------------------------------------------------------------------
# Recommendations by task

TASKS = ("chat", "code", "reasoning", "vision", "long-context", "agent")


class UnknownTask(ValueError):
    pass


def _k(tokens: int) -> str:
    return f"{tokens // 1000}k" if tokens < 1_000_000 else f"{tokens / 1_000_000:.1f}M"


def _score(model: dict[str, Any], task: str, *, new_since: datetime) -> tuple[float, list[str]]:
    """A transparent score: every point comes with the reason that earned it."""
    params = set(model["supportedParameters"])
    context = model["contextLength"]
    points: list[tuple[float, str]] = []
    if task == "code":
        if model["category"] == "coding":
            points.append((3, "coding model"))
        if "tools" in params:
            points.append((1, "supports tools"))
    elif task == "reasoning":
        if model["category"] == "reasoning":
            points.append((2, "reasoning model"))
        if "reasoning" in params or "include_reasoning" in params:
            points.append((2, "exposes its reasoning"))
    elif task == "vision":
        points.append((3, "reads images"))
    elif task == "long-context":
        points.append((min(4.0, context / 250_000), f"{_k(context)} context"))
    elif task == "agent":
        points.append((2, "supports tools"))
        if {"structured_outputs", "response_format"} & params:
            points.append((2, "structured outputs"))
    elif task == "chat" and model["category"] == "general":
        points.append((1, "general-purpose model"))
    if task != "long-context" and context:
        points.append((min(1.0, context / 256_000), f"{_k(context)} context"))
    share = model.get("availability") or 0
    if share:
        points.append((2 * share, f"seen free in {share:.0%} of syncs"))
    health = model.get("health") if isinstance(model.get("health"), dict) else {}
    if health.get("status") == "up":
        uptime = health.get("uptime")
        known = isinstance(uptime, int | float) and not isinstance(uptime, bool)
        points.append((1, f"up ({uptime:g} % uptime)" if known else "up"))
    elif health.get("status") in ("degraded", "down"):
        points.append((-2, f"endpoints {health['status']}"))
    probe = health.get("probe") if isinstance(health.get("probe"), dict) else {}
    if probe.get("ok") is False:
        points.append((-2, "failed its last probe"))
    if model["createdUpstream"] and model["createdUpstream"] >= iso(new_since):
        points.append((0.5, "new"))
    if model["author"] in conf.known_providers():
        points.append((0.5, f"known provider {model['author']}"))
    score = round(sum(p for p, _reason in points), 2)
    return score, [reason for value, reason in points if value]


def recommend(
    task: str,
    *,
    needs_vision: bool = False,
    min_context: int = 0,
    limit: int = 5,
    models: Sequence[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """The free models that best fit a task, best first, each with the reasons of its score.

    ``models`` (app-format dicts) defaults to the cached catalogue; the admin panel passes the
    database tier's list so that it never calls upstream.
    """
    if task not in TASKS:
        raise UnknownTask(f"unknown task {task!r}; use {', '.join(TASKS)}")
    if models is None:
        models = get_cached_free_models().models
    new_since = openrouter.new_since(timezone.now())
    scored = []
    for rank, model in enumerate(models):
        params = set(model["supportedParameters"])
        if (needs_vision or task == "vision") and not model["features"]["vision"]:
            continue
        if task == "agent" and "tools" not in params:
            continue
        if model["contextLength"] < min_context:
            continue
        score, reasons = _score(model, task, new_since=new_since)
        scored.append((-score, rank, {"model": model, "score": score, "reasons": reasons}))
    scored.sort(key=lambda item: item[:2])
    return [item[2] for item in scored[: max(0, limit)]]
