"""A hostile or broken upstream, case by case: nothing is ever lost.

A broken *body* fails the run and leaves every row exactly as it was; a broken *record* is
skipped and counted while every valid record of the same body is stored. Set
``RELIABILITY_REPORT=docs/reliability.md`` to write the table of outcomes.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO
from typing import Any

import pytest
import requests
from django.core.management import CommandError, call_command

from models_sync.models import LLMModel, SyncRun

from .conftest import API_URL, fixture_records, table_dump

pytestmark = pytest.mark.django_db

BASE = fixture_records(2026)
VALID = {"id": "x/valid", "name": "Valid", "pricing": {"prompt": "0", "completion": "0"}}


def _with(record: Any) -> bytes:
    return json.dumps({"data": [*BASE, record]}).encode()


@dataclass
class Case:
    name: str
    expect: str  # "failed" | "refused" | "skipped" (record dropped) | "stored" (record kept)
    body: bytes | Exception | None = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    server: str | None = None  # behaviour of a real local server instead of `responses`
    skipped: int = 0
    settings: dict[str, Any] = field(default_factory=dict)
    check: Callable[[], None] | None = None


def _created_unknown() -> None:
    assert LLMModel.objects.get(model_id="x/valid").created_upstream is None


def _not_free() -> None:
    assert not LLMModel.objects.get(model_id="x/valid").is_free


def _free() -> None:
    assert LLMModel.objects.get(model_id="x/valid").is_free


CASES = [
    # --- broken bodies: the whole run fails, nothing changes
    Case("truncated JSON", "failed", b'{"data": [{"id": "a/b", "pri'),
    Case("HTML with status 200", "failed", b"<!DOCTYPE html><html><body>Maintenance</body></html>"),
    Case(
        "error object with status 200", "failed", b'{"error": {"message": "Internal", "code": 500}}'
    ),
    Case("'data' missing", "failed", b'{"models": []}'),
    Case("'data' is an object", "failed", b'{"data": {"id": "a/b"}}'),
    Case("'data' is a string", "failed", b'{"data": "none"}'),
    Case("top level is a number", "failed", b"1"),
    Case("non-UTF-8 bytes", "failed", b'{"data": [{"id": "a/\xff\xfe"}]}'),
    Case("empty body", "failed", b""),
    Case("nested 100 000 deep", "failed", b"[" * 100_000 + b"]" * 100_000),
    Case("NaN literal", "failed", b'{"data": [{"id": "a/b", "context_length": NaN}]}'),
    Case("60 MB body (size cap, streamed)", "failed", server="huge"),
    Case("slow drip that never finishes", "failed", server="drip"),
    Case("connection refused", "failed", server="refused"),
    Case("connection reset", "failed", server="reset"),
    Case("read timeout", "failed", requests.ReadTimeout("read timed out")),
    Case("301 to another host", "failed", b"", 301, {"Location": "https://evil.example/models"}),
    Case("401", "failed", b'{"error": "unauthorized"}', 401),
    Case("403", "failed", b"forbidden", 403),
    Case("404", "failed", b"not found", 404),
    Case("429 with Retry-After", "failed", b"slow down", 429, {"Retry-After": "1"}),
    Case("429 without Retry-After", "failed", b"slow down", 429),
    Case("500", "failed", b"oops", 500),
    Case("502", "failed", b"bad gateway", 502),
    Case("503", "failed", b"unavailable", 503),
    Case("empty list", "refused", b'{"data": []}'),
    Case("a third of the usual size", "refused", json.dumps({"data": BASE[:138]}).encode()),
    Case("top-level list (valid)", "stored", json.dumps([*BASE, VALID]).encode()),
    # --- broken records: skipped and counted, the rest stored
    Case("record without id", "skipped", _with({"name": "x", "pricing": {}}), skipped=1),
    Case("id null", "skipped", _with({"id": None, "pricing": {}}), skipped=1),
    Case("id is a number", "skipped", _with({"id": 42, "pricing": {}}), skipped=1),
    Case(
        "id of 10 000 characters", "skipped", _with({**VALID, "id": "a/" + "b" * 9998}), skipped=1
    ),
    Case(
        "id with control characters", "skipped", _with({**VALID, "id": "a/b\x07\x1b[2J"}), skipped=1
    ),
    Case("id with ../", "skipped", _with({**VALID, "id": "../../etc/passwd"}), skipped=1),
    Case("duplicate ids", "skipped", _with({**BASE[0], "name": "Impostor"}), skipped=1),
    Case("pricing null", "skipped", _with({**VALID, "pricing": None}), skipped=1),
    Case("pricing is a list", "skipped", _with({**VALID, "pricing": ["0", "0"]}), skipped=1),
    Case(
        "price 'NaN'",
        "skipped",
        _with({**VALID, "pricing": {"prompt": "NaN", "completion": "0"}}),
        skipped=1,
    ),
    Case(
        "price 'Infinity'",
        "skipped",
        _with({**VALID, "pricing": {"prompt": "Infinity", "completion": "0"}}),
        skipped=1,
    ),
    Case(
        "price '1e1000000' (past Decimal's exponent range)",
        "skipped",
        _with({**VALID, "pricing": {"prompt": "1e1000000", "completion": "0"}}),
        skipped=1,
    ),
    Case(
        "price '1e999'",
        "stored",
        _with({**VALID, "pricing": {"prompt": "1e999", "completion": "0"}}),
        check=_not_free,
    ),
    Case(
        "price '-0'",
        "stored",
        _with({**VALID, "pricing": {"prompt": "-0", "completion": "0"}}),
        check=_free,
    ),
    Case(
        "price '0.0'",
        "stored",
        _with({**VALID, "pricing": {"prompt": "0.0", "completion": "0.0"}}),
        check=_free,
    ),
    Case(
        "price ' 0 '",
        "stored",
        _with({**VALID, "pricing": {"prompt": " 0 ", "completion": "0"}}),
        check=_free,
    ),
    Case("context_length negative", "skipped", _with({**VALID, "context_length": -5}), skipped=1),
    Case(
        "context_length a string", "skipped", _with({**VALID, "context_length": "lots"}), skipped=1
    ),
    Case(
        "context_length a fraction",
        "skipped",
        _with({**VALID, "context_length": 4096.5}),
        skipped=1,
    ),
    Case("context_length 10^30", "skipped", _with({**VALID, "context_length": 10**30}), skipped=1),
    Case("architecture null", "stored", _with({**VALID, "architecture": None})),
    Case(
        "created in the year 3000",
        "stored",
        _with({**VALID, "created": 32_503_680_000}),
        check=_created_unknown,
    ),
    Case("created negative", "stored", _with({**VALID, "created": -1}), check=_created_unknown),
    Case("record is a string", "skipped", _with("a/b"), skipped=1),
]


# --- a real local server for what `responses` cannot fake (sockets, streams, timing)


class _Handler(BaseHTTPRequestHandler):
    behaviour = "huge"
    sent = 0

    def do_GET(self) -> None:
        if self.behaviour == "reset":
            self.connection.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
            self.connection.close()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        try:
            if self.behaviour == "huge":
                chunk = b" " * 65536
                self.wfile.write(b'{"data": [')
                for _ in range(60 * 16):  # 60 MiB, unless the client hangs up first
                    self.wfile.write(chunk)
                    type(self).sent += len(chunk)
            elif self.behaviour == "drip":
                self.wfile.write(b'{"data": [')
                for _ in range(200):  # bounded: 20 s at most
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    time.sleep(0.1)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args: Any) -> None:
        pass


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def local_server():
    servers: list[ThreadingHTTPServer] = []

    def start(behaviour: str) -> str:
        if behaviour == "refused":
            return f"http://127.0.0.1:{_free_port()}/api/v1/models"
        handler = type("Handler", (_Handler,), {"behaviour": behaviour, "sent": 0})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        start.handler = handler
        return f"http://127.0.0.1:{server.server_port}/api/v1/models"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


REPORT: list[dict[str, Any]] = []


@pytest.fixture(scope="module", autouse=True)
def _write_report():
    yield
    import os
    from pathlib import Path

    target = os.environ.get("RELIABILITY_REPORT")
    if not target or not REPORT:
        return
    lines = [
        "# Reliability: a hostile or broken upstream",
        "",
        "Generated by `RELIABILITY_REPORT=docs/reliability.md .venv/bin/pytest "
        "tests/test_hostile_upstream.py`. Each case starts from the 2026 fixture synced "
        "(414 rows); *rows before/after* count the table, *lost* counts rows that changed "
        "when nothing should have, or valid records that were not stored.",
        "",
        "| # | case | expected | run status | exit | skipped | rows before | rows after "
        "| lost | error |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for i, row in enumerate(REPORT, 1):
        error = row["error"].replace("|", "\\|")[:110]
        lines.append(
            f"| {i} | {row['case']} | {row['expect']} | {row['status']} | {row['exit']} | "
            f"{row['skipped']} | {row['before']} | {row['after']} | {row['lost']} | {error} |"
        )
    lost = sum(r["lost"] for r in REPORT)
    lines += [
        "",
        f"Cases run: {len(REPORT)}. Cases where anything was lost: "
        f"{sum(1 for r in REPORT if r['lost'])} ({lost} rows).",
        "",
    ]
    Path(target).write_text("\n".join(lines), "utf-8")


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_upstream(case: Case, serve, upstream, local_server, settings):
    settings.MODELS_SYNC_RETRIES = 1
    serve(records=BASE)
    call_command("sync_openrouter", stdout=StringIO())
    before = table_dump()
    if case.server:
        settings.MODELS_SYNC_API_URL = local_server(case.server)
        settings.MODELS_SYNC_READ_TIMEOUT = 1
        settings.MODELS_SYNC_CONNECT_TIMEOUT = 1
        upstream.add_passthru("http://127.0.0.1")
    else:
        upstream.add(
            "GET",
            API_URL,
            body=case.body,
            status=case.status,
            headers=case.headers,
            auto_calculate_content_length=False,
        )
    for name, value in case.settings.items():
        setattr(settings, name, value)

    out = StringIO()
    started = time.monotonic()
    exit_code = 0
    message = ""
    try:
        call_command("sync_openrouter", stdout=out)
    except CommandError as exc:
        exit_code = 1
        message = str(exc)
    elapsed = time.monotonic() - started
    run = SyncRun.objects.first()
    after = table_dump()

    if case.expect in ("failed", "refused"):
        lost = sum(1 for a, b in zip(before, after, strict=False) if a != b) + abs(
            len(before) - len(after)
        )
        REPORT.append(_row(case, run, exit_code, before, after, lost))
        assert (run.status, exit_code) == (case.expect, 1)
        assert "\n" not in message and message.startswith("Échec de la synchronisation : ")
        assert message == f"Échec de la synchronisation : {run.error}"
        assert after == before
    else:
        stored = set(LLMModel.objects.available().values_list("model_id", flat=True))
        expected_ids = {r["id"] for r in BASE} | (
            {VALID["id"]} if case.expect == "stored" else set()
        )
        lost = len(expected_ids - stored)
        REPORT.append(_row(case, run, exit_code, before, after, lost))
        assert (run.status, exit_code, run.skipped_count) == ("success", 0, case.skipped)
        assert stored == expected_ids
        if case.check:
            case.check()
    if case.server == "huge":
        assert local_server.handler.sent < 60 * 1024 * 1024
    assert elapsed < 15


def _row(case: Case, run: SyncRun, exit_code: int, before: list, after: list, lost: int):
    return {
        "case": case.name,
        "expect": case.expect,
        "status": run.status,
        "exit": exit_code,
        "skipped": run.skipped_count,
        "before": len(before),
        "after": len(after),
        "lost": lost,
        "error": run.error,
    }


def test_there_are_at_least_thirty_cases():
    assert len(CASES) >= 30
