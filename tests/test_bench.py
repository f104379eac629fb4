"""Smoke test of ``bench/``: its functions run on a tiny catalogue; no timing is asserted."""

from __future__ import annotations

import json
from dataclasses import asdict
from unittest import mock

import pytest
import requests
from django.utils import timezone

from bench import report
from bench.env import UnsafeDatabase, choose_database
from bench.read import measure_read_path
from bench.sync import (
    API_URL,
    Plan,
    bare_write,
    fixture_body,
    measure,
    measure_together,
    mocked_upstream,
    ours,
    synthetic_body,
    wipe,
)
from models_sync.models import LLMModel, ModelChange

pytestmark = pytest.mark.django_db

NOW = timezone.now()


def test_sync_read_and_report_on_a_tiny_catalogue(tmp_path):
    body = synthetic_body(50)
    assert len(json.loads(body)["data"]) == 50

    ours, naive = measure(body, repeats=2, floor=True)
    assert naive is not None
    assert LLMModel.objects.count() == 0  # every measurement leaves the table empty
    assert ours.first_peak_mib and ours.first_peak_mib > 0
    assert ours.first_queries and ours.resync_queries
    assert naive.first_queries and naive.first_queries >= 50  # at least one query per model

    read = measure_read_path(fixture_body(414), calls=20, rounds=2)
    assert read.memory_queries == 0
    assert read.database_queries >= 1
    assert read.served_models == 18

    read_figures = {
        "memory_get_queries": read.memory_queries,
        "db_get_queries": read.database_queries,
    }
    for name, timings in (
        ("memory", read.memory),
        ("db", read.database),
        ("search", read.search),
        ("floor", read.floor),
    ):
        read_figures[f"get_{name}_median_ms"] = timings.median_ms
        read_figures[f"get_{name}_p99_ms"] = timings.p99_ms
    # Reported as if the 50 models were the 414 fixture: only the plumbing is under test.
    results = report.collect(
        {414: asdict(ours)},
        {414: asdict(naive)},
        read_figures,
        body_bytes={414: len(body)},
        quick=True,
    )
    for key in (
        "first_sync_ratio_414",
        "resync_ratio_414",
        "queries_per_sync_414",
        "first_sync_floor_ratio_414",
    ):
        assert isinstance(results[key], int | float)
    assert results["first_sync_floor_ratio_414"] == pytest.approx(
        results["floor_seconds_414"] / results["naive_first_seconds_414"], rel=1e-4
    )
    assert report.floor_line(results).startswith("Floor at 414 models")
    verdicts = {t.name: t.verdict for t in report.evaluate(results)}
    assert verdicts["memory-tier GET: 0 queries"] == "PASS"
    assert "SKIP" in verdicts.values()
    report.write_results(results, tmp_path / "results.json")
    assert json.loads((tmp_path / "results.json").read_text())["memory_get_queries"] == 0
    message = report.plot(results, [414], tmp_path / "bench.png")
    assert (tmp_path / "bench.png").is_file() or "not installed" in message


