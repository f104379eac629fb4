"""The read path: ``GET /api/models/sync`` through Django's test client, per cache tier."""

from __future__ import annotations

import gc
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from models_sync import services

from .sync import mocked_upstream, ours, wipe

PATH = "/api/models/sync"
# A view that returns memoized bytes without SQL or cache: what any GET costs through the test
# client and the middleware, the floor under the memory tier.
FLOOR_PATH = "/api/models/openapi.json"
SEARCH_QUERY = {"search": "nemotron", "hasVision": "false"}


@dataclass(frozen=True, slots=True)
class Timings:
    median_ms: float
    p99_ms: float
    calls: int


@dataclass(frozen=True, slots=True)
class ReadFigures:
    memory: Timings
    database: Timings
    search: Timings
    floor: Timings
    memory_queries: float  # per call, over many calls
    database_queries: int  # one call
    served_models: int
    search_models: int

    @property
    def speedup(self) -> float:
        return self.database.median_ms / self.memory.median_ms


def percentile(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def _get(client: Client, query: dict[str, str], source: str) -> dict:
    response = client.get(PATH, query)
    if response.status_code != 200:
        raise RuntimeError(f"GET {PATH} answered {response.status_code}: {response.content[:200]}")
    body = response.json()
    if body["source"] != source:
        raise RuntimeError(f"GET {PATH} was served from {body['source']!r}, not {source!r}")
    return body


def _samples(
    client: Client,
    query: dict[str, str],
    calls: int,
    before: Callable[[], None] | None = None,
    path: str = PATH,
) -> list[float]:
    samples: list[float] = []
    for _ in range(calls):
        if before is not None:
            before()  # not timed: only the request is
        start = time.perf_counter()
        client.get(path, query)
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def _timings(samples: list[float]) -> Timings:
    return Timings(statistics.median(samples), percentile(samples, 0.99), len(samples))


def measure_read_path(body: bytes, *, calls: int = 1000, rounds: int = 10) -> ReadFigures:
    """Sync ``body`` once, then time each kind of GET in ``rounds`` turns of ``calls / rounds``
    calls each, so that a burst of load elsewhere skews every kind alike. Each tier is checked by
    the ``source`` it reports around its timed calls, so no figure comes from the wrong tier.
    """
    client = Client()
    per_round = math.ceil(calls / rounds)
    samples: dict[str, list[float]] = {"memory": [], "search": [], "database": [], "floor": []}
    with mocked_upstream(body):
        wipe()
        ours()
        services.invalidate_model_cache()
        _get(client, {}, "database")
        if client.get(FLOOR_PATH).status_code != 200:
            raise RuntimeError(f"GET {FLOOR_PATH} failed")
        gc.collect()
        for _ in range(rounds):
            served = _get(client, {}, "memory")["count"]  # untimed: the first hit after a refill
            samples["memory"] += _samples(client, {}, per_round)
            search_models = _get(client, SEARCH_QUERY, "memory")["count"]
            samples["search"] += _samples(client, SEARCH_QUERY, per_round)
            samples["database"] += _samples(
                client, {}, per_round, before=services.invalidate_model_cache
            )
            services.invalidate_model_cache()
            _get(client, {}, "database")
            samples["floor"] += _samples(client, {}, per_round, path=FLOOR_PATH)

        _get(client, {}, "memory")
        probe = 100
        with CaptureQueriesContext(connection) as captured:
            for _ in range(probe):
                client.get(PATH)
        memory_queries = len(captured) / probe
        services.invalidate_model_cache()
        with CaptureQueriesContext(connection) as captured:
            _get(client, {}, "database")
        database_queries = len(captured)
        wipe()
    return ReadFigures(
        memory=_timings(samples["memory"]),
        database=_timings(samples["database"]),
        search=_timings(samples["search"]),
        floor=_timings(samples["floor"]),
        memory_queries=memory_queries,
        database_queries=database_queries,
        served_models=served,
        search_models=search_models,
    )
