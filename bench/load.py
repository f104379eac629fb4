"""Load figure: cached GETs of ``/api/models/sync`` on 4 gunicorn workers while syncs run.

``python -m bench.load`` (from the project root, with the dev extra installed) on PostgreSQL
(database ``tetika_bench``, created with psycopg if missing, then migrated) and Redis (Django's
cache backend), with a stand-in OpenRouter on 127.0.0.1 serving the real fixtures:

1. sync the 2025 fixture, then the 2026 one, reading the served id set after each: the two
   *whole* sets an answer may be;
2. a bounded load on loopback (``--requests`` GETs over ``--connections`` connections) with
   ``wrk`` from Debian (a Lua script checks every body) or, without it, a small Python client
   (threads, keep-alive ``http.client``);
   gunicorn runs 4 ``gthread`` workers (one thread each, keep-alive) by default;
3. meanwhile a separate ``manage.py sync_openrouter --force`` process every ``--sync-every``
   seconds, alternating the 2025 and 2026 fixtures so the answer really changes; right after
   each sync one GET checks that the new set is served at once (cache invalidation across
   processes);
4. a table, and ``bench/load-results.json``: requests per second, p50/p99 latency, errors
   (non-200 or socket errors) and inconsistent answers (an id set that is neither whole set).

Only 127.0.0.1 is contacted. Every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(os.environ.get("OPENROUTER_FIXTURES", ROOT.parent / "shared/fixtures/openrouter"))
FIXTURE_FILES = {2025: "models-2025-06-17.json", 2026: "models-2026-08-19.json"}
LIST_PATH = "/api/v1/models"
API_PATH = "/api/models/sync"
RESULTS = ROOT / "bench" / "load-results.json"
# Model objects are the only JSON objects that open with an "id" key (JsonResponse keeps the
# order of ``to_app_format``); checked against json.loads before the load starts.
ID_PATTERN = re.compile(rb'\{"id": "([^"]*)"')

WRK_SCRIPT = r"""
-- Checks every body: an answer's sorted id list must equal one of the two whole sets.
-- A thread stops after its share of the requests and drops a marker file, so that the
-- bench can end wrk's timed run (SIGINT) as soon as every thread is done.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_id", #threads)
end

function init(args)
  local file = assert(io.open(args[1], "r"))
  set_a = file:read("*l")
  set_b = file:read("*l")
  file:close()
  limit = tonumber(args[2])
  marker_dir = args[3]
  n_done, n_non200, n_a, n_b, n_other = 0, 0, 0, 0, 0
end

function response(status, headers, body)
  n_done = n_done + 1
  if status ~= 200 then
    n_non200 = n_non200 + 1
  else
    local ids = {}
    for id in string.gmatch(body, '{"id": "([^"]*)"') do
      ids[#ids + 1] = id
    end
    table.sort(ids)
    local signature = table.concat(ids, ",")
    if signature == set_a then
      n_a = n_a + 1
    elseif signature == set_b then
      n_b = n_b + 1
    else
      n_other = n_other + 1
    end
  end
  if n_done == limit then
    local marker = io.open(marker_dir .. "/done-" .. thread_id, "w")
    if marker then marker:close() end
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local checked, non200, a, b, other = 0, 0, 0, 0, 0
  for _, thread in ipairs(threads) do
    checked = checked + thread:get("n_done")
    non200 = non200 + thread:get("n_non200")
    a = a + thread:get("n_a")
    b = b + thread:get("n_b")
    other = other + thread:get("n_other")
  end
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests": %d, "duration_us": %d, "checked": %d, "non_200": %d, ' ..
    '"set_a": %d, "set_b": %d, "inconsistent": %d, "status_errors": %d, ' ..
    '"connect": %d, "read": %d, "write": %d, "timeout": %d, ' ..
    '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, checked, non200, a, b, other, e.status,
    e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
"""


def log(message: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {message}", flush=True)


# --------------------------------------------------------------------------------------------
# Services: PostgreSQL database, stand-in upstream, processes


def ensure_database(name: str, *, host: str, port: int, user: str) -> bool:
    """Create the bench database if it is missing; True when it was created."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(
        host=host, port=port, user=user, dbname="postgres", autocommit=True, connect_timeout=10
    ) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            return False
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return True


