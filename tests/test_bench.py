"""Smoke test of ``bench/``: its functions run on a tiny catalogue; no timing is asserted."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest

from bench import report
from bench.env import UnsafeDatabase, choose_database
from bench.read import measure_read_path
from bench.sync import fixture_body, measure, synthetic_body
from models_sync.models import LLMModel

pytestmark = pytest.mark.django_db


def test_sync_read_and_report_on_a_tiny_catalogue(tmp_path):
    body = synthetic_body(50)
    assert len(json.loads(body)["data"]) == 50

    ours, naive = measure(body, repeats=2)
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
    for key in ("first_sync_ratio_414", "resync_ratio_414", "queries_per_sync_414"):
        assert isinstance(results[key], int | float)
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