def test_the_bench_never_wipes_a_database_it_was_not_made_for(tmp_path):
    with pytest.raises(UnsafeDatabase):
        choose_database("postgres://postgres@127.0.0.1:5432/tetika")
    assert choose_database("postgres://u@h:5432/tetika_bench").url.endswith("/tetika_bench")
    own = choose_database(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    assert own.url.endswith("db_bench.sqlite3") and own.temp_dir is None
    throwaway = choose_database(None)
    try:
        assert throwaway.temp_dir is not None and throwaway.temp_dir.is_dir()
    finally:
        throwaway.cleanup()
    assert not throwaway.temp_dir.exists()


def figures(first: float, **more: float) -> dict[str, float | None]:
    """One size's figures for ``report.collect``, with ``first`` seconds for a first sync."""
    return {
        "first_seconds": first,
        "resync_seconds": first / 10,
        "first_queries": 417,
        "resync_queries": 12,
        "first_peak_mib": 300.0,
        "resync_peak_mib": 100.0,
        **more,
    }


def full_results(mid: float, big: dict[str, float | None]) -> dict:
    """What a full run reports, with made-up times: 414 at 0.15 s against a naive 0.6 s."""
    read = {f"get_{n}_median_ms": 1.0 for n in ("memory", "db", "search", "floor")}
    return report.collect(
        {414: figures(0.15), 10_000: figures(mid), 100_000: big},
        {414: figures(0.6)},
        {**read, "memory_get_queries": 0},
        body_bytes={414: 1, 10_000: 1, 100_000: 1},
        quick=False,
    )


def test_the_100k_target_names_what_the_insert_alone_takes():
    results = full_results(
        4.0,
        figures(
            45.0,
            floor_seconds=41.0,
            floor_read_seconds=10.0,
            floor_rows_seconds=22.5,
            floor_changelog_seconds=8.5,
        ),
    )
    assert results["sync_100000_floor_write_seconds"] == 31.0
    target = next(t for t in report.evaluate(results) if t.name == "100k full sync < 30 s")
    assert target.detail == "45.0 s; the insert of the same rows and changelog alone: 31.0 s"
    assert report.big_floor_line(results).startswith(
        "Floor at 100000 models: the insert of the rows ours writes (22.5 s with the commit)"
    )


def test_catalogues_measured_together_take_the_same_turns():
    served = []

    def sync() -> None:  # which answer is mocked, and whether the table was emptied
        records = requests.get(API_URL, timeout=5).json()["data"]
        served.append((len(records), LLMModel.objects.count()))
        LLMModel.objects.create(model_id=f"x/{len(served)}", first_seen_at=NOW, last_seen_at=NOW)

    small = Plan(synthetic_body(5), repeats=3, baseline=False, memory=False)
    big = Plan(synthetic_body(30), repeats=2, baseline=False, memory=False)
    with mock.patch("bench.sync.ours", side_effect=sync):
        (small_figures, small_naive), (big_figures, big_naive) = measure_together([small, big])

    assert small_naive is None and big_naive is None
    assert small_figures.first_seconds > 0 and big_figures.first_seconds > 0
    # Each turn: each catalogue's first sync into an emptied table and its resync; the third
    # turn is the smaller one's alone; then, per catalogue, the two counted passes.
    turn = [(5, 0), (5, 1), (30, 0), (30, 1)]
    assert served == turn + turn + [(5, 0), (5, 1)] + [(5, 0), (5, 1), (30, 0), (30, 1)]


def test_the_scaling_target_divides_the_two_sizes_best_times():
    results = full_results(2.0, figures(25.0))

    target = next(t for t in report.evaluate(results) if t.name == "100k time ≤ 12 x 10k time")
    assert (results["scaling_100000_over_10000"], target.verdict) == (12.5, "MISS")
    assert target.detail == "x 12.50 (best of each, the two sizes timed in the same turns)"


def _written() -> tuple[list[dict], list[dict]]:
    # Everything but keys, times and the hash, which the floor leaves out by design.
    rows = LLMModel.objects.order_by("model_id").values()
    skip = {"id", "first_seen_at", "last_seen_at", "content_hash"}
    changes = ModelChange.objects.order_by("model_id").values(
        "model_id", "author", "kind", "before", "after"
    )
    return [{k: v for k, v in row.items() if k not in skip} for row in rows], list(changes)


def test_the_floor_writes_the_rows_and_changelog_a_first_sync_writes():
    body = fixture_body(414)
    with mocked_upstream(body):
        wipe()
        ours()
        synced = _written()
        wipe()
        floor = bare_write(body)
    assert _written() == synced
    assert len(synced[0]) == 414 and {c["kind"] for c in synced[1]} == {"added"}
    assert floor.read_seconds > 0 and floor.rows_seconds > 0 and floor.changelog_seconds > 0
    wipe()
