"""Scale-out consistency on the real servers: PostgreSQL, Redis, several processes.

Every test here starts real processes (``manage.py sync_openrouter``, gunicorn, ``qcluster``)
against pytest-django's PostgreSQL test database and the Redis cache of the test run, with a
stand-in OpenRouter on 127.0.0.1. They run only on PostgreSQL with Django's Redis cache and skip,
saying why, elsewhere; with ``REQUIRE_SERVICES=1`` on PostgreSQL a missing Redis (or gunicorn)
fails instead. The two ``check --deploy`` tests at the end run everywhere.

Every loop is bounded in count and time; only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import cache
from django.db import connection
from django.utils import timezone

from models_sync.models import LLMModel, SyncLock, SyncRun
from models_sync.services import CACHE_KEY, LOCK_NAME

from .conftest import ROOT, fixture_bytes, fixture_path

REDIS_BACKEND = "django.core.cache.backends.redis.RedisCache"
QCLUSTER_REDIS_URL = "redis://127.0.0.1:6379/14"
LIST_PATH = "/api/v1/models"
REFUSAL = "another sync is already running"
FREE_2025, FREE_2026, ROWS_2026 = 67, 18, 414

# --------------------------------------------------------------------------------------------
# Preconditions: PostgreSQL, the Redis cache, gunicorn


def _unavailable(problem: str) -> None:
    """Skip, or fail when CI promised the services (REQUIRE_SERVICES=1 on PostgreSQL)."""
    if os.environ.get("REQUIRE_SERVICES") == "1":
        pytest.fail(f"REQUIRE_SERVICES=1 but {problem}", pytrace=False)
    pytest.skip(problem)


@pytest.fixture
def services(settings) -> dict[str, str]:
    """The environment every subprocess shares: the test database and the test run's cache."""
    if connection.vendor != "postgresql":
        pytest.skip(
            f"needs PostgreSQL (DATABASE_URL=postgres://...); this run uses {connection.vendor}"
        )
    backend = settings.CACHES["default"]["BACKEND"]
    if backend != REDIS_BACKEND:
        _unavailable(f"needs the Redis cache (CACHE_URL=redis://...); this run uses {backend}")
    if not os.environ.get("CACHE_URL", "").startswith("redis"):
        _unavailable("CACHE_URL is not a redis:// URL the subprocesses can share")
    try:
        cache.set("models_sync:scale:ping", "pong", 10)
        reachable = cache.get("models_sync:scale:ping") == "pong"
    except Exception as exc:  # any client error means: no usable Redis
        reachable, reason = False, f"{type(exc).__name__}: {exc}"
    else:
        reason = "the value read back differs"
    if not reachable:
        _unavailable(f"the Redis cache at {os.environ['CACHE_URL']} is unusable ({reason})")
    try:
        import gunicorn  # noqa: F401
    except ImportError:
        _unavailable("gunicorn is not installed (pip install -e '.[dev]')")
    db = connection.settings_dict
    return {
        "DATABASE_URL": (
            f"postgres://{db.get('USER') or 'postgres'}@{db.get('HOST') or '127.0.0.1'}:"
            f"{db.get('PORT') or 5432}/{db['NAME']}"
        ),
        "CACHE_URL": os.environ["CACHE_URL"],
    }


# --------------------------------------------------------------------------------------------
# A stand-in OpenRouter on 127.0.0.1


class StandIn:
    """Serves one fixture at ``/api/v1/models`` (404 elsewhere); can answer slowly, or hold
    every answer until released. ``hits`` counts the requests for the model list."""

    def __init__(self, year: int) -> None:
        self.body = fixture_bytes(year)
        self.delay = 0.0
        self.gate: threading.Event | None = None
        self.hits = 0
        self._lock = threading.Lock()
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] != LIST_PATH:
                    self.send_error(404)
                    return
                with stand_in._lock:
                    stand_in.hits += 1
                gate = stand_in.gate
                if gate is not None:
                    gate.wait(45)  # bounded: released by the test, or gives up
                time.sleep(stand_in.delay)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(stand_in.body)))
                self.end_headers()
                self.wfile.write(stand_in.body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}{LIST_PATH}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        if self.gate is not None:
            self.gate.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


@pytest.fixture
def stand_in() -> Iterator[StandIn]:
    server = StandIn(2026)
    yield server
    server.close()


# --------------------------------------------------------------------------------------------
# Processes


