"""``python -m bench --profile SIZE``: where a first and an unchanged sync spend their time,
and where the first one holds its memory."""

from __future__ import annotations

import cProfile
import functools
import gc
import pstats
import threading
import tracemalloc
from collections.abc import Callable
from typing import Any
from unittest import mock

from models_sync import openrouter, services

from .sync import MIB, catalogue_body, mocked_upstream, ours, wipe

PHASES: list[tuple[Any, str]] = [
    (openrouter, "fetch"),
    (openrouter, "read_document"),
    (services, "_read_entries"),
    (services, "_apply"),
]


def _phase_probe(target: Callable[..., Any], name: str, log: list[str]) -> Callable[..., Any]:
    @functools.wraps(target)
    def probe(*args: Any, **kwargs: Any) -> Any:
        before = tracemalloc.get_traced_memory()[0]
        result = target(*args, **kwargs)
        current, peak = tracemalloc.get_traced_memory()
        log.append(
            f"  {name:<22} held before {before / MIB:8.1f} MiB, after {current / MIB:8.1f} MiB,"
            f" peak so far {peak / MIB:8.1f} MiB"
        )
        return result

    return probe


def _snapshot_near_peak(stop: threading.Event, best: list[Any]) -> None:
    """Polls the traced size; keeps a snapshot each time it grows by 5 %, the last one wins."""
    top = 0
    while not stop.wait(0.05):
        current = tracemalloc.get_traced_memory()[0]
        if current > top * 1.05:
            top = current
            best[:] = [current, tracemalloc.take_snapshot()]


def profile_sync(size: int, *, lines: int = 25) -> None:
    body = catalogue_body(size)
    print(f"profiling a first and a second sync of {size} models ({len(body) / MIB:.1f} MiB body)")
    with mocked_upstream(body):
        wipe()
        for label in ("first sync into an empty table", "second, unchanged sync"):
            gc.collect()
            profiler = cProfile.Profile()
            profiler.runcall(ours)
            stats = pstats.Stats(profiler)
            print(f"\n=== cProfile of the {label}, by cumulative time:")
            stats.sort_stats("cumulative").print_stats(lines)
            print(f"=== cProfile of the {label}, by own time:")
            stats.sort_stats("tottime").print_stats(lines)

        wipe()
        gc.collect()
        log: list[str] = []
        patches = [
            mock.patch.object(module, name, _phase_probe(getattr(module, name), name, log))
            for module, name in PHASES
        ]
        for patch in patches:
            patch.start()
        tracemalloc.start(8)
        stop, best = threading.Event(), []
        watcher = threading.Thread(target=_snapshot_near_peak, args=(stop, best), daemon=True)
        watcher.start()
        try:
            ours()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            stop.set()
            watcher.join()
            tracemalloc.stop()
            for patch in patches:
                patch.stop()
        print(f"tracemalloc: peak {peak / MIB:.1f} MiB; memory held across the phases:")
        print("\n".join(log))
        if best:
            held, snapshot = best
            print(f"\nlargest allocation sites in a snapshot taken at {held / MIB:.1f} MiB held:")
            for stat in snapshot.statistics("lineno")[:lines]:
                frame = stat.traceback[0]
                print(
                    f"  {stat.size / MIB:8.1f} MiB {stat.count:>9} blocks  "
                    f"{frame.filename}:{frame.lineno}"
                )
        wipe()
