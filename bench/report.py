"""Figures to results.json, a table, the targets' PASS/MISS and the plot; no Django here."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BATCH = 500  # models_sync.services.BATCH_SIZE: bulk writes go in batches of this many rows
TARGET_SIZE = 414
BIG, MID = 100_000, 10_000
Results = dict[str, float]


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    passed: bool | None  # None: not measured in this run (quick)
    detail: str

    @property
    def verdict(self) -> str:
        return "SKIP" if self.passed is None else ("PASS" if self.passed else "MISS")


def batches(size: int) -> int:
    return math.ceil(size / BATCH)


def _round(value: float) -> float:
    return float(f"{value:.6g}")


def collect(
    sync: Mapping[int, Mapping[str, Any]],
    naive: Mapping[int, Mapping[str, Any]],
    read: Mapping[str, Any],
    *,
    body_bytes: Mapping[int, int],
    quick: bool,
) -> Results:
    """Flat numbers only, one key per figure; sizes are suffixes (``_414``)."""
    results: Results = {"quick": int(quick)}
    for size, figures in sync.items():
        results[f"body_mib_{size}"] = body_bytes[size] / 2**20
        for key, value in figures.items():
            if value is not None:
                # The floor is measured in ours' turns but is not ours: ``floor_*_{size}``.
                prefix = "" if key.startswith("floor_") else "ours_"
                results[f"{prefix}{key}_{size}"] = value
        results[f"queries_per_sync_{size}"] = figures["first_queries"]
    for size, figures in naive.items():
        for key, value in figures.items():
            if value is not None:
                results[f"naive_{key}_{size}"] = value
        results[f"first_sync_ratio_{size}"] = sync[size]["first_seconds"] / figures["first_seconds"]
        results[f"resync_ratio_{size}"] = sync[size]["resync_seconds"] / figures["resync_seconds"]
        if sync[size].get("floor_seconds") is not None:
            # The naive loop's reading, then the insert of ours' rows and
            # changelog; ours' time minus this is its own bookkeeping.
            floor = sync[size]["floor_seconds"]
            results[f"first_sync_floor_ratio_{size}"] = floor / figures["first_seconds"]
    results.update(read)
    results["memory_get_speedup"] = read["get_db_median_ms"] / read["get_memory_median_ms"]
    # No memory tier can beat a view that does nothing: the best speedup the client allows.
    results["memory_get_speedup_bound"] = read["get_db_median_ms"] / read["get_floor_median_ms"]
    if BIG in sync:
        big = sync[BIG]
        results["sync_100000_seconds"] = big["first_seconds"]
        results["sync_100000_peak_mib"] = max(big["first_peak_mib"], big["resync_peak_mib"])
        results["scaling_100000_over_10000"] = big["first_seconds"] / sync[MID]["first_seconds"]
        if big.get("floor_seconds") is not None:
            # The naive's reading decodes the whole 156 MiB body at once, which no sync of this
            # size should do (peak memory): only the write is a floor here.
            write = big["floor_rows_seconds"] + big["floor_changelog_seconds"]
            results["sync_100000_floor_write_seconds"] = write
    return {k: _round(v) if isinstance(v, float) else v for k, v in results.items()}


def _per_batch(results: Results, kind: str, size: int) -> float:
    """Extra queries per 500-row batch, from the 414 and ``size`` points."""
    low = results[f"ours_{kind}_queries_{TARGET_SIZE}"]
    high = results[f"ours_{kind}_queries_{size}"]
    return (high - low) / (batches(size) - batches(TARGET_SIZE))


def _queries_target(results: Results) -> Target:
    """Constant, or constant plus a whole number of queries per 500-row batch of each write."""
    if f"ours_first_queries_{MID}" not in results:
        return Target("queries per sync constant (± batches)", None, "10 000 size not run")
    parts, ok = [], True
    for kind in ("first", "resync"):
        slope = _per_batch(results, kind, MID)
        fixed = results[f"ours_{kind}_queries_{TARGET_SIZE}"] - slope * batches(TARGET_SIZE)
        ok &= slope == int(slope) and 0 <= slope <= 4
        text = f"{kind}: {fixed:g} + {slope:g}/batch"
        if f"ours_{kind}_queries_{BIG}" in results:
            predicted = fixed + slope * batches(BIG)
            actual = results[f"ours_{kind}_queries_{BIG}"]
            ok &= abs(actual - predicted) <= 2
            text += f" (100k: {actual:g}, predicted {predicted:g})"
        parts.append(text)
    detail = "; ".join(parts) + f"; a batch is {BATCH} rows, so queries grow as size/{BATCH}"
    return Target("queries per sync constant (± batches)", ok, detail)


def _floor_detail(results: Results, size: int = TARGET_SIZE) -> str:
    if f"first_sync_floor_ratio_{size}" not in results:
        return ""
    naive = results[f"naive_first_seconds_{size}"]
    parts = [
        f"{results[f'floor_{part}_seconds_{size}'] / naive:.3f} {label}"
        for part, label in (("read", "reading"), ("rows", "rows"), ("changelog", "changelog"))
    ]
    return (
        f"; floor (the naive's fetch and reading, the insert of the same rows): "
        f"{results[f'first_sync_floor_ratio_{size}']:.3f} = " + " + ".join(parts)
    )


def _big_floor_detail(results: Results) -> str:
    if "sync_100000_floor_write_seconds" not in results:
        return ""
    return (
        f"; the insert of the same rows and changelog alone: "
        f"{results['sync_100000_floor_write_seconds']:.1f} s"
    )


def evaluate(results: Results) -> list[Target]:
    targets = [
        Target(
            "resync 414 ≤ 10% of naive",
            results["resync_ratio_414"] <= 0.10,
            f"ratio {results['resync_ratio_414']:.3f}",
        ),
        Target(
            "first sync 414 ≤ 25% of naive",
            results["first_sync_ratio_414"] <= 0.25,
            f"ratio {results['first_sync_ratio_414']:.3f}" + _floor_detail(results),
        ),
    ]
    if "sync_100000_seconds" in results:
        seconds, peak = results["sync_100000_seconds"], results["sync_100000_peak_mib"]
        scaling = results["scaling_100000_over_10000"]
        targets += [
            Target(
                "100k full sync < 30 s",
                seconds < 30,
                f"{seconds:.1f} s" + _big_floor_detail(results),
            ),
            Target("100k peak < 512 MiB", peak < 512, f"{peak:.0f} MiB (tracemalloc)"),
            Target(
                "100k time ≤ 12 x 10k time",
                scaling <= 12,
                f"x {scaling:.2f} (best of each, the two sizes timed in the same turns)",
            ),
        ]
    else:
        for name in ("100k full sync < 30 s", "100k peak < 512 MiB", "100k time ≤ 12 x 10k time"):
            targets.append(Target(name, None, "skipped (--quick)"))
    targets += [
        _queries_target(results),
        Target(
            "memory-tier GET: 0 queries",
            results["memory_get_queries"] == 0,
            f"{results['memory_get_queries']:g} per call",
        ),
        Target(
            "memory-tier GET ≥ 20x faster than DB tier",
            results["memory_get_speedup"] >= 20,
            f"x {results['memory_get_speedup']:.1f} (medians {results['get_db_median_ms']:.3f} / "
            f"{results['get_memory_median_ms']:.3f} ms; a do-nothing view's floor allows "
            f"x {results['memory_get_speedup_bound']:.1f})",
        ),
    ]
    return targets


def _cell(value: float | None, fmt: str) -> str:
    return "—" if value is None else format(value, fmt)


def sync_table(results: Results, sizes: list[int]) -> str:
    header = (
        f"{'models':>8} {'body MiB':>9} | {'ours 1st s':>10} {'resync s':>9} {'queries':>9} "
        f"{'peak MiB':>13} | {'naive 1st s':>11} {'resync s':>9} {'queries':>13} | "
        f"{'1st ratio':>9} {'resync ratio':>12}"
    )
    lines = [header, "-" * len(header)]
    for size in sizes:
        get = results.get
        peaks = f"{_cell(get(f'ours_first_peak_mib_{size}'), '.1f')}/" + _cell(
            get(f"ours_resync_peak_mib_{size}"), ".1f"
        )
        ours_q = f"{_cell(get(f'ours_first_queries_{size}'), '.0f')}/" + _cell(
            get(f"ours_resync_queries_{size}"), ".0f"
        )
        naive_q = f"{_cell(get(f'naive_first_queries_{size}'), '.0f')}/" + _cell(
            get(f"naive_resync_queries_{size}"), ".0f"
        )
        lines.append(
            f"{size:>8} {_cell(get(f'body_mib_{size}'), '.2f'):>9} | "
            f"{_cell(get(f'ours_first_seconds_{size}'), '.3f'):>10} "
            f"{_cell(get(f'ours_resync_seconds_{size}'), '.3f'):>9} {ours_q:>9} {peaks:>13} | "
            f"{_cell(get(f'naive_first_seconds_{size}'), '.3f'):>11} "
            f"{_cell(get(f'naive_resync_seconds_{size}'), '.3f'):>9} {naive_q:>13} | "
            f"{_cell(get(f'first_sync_ratio_{size}'), '.3f'):>9} "
            f"{_cell(get(f'resync_ratio_{size}'), '.3f'):>12}"
        )
    return "\n".join(lines)


def floor_line(results: Results, size: int = TARGET_SIZE) -> str:
    if f"first_sync_floor_ratio_{size}" not in results:
        return ""
    floor, ours = results[f"floor_seconds_{size}"], results[f"ours_first_seconds_{size}"]
    return (
        f"Floor at {size} models, in the same turns: the naive's fetch and reading, then "
        f"the insert of "
        f"the rows ours writes and of their 'added' changelog rows, committed, and nothing "
        f"else: {floor * 1000:.1f} ms, {results[f'first_sync_floor_ratio_{size}']:.3f} of "
        f"naive. Ours' own work (the run's row, the lease, content hashes, availability, the "
        f"checks before writing, a streamed walk) is the rest: {(ours - floor) * 1000:.1f} ms."
    )


def big_floor_line(results: Results) -> str:
    if "sync_100000_floor_write_seconds" not in results:
        return ""
    return (
        f"Floor at {BIG} models: the insert of the rows ours writes "
        f"({results[f'floor_rows_seconds_{BIG}']:.1f} s with the commit) and of their changelog "
        f"rows ({results[f'floor_changelog_seconds_{BIG}']:.1f} s) takes "
        f"{results['sync_100000_floor_write_seconds']:.1f} s before any reading; ours took "
        f"{results['sync_100000_seconds']:.1f} s in all. (Fetching and reading as the naive loop "
        f"does, a json.loads of the whole body, took {results[f'floor_read_seconds_{BIG}']:.1f} s "
        "more; it is left out, as no sync of this size should hold the body decoded whole.)"
    )


def read_table(results: Results) -> str:
    rows = [
        ("memory tier", "get_memory", "memory_get_queries"),
        ("database tier", "get_db", "db_get_queries"),
        ("memory, ?search=nemotron&hasVision=false", "get_search", None),
        ("floor: GET /api/models/openapi.json", "get_floor", None),
    ]
    lines = [f"{'GET /api/models/sync':<42} {'median ms':>10} {'p99 ms':>9} {'SQL/call':>9}"]
    for label, prefix, queries in rows:
        sql = _cell(results.get(queries), "g") if queries else "—"
        lines.append(
            f"{label:<42} {results[prefix + '_median_ms']:>10.3f} "
            f"{results[prefix + '_p99_ms']:>9.3f} {sql:>9}"
        )
    return "\n".join(lines)


def targets_table(targets: list[Target]) -> str:
    width = max(len(t.name) for t in targets)
    return "\n".join(f"{t.verdict:<4}  {t.name:<{width}}  {t.detail}" for t in targets)


def write_results(results: Results, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def plot(results: Results, sizes: list[int], path: Path, *, database: str = "SQLite") -> str:
    """Write the log-log plot; matplotlib is an optional extra, so say so instead of failing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return f"matplotlib is not installed: {path} not written (pip install 'matplotlib>=3.8')"
    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=120)
    series = [
        ("ours_first_seconds", "ours, first sync", "tab:blue", "-", "o"),
        ("ours_resync_seconds", "ours, unchanged resync", "tab:blue", "--", "s"),
        ("naive_first_seconds", "naive update_or_create, first sync", "tab:red", "-", "o"),
        ("naive_resync_seconds", "naive update_or_create, resync", "tab:red", "--", "s"),
    ]
    for key, label, color, style, marker in series:
        points = [(s, results[f"{key}_{s}"]) for s in sizes if f"{key}_{s}" in results]
        if points:
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, style, marker=marker, color=color, label=label)
    if f"ours_first_seconds_{TARGET_SIZE}" in results:
        ref = results[f"ours_first_seconds_{TARGET_SIZE}"]
        xs = [TARGET_SIZE, max(sizes)]
        ax.plot(xs, [ref * x / TARGET_SIZE for x in xs], ":", color="grey", label="linear from 414")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("catalogue size (models)")
    ax.set_ylabel("sync time (s)")
    ax.set_title(f"models_sync: sync time against catalogue size ({database}, upstream mocked)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return f"plot written to {path}"