def _env(services: dict[str, str], stand_in: StandIn, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tetika.settings",
        "DEBUG": "false",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "OPENROUTER_API_URL": stand_in.url,
        "OPENROUTER_READ_TIMEOUT": "60",
        "REDIS_URL": "",
        "Q_SYNC": "false",
        "PYTHONUNBUFFERED": "1",
        **services,
        **extra,
    }


def _manage(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _stop(process: subprocess.Popen, grace: float = 30) -> None:
    """SIGTERM to the PID only (never the group: qcluster deadlocks), SIGKILL the group late."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


@contextmanager
def _process(args: list[str], *, env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    with log.open("w") as out:
        process = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            yield process
        finally:
            _stop(process)


def _tail(path: Path, size: int = 3000) -> str:
    return path.read_text(errors="replace")[-size:] if path.is_file() else ""


def _wait_for(predicate: Callable[[], Any], *, timeout: float, interval: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------------------------
# A real web server: gunicorn, 2 workers, on 127.0.0.1


def _get(conn: http.client.HTTPConnection, path: str = "/api/models/sync") -> tuple[int, bytes]:
    try:
        conn.request("GET", path, headers={"Accept": "application/json"})
        response = conn.getresponse()
        return response.status, response.read()
    except (OSError, http.client.HTTPException):
        conn.close()  # the next request opens a new connection
        raise


def _answer(status: int, body: bytes) -> dict[str, Any]:
    assert status == 200, body[:500]
    document = json.loads(body)
    assert document["success"] is True
    assert document["count"] == len(document["models"])
    document["ids"] = frozenset(m["id"] for m in document["models"])
    assert len(document["ids"]) == document["count"], "duplicate ids in one answer"
    return document


class Server:
    def __init__(self, port: int) -> None:
        self.port = port

    def connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)

    def get(self) -> dict[str, Any]:
        conn = self.connection()
        try:
            return _answer(*_get(conn))
        finally:
            conn.close()


@contextmanager
def _gunicorn(env: dict[str, str], log: Path) -> Iterator[Server]:
    port = _free_port()
    args = [
        sys.executable,
        "-m",
        "gunicorn",
        "tetika.wsgi",
        "--workers",
        "2",
        "--bind",
        f"127.0.0.1:{port}",
        "--graceful-timeout",
        "5",
        "--timeout",
        "60",
    ]
    web_env = {**env, "DJANGO_SETTINGS_MODULE": "tetika.settings_test"}
    with _process(args, env=web_env, log=log) as process:
        server = Server(port)

        def ready() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"gunicorn exited {process.returncode}:\n{_tail(log)}")
            conn = server.connection()
            try:
                return _get(conn, "/api/models/openapi.json")[0] == 200
            except (OSError, http.client.HTTPException):
                return False
            finally:
                conn.close()

        assert _wait_for(ready, timeout=30), f"gunicorn not ready in 30 s:\n{_tail(log)}"
        yield server


def _sync(env: dict[str, str], year: int, *, force: bool = False) -> SyncRun:
    args = ["sync_openrouter", "--source", str(fixture_path(year))]
    result = _manage(*args, *(["--force"] if force else []), env=env)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return SyncRun.objects.filter(status=SyncRun.Status.SUCCESS).latest("pk")


# --------------------------------------------------------------------------------------------
# (a) Concurrent syncs from separate processes


@pytest.mark.parametrize("n", [2, 8])
@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_concurrent_sync_processes_one_does_the_work(n, services, stand_in, tmp_path):
    """N ``sync_openrouter`` processes started together: one syncs, N-1 are refused, honestly.

    The stand-in holds its answer until every other process has been refused, so all N
    attempts fall inside the one overlap window of the sync that holds the lock.
    """
    stand_in.gate = threading.Event()
    stand_in.delay = 0.5
    env = _env(services, stand_in)
    logs = [tmp_path / f"sync-{i}.log" for i in range(n)]
    files = [log.open("w") for log in logs]
    processes = [
        subprocess.Popen(
            [sys.executable, "manage.py", "sync_openrouter"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
        for out in files
    ]
    try:
        refused = SyncRun.objects.filter(status=SyncRun.Status.REFUSED)
        all_refused = _wait_for(lambda: refused.count() >= n - 1, timeout=60)
        stand_in.gate.set()
        codes = [p.wait(timeout=90) for p in processes]
    finally:
        stand_in.gate.set()
        for process in processes:
            _stop(process, grace=10)
        for out in files:
            out.close()
    outputs = [log.read_text(errors="replace") for log in logs]
    report = "\n---\n".join(f"exit {c}:\n{o[-1500:]}" for c, o in zip(codes, outputs, strict=True))
    assert all_refused, report

    assert sorted(codes) == [0] + [1] * (n - 1), report
    for code, output in zip(codes, outputs, strict=True):
        if code == 1:
            assert "already running" in output or "déjà" in output, output
    assert stand_in.hits == 1, "only the lock holder may fetch"

    runs = list(SyncRun.objects.order_by("pk"))
    assert len(runs) == n, "one SyncRun per process"
    assert not [r for r in runs if r.status == SyncRun.Status.RUNNING]
    [winner] = [r for r in runs if r.status == SyncRun.Status.SUCCESS]
    losers = [r for r in runs if r.status == SyncRun.Status.REFUSED]
    assert len(losers) == n - 1
    assert all(r.error == REFUSAL and r.finished_at for r in losers)
    # One overlap window: every refusal happened while the winner held the lock.
    # A loser may create its run row just before the winner does; what matters is that each
    # refusal was recorded while the winner held the lock.
    assert all(winner.started_at <= r.finished_at <= winner.finished_at for r in losers)
    assert winner.fetched_count == ROWS_2026 and winner.free_count == FREE_2026
    assert winner.added_count == ROWS_2026

    assert LLMModel.objects.count() == ROWS_2026
    assert LLMModel.objects.values("source", "model_id").distinct().count() == ROWS_2026
    assert LLMModel.objects.filter(is_free=True, is_available=True).count() == FREE_2026
    lock = SyncLock.objects.get(name=LOCK_NAME)
    assert lock.holder == "" and lock.expires_at is None, "the lock is released"


# --------------------------------------------------------------------------------------------
# (b) A reader never sees a half-applied sync


@pytest.mark.parametrize("server_cache", ["redis", "none"])
@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_readers_see_the_whole_old_or_the_whole_new_set(server_cache, services, stand_in, tmp_path):
    """GETs from another process during a sync 2025 → 2026 return one whole set or the other.

    ``redis``: the server uses the shared Redis cache, as in production. ``none``: the server
    has no cache (``dummycache://``), so every GET reads PostgreSQL while the sync writes.
    """
    env = _env(services, stand_in)
    old_run = _sync(env, 2025)
    server_env = env if server_cache == "redis" else {**env, "CACHE_URL": "dummycache://"}
    with _gunicorn(server_env, tmp_path / "gunicorn.log") as server:
        old = server.get()["ids"]
        assert old == frozenset(old_run.free_ids) and len(old) == FREE_2025

        answers: list[tuple[float, float, frozenset | str]] = []
        lock = threading.Lock()
        stop = threading.Event()
        budget = iter(range(500))  # at most 500 GETs in all (next() is atomic under the GIL)

        def reader() -> None:
            conn = server.connection()
            try:
                deadline = time.monotonic() + 60
                while not stop.is_set() and time.monotonic() < deadline:
                    if next(budget, None) is None:
                        return
                    started = time.time()
                    try:
                        ids: frozenset | str = _answer(*_get(conn))["ids"]
                    except Exception as exc:
                        ids = f"{type(exc).__name__}: {exc}"
                    with lock:
                        answers.append((started, time.time(), ids))
                    time.sleep(0.02)
            finally:
                conn.close()

        sync_log = tmp_path / "sync.log"
        sync_args = ["sync_openrouter", "--force", "--source", str(fixture_path(2026))]
        readers = [threading.Thread(target=reader, daemon=True) for _ in range(3)]
        with _process([sys.executable, "manage.py", *sync_args], env=env, log=sync_log) as sync:
            # Start reading once the sync has begun (its SyncRun exists), not during its imports.
            began = _wait_for(lambda: SyncRun.objects.count() > 1, timeout=60, interval=0.05)
            for thread in readers:
                thread.start()
            code = sync.wait(timeout=90)
            time.sleep(0.3)
            stop.set()
            for thread in readers:
                thread.join(20)
        assert began and code == 0, _tail(sync_log)
        new_run = SyncRun.objects.filter(status=SyncRun.Status.SUCCESS).latest("pk")
        new = frozenset(new_run.free_ids)
        assert len(new) == FREE_2026 and new != old
        final = server.get()
        assert final["ids"] == new, "the sync is visible at once"

    errors = [a for a in answers if isinstance(a[2], str)]
    assert not errors, errors[:5]
    torn = [a for a in answers if a[2] not in (old, new)]
    assert not torn, f"{len(torn)} of {len(answers)} answers were neither set: {torn[:1]}"
    during = [
        a
        for a in answers
        if a[1] >= new_run.started_at.timestamp() and a[0] <= new_run.finished_at.timestamp()
    ]
    assert during, "no GET overlapped the sync; the test proved nothing"
    assert any(a[2] == old for a in answers) and any(a[2] == new for a in answers)
    assert len(answers) <= 500


# --------------------------------------------------------------------------------------------
# (c) Cache invalidation crosses processes


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_sync_in_one_process_invalidates_the_cache_of_the_web_processes(
    services, stand_in, tmp_path
):
    env = _env(services, stand_in)
    _sync(env, 2025)
    with _gunicorn(env, tmp_path / "gunicorn.log") as server:
        first = server.get()
        assert (first["source"], first["count"]) == ("database", FREE_2025)
        for _ in range(4):  # both workers now answer from the shared Redis entry
            again = server.get()
            assert (again["source"], again["count"]) == ("memory", FREE_2025)
        assert cache.get(CACHE_KEY) is not None, "the web process primed the shared cache"

        run = _sync(env, 2026, force=True)
        assert cache.get(CACHE_KEY) is None, "the sync process dropped the shared entry"

        after = server.get()
        assert (after["source"], after["count"]) == ("database", FREE_2026)
        assert after["ids"] == frozenset(run.free_ids)
        again = server.get()
        assert (again["source"], again["ids"]) == ("memory", after["ids"])


# --------------------------------------------------------------------------------------------
# (d) The schedule fires once per interval with two qcluster processes


@pytest.mark.parametrize("broker", ["orm", "redis"])
@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_two_clusters_run_the_due_schedule_once(broker, services, stand_in, tmp_path):
    from django_q.models import Schedule, Task

    from models_sync.apps import ensure_schedule

    redis_url = ""
    if broker == "redis":
        import redis

        redis_url = QCLUSTER_REDIS_URL
        client = redis.Redis.from_url(redis_url)
        try:
            client.ping()
        except redis.RedisError as exc:
            client.close()
            _unavailable(f"the django-q2 Redis broker at {redis_url} is unusable ({exc})")
        client.flushdb()  # db 14 is this test's broker
    env = _env(services, stand_in, REDIS_URL=redis_url)

    ensure_schedule()
    due = Schedule.objects.filter(name="openrouter-sync")
    # Only the sync schedule is due: other schedules (if any) wait, so the clusters stay on it.
    Schedule.objects.exclude(name="openrouter-sync").update(
        next_run=timezone.now() + timedelta(days=1)
    )
    assert due.update(next_run=timezone.now() - timedelta(seconds=1)) == 1
    interval = due.get().minutes
    logs = [tmp_path / "qcluster-1.log", tmp_path / "qcluster-2.log"]
    args = [sys.executable, "manage.py", "qcluster"]
    scheduled = SyncRun.objects.filter(trigger=SyncRun.Trigger.SCHEDULE)
    try:
        with (
            _process(args, env=env, log=logs[0]) as one,
            _process(args, env=env, log=logs[1]) as two,
        ):
            # A cluster's first scheduler pass comes ~30 s after it starts.
            fired = _wait_for(
                lambda: scheduled.exclude(status=SyncRun.Status.RUNNING).exists(), timeout=100
            )
            if fired:
                time.sleep(40)  # each cluster makes at least one more scheduler pass
            alive = (one.poll(), two.poll())
    finally:
        if broker == "redis":
            client.flushdb()
            client.close()
    report = "\n---\n".join(_tail(log, 2000) for log in logs)
    assert alive == (None, None), f"a cluster died: {alive}\n{report}"
    assert fired, f"no scheduled sync within 100 s\n{report}"
    runs = list(scheduled.values_list("status", "free_count"))
    assert runs == [(SyncRun.Status.SUCCESS, FREE_2026)], f"{runs}\n{report}"
    assert Task.objects.filter(group="openrouter-sync").count() == 1
    assert due.get().next_run > timezone.now() + timedelta(minutes=interval - 5)
    assert stand_in.hits == 1, "one fetch of the model list"


# --------------------------------------------------------------------------------------------
# check --deploy (runs everywhere)


def _check_deploy(**variables: str) -> subprocess.CompletedProcess:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C.UTF-8",
        "DJANGO_SETTINGS_MODULE": "tetika.settings",
        **variables,
    }
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_passes_with_debug_off_a_strong_key_and_hosts():
    result = _check_deploy(
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(64),
        ALLOWED_HOSTS="models.example.com",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_fails_with_the_default_insecure_key():
    result = _check_deploy(DEBUG="false", ALLOWED_HOSTS="models.example.com")
    assert result.returncode != 0
    assert "security.W009" in result.stderr