class StandIn:
    """OpenRouter on 127.0.0.1: the 2026 fixture at ``/api/v1/models``, each fixture at
    ``/fixtures/<year>``."""

    def __init__(self) -> None:
        bodies = {LIST_PATH: (FIXTURES / FIXTURE_FILES[2026]).read_bytes()}
        for year, name in FIXTURE_FILES.items():
            bodies[f"/fixtures/{year}"] = (FIXTURES / name).read_bytes()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = bodies.get(self.path.split("?")[0])
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop(process: subprocess.Popen, grace: float = 20) -> None:
    """SIGTERM to the PID, SIGKILL to its own process group after the grace period."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


def manage(*args: str, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def checked_manage(*args: str, env: dict[str, str]) -> None:
    result = manage(*args, env=env)
    if result.returncode != 0:
        raise SystemExit(
            f"manage.py {' '.join(args)} exited {result.returncode}:\n"
            f"{result.stdout[-2000:]}{result.stderr[-2000:]}"
        )


@contextmanager
def gunicorn(
    env: dict[str, str], *, workers: int, worker_class: str, log_path: Path
) -> Iterator[int]:
    port = free_port()
    args = [
        sys.executable,
        "-m",
        "gunicorn",
        "tetika.wsgi",
        "--workers",
        str(workers),
        "--worker-class",
        worker_class,
        "--bind",
        f"127.0.0.1:{port}",
        "--backlog",
        "256",
        "--timeout",
        "60",
        "--graceful-timeout",
        "10",
    ]
    with log_path.open("w") as out:
        process = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                if process.poll() is not None:
                    raise SystemExit(f"gunicorn exited {process.returncode}; see {log_path}")
                with suppress(OSError, http.client.HTTPException):
                    if get(port, "/api/models/openapi.json")[0] == 200:
                        break
                if time.monotonic() > deadline:
                    raise SystemExit(f"gunicorn not ready in 60 s; see {log_path}")
                time.sleep(0.25)
            yield port
        finally:
            stop(process)


def get(port: int, path: str = API_PATH) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def id_set(body: bytes) -> frozenset[str]:
    return frozenset(m["id"] for m in json.loads(body)["models"])


def served_set(port: int) -> frozenset[str]:
    status, body = get(port)
    if status != 200:
        raise SystemExit(f"GET {API_PATH} answered {status}: {body[:300]!r}")
    ids = id_set(body)
    pattern_ids = sorted(m.decode() for m in ID_PATTERN.findall(body))
    if pattern_ids != sorted(ids):
        raise SystemExit("the body check (id pattern) disagrees with json.loads; fix ID_PATTERN")
    return ids


def signature(ids: frozenset[str]) -> str:
    return ",".join(sorted(ids))


# --------------------------------------------------------------------------------------------
# The syncs every N seconds


class Syncer(threading.Thread):
    """Runs ``sync_openrouter --force`` in a new process every ``every`` seconds, alternating
    the fixtures, and checks with one GET that the new set is served at once."""

    def __init__(
        self,
        *,
        env: dict[str, str],
        base: str,
        port: int,
        sets: dict[int, frozenset[str]],
        every: float,
        first_year: int,
    ) -> None:
        super().__init__(daemon=True)
        self.env, self.base, self.port, self.sets = env, base, port, sets
        self.every = every
        self.years = itertools.cycle([first_year, 2025 if first_year == 2026 else 2026])
        self.stop_event = threading.Event()
        self.runs: list[dict[str, Any]] = []
        self.last_year: int | None = None

    def run(self) -> None:
        start = time.monotonic()
        for index in itertools.count():
            due = start + 1.0 + index * self.every
            if self.stop_event.wait(max(0.0, due - time.monotonic())) or index >= 1000:
                return
            year = next(self.years)
            began = time.monotonic()
            result = manage(
                "sync_openrouter",
                "--force",
                "--source",
                f"{self.base}/fixtures/{year}",
                env=self.env,
                timeout=120,
            )
            ended = time.monotonic()
            entry: dict[str, Any] = {
                "year": year,
                "at_s": round(began - start, 2),
                "process_s": round(ended - began, 2),
                "exit": result.returncode,
            }
            if result.returncode == 0:
                self.last_year = year
                try:
                    entry["served_at_once"] = served_set(self.port) == self.sets[year]
                except (OSError, http.client.HTTPException, SystemExit) as exc:
                    entry["served_at_once"] = False
                    entry["error"] = str(exc)[:300]
            else:
                entry["error"] = (result.stderr or result.stdout)[-300:]
            self.runs.append(entry)
            log(f"sync {year}: exit {result.returncode} in {entry['process_s']} s")


# --------------------------------------------------------------------------------------------
# Load clients


def wrk_version() -> str | None:
    if not shutil.which("wrk"):
        return None
    result = subprocess.run(["wrk", "-v"], capture_output=True, text=True, timeout=10)
    first = (result.stdout or result.stderr).strip().splitlines()
    return first[0].split(" Copyright")[0] if first else "wrk"


def run_wrk(
    port: int, *, requests: int, connections: int, threads: int, cap: int, workdir: Path, sets
) -> dict[str, Any]:
    script = workdir / "check.lua"
    script.write_text(WRK_SCRIPT)
    expected = workdir / "expected.txt"
    expected.write_text(f"{signature(sets[2025])}\n{signature(sets[2026])}\n")
    per_thread = -(-requests // threads)
    args = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{cap}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        f"http://127.0.0.1:{port}{API_PATH}",
        "--",
        str(expected),
        str(per_thread),
    ]
    markers = workdir / "markers"
    markers.mkdir()
    args.append(str(markers))
    # wrk sleeps for the whole -d even when every thread has stopped: SIGINT ends it at once and
    # it then reports the real elapsed time.
    with tempfile.TemporaryFile("w+") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + cap
        while process.poll() is None and time.monotonic() < deadline:
            if len(list(markers.iterdir())) >= threads:
                break
            time.sleep(0.02)
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        out.seek(0)
        stdout = out.read()
    line = next((x for x in stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"wrk failed ({process.returncode}):\n{stdout}")
    raw = json.loads(line[len("RESULT ") :])
    seconds = raw["duration_us"] / 1e6
    socket_errors = raw["connect"] + raw["read"] + raw["write"] + raw["timeout"]
    return {
        "requests": raw["requests"],
        "duration_s": round(seconds, 2),
        "rps": round(raw["requests"] / seconds, 1),
        "latency_ms": {
            "p50": raw["p50_us"] / 1000,
            "p90": raw["p90_us"] / 1000,
            "p99": raw["p99_us"] / 1000,
            "max": raw["max_us"] / 1000,
            "mean": round(raw["mean_us"] / 1000, 3),
        },
        "non_200": max(raw["non_200"], raw["status_errors"]),
        "socket_errors": socket_errors,
        "socket_error_detail": {k: raw[k] for k in ("connect", "read", "write", "timeout")},
        "inconsistent": raw["inconsistent"],
        "answers": {"2025": raw["set_a"], "2026": raw["set_b"]},
        "checked": raw["checked"],
        "wrk_stdout": stdout.strip().splitlines()[:12],
    }


def percentile(sorted_values: list[float], share: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(share * len(sorted_values)) - 1))
    return sorted_values[index]


def run_python_client(
    port: int, *, requests: int, connections: int, cap: int, sets
) -> dict[str, Any]:
    """One thread per connection, keep-alive ``http.client``; reconnects when the server closes."""
    tickets = itertools.count()
    expected = {sets[2025]: "2025", sets[2026]: "2026"}
    lock = threading.Lock()
    latencies: list[float] = []
    totals = {"non_200": 0, "socket_errors": 0, "inconsistent": 0, "2025": 0, "2026": 0}
    deadline = time.monotonic() + cap

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        mine: list[float] = []
        counts = dict.fromkeys(totals, 0)
        try:
            while next(tickets) < requests and time.monotonic() < deadline:
                began = time.perf_counter()
                try:
                    conn.request("GET", API_PATH)
                    response = conn.getresponse()
                    body = response.read()
                except (OSError, http.client.HTTPException):
                    conn.close()
                    counts["socket_errors"] += 1
                    continue
                mine.append((time.perf_counter() - began) * 1000)
                if response.status != 200:
                    counts["non_200"] += 1
                    continue
                try:
                    which = expected.get(id_set(body))
                except (ValueError, KeyError, TypeError):
                    which = None
                counts[which or "inconsistent"] += 1
        finally:
            conn.close()
            with lock:
                latencies.extend(mine)
                for key, value in counts.items():
                    totals[key] += value

    began = time.monotonic()
    pool = [threading.Thread(target=worker, daemon=True) for _ in range(connections)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(cap + 60)
    seconds = time.monotonic() - began
    latencies.sort()
    done = len(latencies)
    return {
        "requests": done,
        "duration_s": round(seconds, 2),
        "rps": round(done / seconds, 1),
        "latency_ms": {
            "p50": round(percentile(latencies, 0.50), 3),
            "p90": round(percentile(latencies, 0.90), 3),
            "p99": round(percentile(latencies, 0.99), 3),
            "max": round(latencies[-1], 3) if latencies else 0.0,
            "mean": round(sum(latencies) / done, 3) if done else 0.0,
        },
        "non_200": totals["non_200"],
        "socket_errors": totals["socket_errors"],
        "inconsistent": totals["inconsistent"],
        "answers": {"2025": totals["2025"], "2026": totals["2026"]},
        "checked": done,
    }


# --------------------------------------------------------------------------------------------
# Main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.load", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers")
    parser.add_argument(
        "--worker-class",
        default="gthread",
        help="gunicorn worker class (default gthread: keep-alive, as behind a proxy that keeps "
        "its upstream connections; with sync, every GET opens a new loopback connection and "
        "the TIME_WAIT sockets they leave make some SYNs wait for a retransmit, 1 to 7 s)",
    )
    parser.add_argument(
        "--sync-every", type=float, default=10.0, help="seconds between syncs (0: no sync)"
    )
    parser.add_argument("--client", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--threads", type=int, default=0, help="wrk threads (default: CPUs, ≤4)")
    parser.add_argument("--max-seconds", type=int, default=300, help="time bound of the load")
    parser.add_argument("--database", default="tetika_bench")
    parser.add_argument("--pg", default="postgres@127.0.0.1:5432", help="user@host:port")
    parser.add_argument("--cache-url", default="redis://127.0.0.1:6379/12")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if not 1 <= args.requests <= 1_000_000 or not 1 <= args.connections <= 1024:
        parser.error("--requests must be 1..1000000 and --connections 1..1024")
    if not args.cache_url.startswith("redis://127.0.0.1"):
        parser.error("--cache-url must be a Redis on 127.0.0.1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    user, _, hostport = args.pg.partition("@")
    host, _, port_text = hostport.partition(":")
    if host != "127.0.0.1":
        raise SystemExit("--pg must point at 127.0.0.1")
    client = args.client
    version = wrk_version()
    if client == "auto":
        client = "wrk" if version else "python"
    if client == "wrk" and not version:
        raise SystemExit("wrk is not installed (apt-get install wrk) — or use --client python")
    threads = args.threads or max(1, min(4, os.cpu_count() or 1, args.connections))

    created = ensure_database(args.database, host=host, port=int(port_text or 5432), user=user)
    log(f"database {args.database}: {'created' if created else 'exists'}")
    upstream = StandIn()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tetika.settings",
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        # Plain HTTP on loopback, as behind a TLS-terminating proxy.
        "SECURE_SSL_REDIRECT": "false",
        "DATABASE_URL": f"postgres://{user}@{host}:{port_text or 5432}/{args.database}",
        "CACHE_URL": args.cache_url,
        "OPENROUTER_API_URL": upstream.base + LIST_PATH,
        "REDIS_URL": "",
        "Q_SYNC": "false",
        "MODELS_SYNC_LOG_LEVEL": "WARNING",
    }
    workdir = Path(tempfile.mkdtemp(prefix="tetika-load-"))
    try:
        checked_manage("migrate", "--noinput", "-v0", env=env)
        log("migrated")
        checked_manage(
            "sync_openrouter", "--force", "--source", f"{upstream.base}/fixtures/2025", env=env
        )
        with gunicorn(
            env,
            workers=args.workers,
            worker_class=args.worker_class,
            log_path=workdir / "gunicorn.log",
        ) as port:
            sets = {2025: served_set(port)}
            checked_manage("sync_openrouter", "--force", env=env)  # the stand-in's 2026 answer
            sets[2026] = served_set(port)
            if sets[2025] == sets[2026]:
                raise SystemExit("the 2025 and 2026 free sets are equal; nothing to tell apart")
            log(f"whole sets: 2025 = {len(sets[2025])} ids, 2026 = {len(sets[2026])} ids")
            for _ in range(200):  # warm both the cache entry and every worker
                get(port)

            syncer = Syncer(
                env=env,
                base=upstream.base,
                port=port,
                sets=sets,
                every=args.sync_every,
                first_year=2025,
            )
            log(
                f"load: {args.requests} GETs, {args.connections} connections, client {client}"
                f"{f' ({version}, {threads} threads)' if client == 'wrk' else ''}; "
                f"a forced sync every {args.sync_every:g} s"
            )
            if args.sync_every > 0:
                syncer.start()
            load_before = os.getloadavg()
            if client == "wrk":
                load = run_wrk(
                    port,
                    requests=args.requests,
                    connections=args.connections,
                    threads=threads,
                    cap=args.max_seconds,
                    workdir=workdir,
                    sets=sets,
                )
            else:
                load = run_python_client(
                    port,
                    requests=args.requests,
                    connections=args.connections,
                    cap=args.max_seconds,
                    sets=sets,
                )
            load_after = os.getloadavg()
            syncer.stop_event.set()
            if syncer.is_alive():
                syncer.join(180)
            final = served_set(port)
            expected_final = sets[syncer.last_year] if syncer.last_year else sets[2026]
    finally:
        upstream.close()

    syncs = syncer.runs
    stale = sum(1 for s in syncs if s["exit"] == 0 and not s.get("served_at_once"))
    results = {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "client": f"wrk ({version}, Lua body check, {threads} threads)"
        if client == "wrk"
        else "python (threads, keep-alive http.client)",
        "target": f"GET {API_PATH} (cached: Redis, one shared key)",
        "setup": {
            "gunicorn_workers": args.workers,
            "worker_class": args.worker_class,
            "connections": args.connections,
            "requests_asked": args.requests,
            "database": f"PostgreSQL {args.database} on {host}:{port_text or 5432}",
            "cache": args.cache_url,
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "django": metadata.version("django"),
            "gunicorn": metadata.version("gunicorn"),
            "whole_sets": {"2025": len(sets[2025]), "2026": len(sets[2026])},
            # The machine may be shared: its 1-minute load average around the run.
            "loadavg_1min_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
        },
        **{k: v for k, v in load.items() if k != "wrk_stdout"},
        "errors": load["non_200"] + load["socket_errors"],
        "syncs": syncs,
        "syncs_during_load": len(syncs),
        "syncs_failed": sum(1 for s in syncs if s["exit"] != 0),
        "stale_after_sync": stale,
        "final_answer_is_last_sync": final == expected_final,
    }
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    shutil.rmtree(workdir, ignore_errors=True)

    lat = results["latency_ms"]
    rows = [
        ("client", results["client"]),
        (
            "gunicorn workers / connections",
            f"{args.workers} ({args.worker_class}) / {args.connections}",
        ),
        ("requests (checked)", f"{results['requests']} ({results['checked']})"),
        ("duration", f"{results['duration_s']} s"),
        ("requests per second", f"{results['rps']}"),
        (
            "latency p50 / p90 / p99 / max",
            f"{lat['p50']} / {lat['p90']} / {lat['p99']} / {lat['max']} ms",
        ),
        ("errors (non-200 + socket)", f"{results['non_200']} + {results['socket_errors']}"),
        ("inconsistent answers", str(results["inconsistent"])),
        (
            "answers 2025 set / 2026 set",
            f"{results['answers']['2025']} / {results['answers']['2026']}",
        ),
        ("forced syncs started during load (failed)", f"{len(syncs)} ({results['syncs_failed']})"),
        ("stale answer right after a sync", str(stale)),
        ("final answer = last sync", str(results["final_answer_is_last_sync"])),
    ]
    width = max(len(k) for k, _ in rows)
    print()
    print(f"{'metric':<{width}}  value")
    print(f"{'-' * width}  {'-' * 40}")
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    print(f"\nwritten to {args.output}")
    ok = (
        results["errors"] == 0
        and results["inconsistent"] == 0
        and stale == 0
        and results["syncs_failed"] == 0
        and results["final_answer_is_last_sync"]
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
