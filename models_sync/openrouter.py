"""The OpenRouter boundary: the only module that speaks HTTP and knows the upstream schema.

It never touches the ORM. ``fetch`` / ``read_source`` return raw bytes, ``read_document`` walks
them one record at a time, ``ModelScan`` validates each record into a ``ParsedModel`` (or
recognises it by the hash of its text), ``parse_record`` validates one record.
A broken *body* raises ``UpstreamError`` (the whole sync fails); a broken *record* raises
``RecordError`` (that record is skipped and counted).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from . import conf

logger = logging.getLogger("models_sync")

MAX_ID_LENGTH = 200
MAX_NAME_LENGTH = 300
MAX_CONTEXT_LENGTH = 1_000_000_000
RETRY_STATUSES = (429, 500, 502, 503, 504)
CATEGORIES = ("general", "coding", "reasoning", "vision", "creative", "research")
# Part of every content hash: bump it when classification changes so the next sync reclassifies.
RULES_VERSION = "1"

# An id is ``author/slug[:variant]``; an optional leading "~" marks OpenRouter's aliases.
_ID_RE = re.compile(r"~?[A-Za-z0-9][\w.+@-]*(/[\w.:+@-]+)+", re.ASCII)
# Matched against lower-cased text: re.IGNORECASE makes each search about twice as slow.
_CODING_RE = re.compile(r"cod(e|er|ing|estral)\b|devstral|programm|\bswe\b|starcoder")
_RESEARCH_RE = re.compile(r"research|sonar|perplexity|search")
_CREATIVE_RE = re.compile(
    r"creative|story|roleplay|\brp\b|rp-|mytho|lyria|music|novel|fiction|unslop"
)
_REASONING_RE = re.compile(r"reason|think|\br1\b|-r1|r1-|r1t|\bqwq\b|prover|\bo[134]\b|z1")
# Substrings one of which every match of the pattern above them holds. Most names hold none,
# and ``in`` rules a pattern out several times faster than its alternation is searched (the
# four searches were a fifth of validating a record).
_CODING_HINTS = ("cod", "devstral", "programm", "swe", "starcoder")
_RESEARCH_HINTS = ("search", "sonar", "perplexity")
_CREATIVE_HINTS = (
    "creative",
    "story",
    "roleplay",
    "rp",
    "mytho",
    "lyria",
    "music",
    "novel",
    "fiction",
    "unslop",
)
_REASONING_HINTS = ("reason", "think", "r1", "qwq", "prover", "o1", "o3", "o4", "z1")


class UpstreamError(Exception):
    """The upstream answer cannot be used at all: nothing may be written."""

    def __init__(
        self, message: str, *, status: int | None = None, latency_ms: int | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.latency_ms = latency_ms


class RecordError(ValueError):
    """One record is unusable; it is skipped and counted, the rest of the body is kept."""


@dataclass(frozen=True, slots=True)
class FetchResult:
    body: bytes
    source: str
    status: int | None = None
    latency_ms: int | None = None


@dataclass(slots=True)
class ParsedModel:
    model_id: str
    canonical_slug: str
    name: str
    author: str
    description: str
    context_length: int
    input_modalities: list[str]
    output_modalities: list[str]
    has_vision: bool
    supported_parameters: list[str]
    pricing: dict[str, Any]
    is_free: bool
    non_free_reason: str
    category: str
    created_upstream: datetime | None
    metadata: dict[str, Any]
    raw: dict[str, Any]
    # ``price_signature(pricing)``, worked out from the prices the parse read anyway.
    price_signature: dict[str, str]


@dataclass(slots=True)
class ParseResult:
    models: list[ParsedModel] = field(default_factory=list)
    fetched: int = 0
    skipped: int = 0
    skip_reasons: list[str] = field(default_factory=list)


class _CappedRetry(Retry):
    """urllib3's Retry, honouring ``Retry-After`` but never for longer than the configured cap."""

    def get_retry_after(self, response):  # type: ignore[no-untyped-def]
        seconds = super().get_retry_after(response)
        if seconds is None:
            return None
        return min(seconds, conf.max_retry_after())


def build_session() -> requests.Session:
    retry = _CappedRetry(
        total=conf.retries(),
        connect=conf.retries(),
        read=conf.retries(),
        status=conf.retries(),
        allowed_methods=frozenset({"GET"}),
        status_forcelist=RETRY_STATUSES,
        backoff_factor=conf.backoff_factor(),
        respect_retry_after_header=True,
        raise_on_status=False,
        redirect=0,
    )
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers["User-Agent"] = conf.user_agent()
    session.headers["Accept"] = "application/json"
    return session


def _elapsed_ms(start: float) -> int:
    return round((time.monotonic() - start) * 1000)


def fetch(url: str | None = None, *, session: requests.Session | None = None) -> FetchResult:
    """GET the model list, streaming, under a size cap and an overall deadline."""
    url = url or conf.api_url()
    session = session or build_session()
    headers = {}
    if conf.api_key():
        headers["Authorization"] = f"Bearer {conf.api_key()}"
    cap = conf.max_response_bytes()
    timeout = (conf.connect_timeout(), conf.read_timeout())
    deadline = conf.connect_timeout() + 2 * conf.read_timeout()
    host = urlsplit(url).hostname or url
    logger.info("[OpenRouter Sync] Fetching models from %s", url)
    start = time.monotonic()
    try:
        with session.get(
            url, headers=headers, timeout=timeout, stream=True, allow_redirects=False
        ) as response:
            status = response.status_code
            if 300 <= status < 400:
                location = response.headers.get("Location", "")
                raise UpstreamError(
                    f"{host} answered HTTP {status} redirecting to {location!r}; "
                    "redirects are not followed",
                    status=status,
                    latency_ms=_elapsed_ms(start),
                )
            if status >= 400:
                raise UpstreamError(
                    f"{host} answered HTTP {status} {response.reason or ''}".rstrip(),
                    status=status,
                    latency_ms=_elapsed_ms(start),
                )
            declared = response.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > cap:
                raise UpstreamError(
                    f"response of {int(declared)} bytes is over the {cap}-byte limit; refused",
                    status=status,
                    latency_ms=_elapsed_ms(start),
                )
            chunks: list[bytes] = []
            size = 0
            while True:
                # read1 returns what has arrived, so a slow drip still meets the deadline.
                chunk = response.raw.read1(64 * 1024, decode_content=True)
                if not chunk:
                    break
                size += len(chunk)
                if size > cap:
                    raise UpstreamError(
                        f"response is over the {cap}-byte limit; refused",
                        status=status,
                        latency_ms=_elapsed_ms(start),
                    )
                if time.monotonic() - start > deadline:
                    raise UpstreamError(
                        f"{host} took over {deadline:g} s to send the response (timeout)",
                        status=status,
                        latency_ms=_elapsed_ms(start),
                    )
                chunks.append(chunk)
    except requests.Timeout as exc:
        raise UpstreamError(
            f"{host} did not answer in time (timeout): {type(exc).__name__}",
            latency_ms=_elapsed_ms(start),
        ) from exc
    except requests.ConnectionError as exc:
        raise UpstreamError(
            f"could not reach {host}: {_short_reason(exc)}", latency_ms=_elapsed_ms(start)
        ) from exc
    except requests.RequestException as exc:
        raise UpstreamError(
            f"request to {host} failed: {_short_reason(exc)}", latency_ms=_elapsed_ms(start)
        ) from exc
    except (OSError, ValueError) as exc:  # urllib3 protocol/decoding errors while streaming
        if isinstance(exc, UpstreamError):
            raise
        raise UpstreamError(
            f"reading the response from {host} failed: {_short_reason(exc)}",
            latency_ms=_elapsed_ms(start),
        ) from exc
    latency = _elapsed_ms(start)
    logger.info("[OpenRouter Sync] Received %d bytes in %d ms", size, latency)
    return FetchResult(body=b"".join(chunks), source=url, status=status, latency_ms=latency)


def _short_reason(exc: BaseException) -> str:
    """The root cause in a few words, not urllib3's nested retry wrapper."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectionRefusedError):
            return "connection refused"
        if isinstance(current, ConnectionResetError):
            return "connection reset by peer"
        if type(current).__name__ == "RemoteDisconnected":
            return "connection closed without an answer"
        if type(current).__name__ == "NameResolutionError":
            return "host name could not be resolved"
        nested = [a for a in getattr(current, "args", ()) if isinstance(a, BaseException)]
        current = (
            getattr(current, "reason", None)
            if isinstance(getattr(current, "reason", None), BaseException)
            else (nested[-1] if nested else current.__cause__ or current.__context__)
        )
    text = str(exc) or type(exc).__name__
    text = " ".join(text.split())
    return text if len(text) <= 200 else text[:197] + "..."


def read_source(source: str) -> FetchResult:
    """A snapshot instead of OpenRouter: another URL, or a local file (offline use)."""
    if source.startswith(("http://", "https://")):
        return fetch(source)
    path = Path(source)
    if not path.is_file():
        raise UpstreamError(f"snapshot file not found: {source}")
    size = path.stat().st_size
    cap = conf.max_response_bytes()
    if size > cap:
        raise UpstreamError(f"snapshot of {size} bytes is over the {cap}-byte limit; refused")
    return FetchResult(body=path.read_bytes(), source=str(path))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_WHITESPACE = re.compile(r"[ \t\n\r]*")  # JSON's own whitespace, as in json.decoder
_Record = tuple[int, int, Any]  # start and end offsets in the text, and the decoded record
_HTML = re.compile(r"\s*<")


def read_document(body: bytes) -> Document:
    """The body as text, ready to be walked; ``UpstreamError`` if it cannot be JSON at all."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UpstreamError(f"response is not UTF-8 (invalid byte at offset {exc.start})") from exc
    if not text or text.isspace():
        raise UpstreamError("response is empty")
    return Document(text)


class Document:
    """A model list read one record at a time, so that a 150 MiB body is never held parsed.

    Only the top level (``{"data": [...], ...}`` or a bare list) is walked here; every value is
    decoded by the standard library's ``JSONDecoder.raw_decode``, so records and error messages
    are the ones ``json.loads`` gives. A record can be decoded again from its offset.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self._decoder = json.JSONDecoder(parse_constant=_reject_constant, parse_float=self._float)
        self._far = False
        # Starts of the records holding a number with an exponent of 100 or more, or 300
        # digits: PostgreSQL's numeric refuses some as written (1e-16384) and Python reads some
        # as 0.0 or infinity (1e-400, 1e999), so their text is not stored as it is.
        self.far_numbers: set[int] = set()

    def _float(self, literal: str) -> float:
        _mantissa, _e, exponent = literal.lower().partition("e")
        if len(exponent.lstrip("+-").lstrip("0")) >= 3 or len(literal) >= 300:
            self._far = True
        return float(literal)

    def records(self) -> Iterator[_Record]:
        """``(start, end, record)`` for each record in order; ``UpstreamError`` for a broken body,
        raised when the walk reaches the fault (a caller reads them all before writing)."""
        try:
            yield from self._walk()
        except RecursionError as exc:
            raise UpstreamError("response is nested too deep to be a model list") from exc
        except ValueError as exc:
            if _HTML.match(self.text):
                raise UpstreamError("response is HTML, not JSON") from exc
            raise UpstreamError(f"response is not valid JSON: {exc}") from exc

    def decode_at(self, start: int) -> Any:
        return self._decoder.raw_decode(self.text, start)[0]

    def text_at(self, start: int, end: int) -> str:
        return self.text[start:end]

    def content_hash(self, start: int, end: int) -> str:
        """The record's text as received, with the rules version: equal means nothing to redo."""
        text = f"{RULES_VERSION}\n{self.text[start:end]}".encode("utf-8", "surrogatepass")
        return hashlib.sha1(text, usedforsecurity=False).hexdigest()

    def _skip(self, pos: int) -> int:
        return _WHITESPACE.match(self.text, pos).end()  # type: ignore[union-attr]

    def _expect_end(self, pos: int) -> None:
        pos = self._skip(pos)
        if pos != len(self.text):
            raise json.JSONDecodeError("Extra data", self.text, pos)

    def _walk(self) -> Iterator[_Record]:
        text = self.text
        pos = self._skip(0)
        if text.startswith("[", pos):
            self._expect_end((yield from self._array(pos)))
            return
        if not text.startswith("{", pos):
            document, end = self._decoder.raw_decode(text, pos)
            self._expect_end(end)
            raise UpstreamError(f"response is {_json_type(document)}, not a model list")
        end, listed, members = yield from self._object(pos)
        self._expect_end(end)
        if listed and "data" in members:
            raise UpstreamError("response has more than one 'data' key")
        if listed:
            return
        if "data" in members:
            data = members["data"]
            raise UpstreamError(f"response 'data' is {_json_type(data)}, not a list of models")
        if "error" in members:
            error = members["error"]
            message = error.get("message") if isinstance(error, dict) else error
            raise UpstreamError(f"upstream returned an error: {str(message)[:200]}")
        raise UpstreamError("response has no 'data' list of models")

    def _array(self, pos: int) -> Generator[_Record, None, int]:
        """Yields each item of the list at ``pos``; returns the position after it."""
        text, decode = self.text, self._decoder.raw_decode
        pos = self._skip(pos + 1)
        if text.startswith("]", pos):
            return pos + 1
        while True:
            self._far = False
            record, end = decode(text, pos)
            if self._far:
                self.far_numbers.add(pos)
            yield pos, end, record
            pos = self._skip(end)
            if text.startswith("]", pos):
                return pos + 1
            if not text.startswith(",", pos):
                raise json.JSONDecodeError("Expecting ',' delimiter", text, pos)
            pos = self._skip(pos + 1)

    def _object(self, pos: int) -> Generator[_Record, None, tuple[int, bool, dict[str, Any]]]:
        """Streams the first ``data`` list of the object at ``pos`` and decodes every other
        member; returns the position after it, whether a list was streamed, and the members."""
        text, decode = self.text, self._decoder.raw_decode
        members: dict[str, Any] = {}
        listed = False
        pos = self._skip(pos + 1)
        if text.startswith("}", pos):
            return pos + 1, listed, members
        while True:
            if not text.startswith('"', pos):
                raise json.JSONDecodeError(
                    "Expecting property name enclosed in double quotes", text, pos
                )
            key, pos = decode(text, pos)
            pos = self._skip(pos)
            if not text.startswith(":", pos):
                raise json.JSONDecodeError("Expecting ':' delimiter", text, pos)
            pos = self._skip(pos + 1)
            if key == "data" and not listed and text.startswith("[", pos):
                pos = yield from self._array(pos)
                listed = True
            else:
                members[key], pos = decode(text, pos)
            pos = self._skip(pos)
            if text.startswith("}", pos):
                return pos + 1, listed, members
            if not text.startswith(",", pos):
                raise json.JSONDecodeError("Expecting ',' delimiter", text, pos)
            pos = self._skip(pos + 1)


def parse_body(body: bytes) -> list[Any]:
    """The body's list of records, or ``UpstreamError`` saying why it is not a model list."""
    return [record for _start, _end, record in read_document(body).records()]


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    return names.get(type(value), type(value).__name__)


class Entry(NamedTuple):
    """A usable record of a scanned body."""

    model_id: str
    start: int  # offsets in the document, to decode the record again or store its text
    end: int
    content_hash: str
    # None: ``known`` had this hash, the record was not parsed; ``RecordFacts`` when ``parse``
    # only checked it.
    model: ParsedModel | RecordFacts | None


class ModelScan:
    """Validates records one at a time (with ``parse``, OpenRouter's by default); bad ones are
    skipped and counted, a duplicate id keeps its first occurrence. A record whose id and text
    hash are in ``known`` (what the last sync stored) is passed on unparsed: the costly part of
    a sync where nothing changed is then reading the JSON, not validating it again."""

    def __init__(
        self,
        records: Iterable[_Record],
        *,
        document: Document | None = None,
        parse: Callable[[Any], ParsedModel | RecordFacts] | None = None,
        known: Mapping[str, str] | None = None,
    ) -> None:
        self._records = records
        self._document = document
        self._parse = parse or parse_record
        self._known = known or {}
        self.fetched = 0
        self.skipped = 0
        self.skip_reasons: list[str] = []

    def __iter__(self) -> Iterator[Entry]:
        seen: set[str] = set()
        for index, (start, end, record) in enumerate(self._records):
            self.fetched += 1
            digest = self._document.content_hash(start, end) if self._document else ""
            model_id = record.get("id") if isinstance(record, dict) else None
            if (
                isinstance(model_id, str)
                and digest
                and self._known.get(model_id) == digest
                and model_id not in seen
            ):
                seen.add(model_id)
                yield Entry(model_id, start, end, digest, None)
                continue
            try:
                model = self._parse(record)
            except RecordError as exc:
                self._skip(index, str(exc))
                continue
            if model.model_id in seen:
                self._skip(index, f"duplicate id {model.model_id!r}")
                continue
            seen.add(model.model_id)
            yield Entry(model.model_id, start, end, digest, model)
        if self.skipped:
            logger.warning(
                "[OpenRouter Sync] Skipped %d malformed records: %s",
                self.skipped,
                "; ".join(self.skip_reasons[:5]),
            )

    def _skip(self, index: int, reason: str) -> None:
        self.skipped += 1
        if len(self.skip_reasons) < 20:
            self.skip_reasons.append(f"record {index}: {reason}")


def scan_document(
    document: Document,
    *,
    parse: Callable[[Any], ParsedModel | RecordFacts] | None = None,
    known: Mapping[str, str] | None = None,
) -> ModelScan:
    return ModelScan(document.records(), document=document, parse=parse, known=known)


def parse_models(
    records: list[Any], parse: Callable[[Any], ParsedModel] | None = None
) -> ParseResult:
    """Every record validated at once (tests, the benchmark's naive baseline)."""
    scan = ModelScan(((i, i, r) for i, r in enumerate(records)), parse=parse)
    models = [entry.model for entry in scan if entry.model is not None]
    return ParseResult(
        models=models, fetched=scan.fetched, skipped=scan.skipped, skip_reasons=scan.skip_reasons
    )


class RecordFacts(NamedTuple):
    """What a sync needs of a record before it writes anything: that the record is valid,
    where it sorts and whether it is free (``record_facts``)."""

    model_id: str
    author: str
    name: str
    context_length: int
    is_free: bool


class _Checked(NamedTuple):
    model_id: str
    pricing: dict[str, Any]
    prices: dict[str, Decimal]
    context_length: int
    architecture: dict[str, Any]
    modalities: tuple[tuple[str, ...], tuple[str, ...], bool]
    name: str
    reason: str


def _checked(record: Any) -> _Checked:
    """Every check that can reject a record, and what deciding whether it is free needs."""
    if not isinstance(record, dict):
        raise RecordError(f"record is {_json_type(record)}, not an object")
    model_id = record.get("id")
    if not isinstance(model_id, str):
        raise RecordError("missing id" if model_id is None else "id is not a string")
    if not model_id or len(model_id) > MAX_ID_LENGTH:
        raise RecordError(f"id has {len(model_id)} characters (1 to {MAX_ID_LENGTH} allowed)")
    if not _ID_RE.fullmatch(model_id) or any(part in {".", ".."} for part in model_id.split("/")):
        raise RecordError(f"id {model_id[:60]!r} is not of the form author/model")

    pricing = record.get("pricing")
    if not isinstance(pricing, dict):
        raise RecordError(f"pricing is {_json_type(pricing)}, not an object")
    prices = _parse_prices(pricing)

    context_length = _parse_context(record)
    architecture = record.get("architecture")
    if not isinstance(architecture, dict):
        architecture = {}
    modalities = _modalities(architecture)
    name = record.get("name")
    name = name.strip() if isinstance(name, str) and name.strip() else model_id
    reason = free_verdict(model_id, prices, modalities[1])
    return _Checked(
        model_id, pricing, prices, context_length, architecture, modalities, name, reason
    )


def _author(model_id: str) -> str:
    return model_id.split("/", 1)[0].lstrip("~").lower()


def record_facts(record: Any) -> RecordFacts:
    """What ``parse_record`` would say of the record's validity (the same ``RecordError``), sort
    key and price, at about a third of its cost: a sync that cannot keep every parsed model
    until it writes reads the others this way first, and parses them once, when it writes."""
    checked = _checked(record)
    return RecordFacts(
        checked.model_id,
        _author(checked.model_id),
        checked.name[:MAX_NAME_LENGTH],
        checked.context_length,
        not checked.reason,
    )


def parse_record(record: Any) -> ParsedModel:
    model_id, pricing, prices, context_length, architecture, modalities, name, reason = _checked(
        record
    )
    input_modalities, output_modalities, has_vision = modalities
    description = record.get("description")
    description = description if isinstance(description, str) else ""
    slug = record.get("canonical_slug")
    slug = slug if isinstance(slug, str) and len(slug) <= MAX_ID_LENGTH else ""
    parameters = _parameters(record.get("supported_parameters"))
    top_provider = record.get("top_provider")
    metadata = {
        "architecture": architecture,
        "topProvider": top_provider if isinstance(top_provider, dict) else None,
        "perRequestLimits": record.get("per_request_limits"),
    }
    return ParsedModel(
        model_id=model_id,
        canonical_slug=slug,
        name=name[:MAX_NAME_LENGTH],
        author=_author(model_id),
        description=description,
        context_length=context_length,
        input_modalities=list(input_modalities),
        output_modalities=list(output_modalities),
        has_vision=has_vision,
        supported_parameters=parameters,
        pricing=pricing,
        is_free=not reason,
        non_free_reason=reason,
        category=categorize(model_id, name, has_vision, parameters),
        created_upstream=_parse_created(record.get("created")),
        metadata=metadata,
        raw=record,
        price_signature=_signature(prices),
    )


def _parse_prices(pricing: dict[str, Any]) -> dict[str, Decimal]:
    """Every priced component as a Decimal; non-scalar values (2026's ``overrides``) are ignored."""
    prices: dict[str, Decimal] = {}
    for key, value in pricing.items():
        if isinstance(value, bool) or value is None or isinstance(value, list | dict):
            if key in ("prompt", "completion") and value is not None:
                raise RecordError(f"price {key!r} is {_json_type(value)}, not a number")
            continue
        amount = _amount(value.strip() if isinstance(value, str) else str(value))
        if isinstance(amount, str):
            raise RecordError(f"price {key!r} {amount}: {str(value)[:40]!r}")
        prices[key] = amount
    return prices


# A price states an amount of dollars a token, a request or an image: one whose text is longer,
# or whose magnitude is further from 1, is not a price (1e-999998 would normalise to a million
# digits, kept by the memo below and stored in the change log; 9.99...E+999999 would overflow).
# 1e999 is still read, as a price nobody pays.
MAX_PRICE_TEXT = 100
MAX_PRICE_EXPONENT = 1000


def _amount(text: str) -> Decimal | str:
    """The amount a price's text states, or why it states none."""
    if len(text) > MAX_PRICE_TEXT:
        return f"is longer than {MAX_PRICE_TEXT} characters"
    return _read_amount(text)


# A catalogue states a few dozen distinct prices, each in hundreds of records: each text is
# read (and each amount normalised, below) once per process instead of once per record.
@lru_cache(maxsize=4096)
def _read_amount(text: str) -> Decimal | str:
    try:
        amount = Decimal(text)
    except (InvalidOperation, ValueError, TypeError):
        return "is not a number"
    if not amount.is_finite():
        return "is not a finite number"
    if amount and abs(amount.adjusted()) > MAX_PRICE_EXPONENT:
        return "is out of range"
    return amount


def price_signature(pricing: Any) -> dict[str, str]:
    """The non-zero scalar prices, normalised, so that schema noise ("0" keys) is no change."""
    if not isinstance(pricing, dict):
        return {}
    try:
        prices = _parse_prices(pricing)
    except RecordError:
        return {}
    return _signature(prices)


def _signature(prices: dict[str, Decimal]) -> dict[str, str]:
    return {k: _normalized(v) for k, v in sorted(prices.items()) if v != 0}


@lru_cache(maxsize=4096)
def _normalized(amount: Decimal) -> str:
    return format(amount.normalize(), "f")


def free_verdict(model_id: str, prices: dict[str, Decimal], output_modalities: list[str]) -> str:
    """Empty when the model is free, otherwise why it is not (kept on the row for inspection)."""
    for key in ("prompt", "completion"):
        if key not in prices:
            return f"no {key} price"
        if prices[key] != 0:
            return f"{key} costs {prices[key]}"
    for key, amount in prices.items():
        if amount != 0:
            return f"{key} costs {amount}"
    non_text = [m for m in output_modalities if m != "text"]
    if non_text and not model_id.endswith(":free"):
        return f"outputs {'+'.join(non_text)}, priced outside 'pricing'"
    return ""


def _parse_context(record: dict[str, Any]) -> int:
    value = record.get("context_length")
    if value is None:
        top = record.get("top_provider")
        value = top.get("context_length") if isinstance(top, dict) else None
        if value is None:
            return 0
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RecordError(f"context_length is {_json_type(value)}, not a number")
    if isinstance(value, float) and not value.is_integer():
        raise RecordError(f"context_length {value!r} is not a whole number")
    if not 0 <= value <= MAX_CONTEXT_LENGTH:
        shown = f"{value:g}" if abs(value) < 1e300 else f"{str(value)[:20]}..."
        raise RecordError(f"context_length {shown} is out of range")
    return int(value)


def _parse_created(value: Any) -> datetime | None:
    """A plausible Unix timestamp, else unknown (year 3000 or negative is a broken clock)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not 1_400_000_000 <= value <= time.time() + 86_400:
        return None
    return datetime.fromtimestamp(value, tz=UTC)


def _modalities(
    architecture: dict[str, Any],
) -> tuple[tuple[str, ...], tuple[str, ...], bool]:
    modality = architecture.get("modality")
    return _modalities_of(
        modality if isinstance(modality, str) else "",
        _stated(architecture.get("input_modalities")),
        _stated(architecture.get("output_modalities")),
    )


def _stated(value: Any) -> tuple[str, ...] | None:
    """A non-empty list of strings as a tuple; None where the modality string decides."""
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return tuple(value)
    return None


def _modalities_of(
    modality: str, inputs: tuple[str, ...] | None, outputs: tuple[str, ...] | None
) -> tuple[tuple[str, ...], tuple[str, ...], bool]:
    if _memoizable((modality, *(inputs or ()), *(outputs or ()))):
        return _memo_modalities(modality, inputs, outputs)
    return _derive_modalities(modality, inputs, outputs)


def _memoizable(strings: tuple[Any, ...]) -> bool:
    """Short enough to be kept by a memo (1 024 keys of at most 1 000 characters): what one
    process keeps of the texts it has read stays a few MiB, whatever an answer holds."""
    return (
        len(strings) <= 50
        and all(type(s) is str for s in strings)
        and sum(map(len, strings)) <= 1000
    )


def _derive_modalities(
    modality: str, inputs: tuple[str, ...] | None, outputs: tuple[str, ...] | None
) -> tuple[tuple[str, ...], tuple[str, ...], bool]:
    """Stated modalities win (each once); else the ``modality`` string (``text+image->text``,
    or 2024's ``multimodal``) tells."""
    left, arrow, right = modality.partition("->")
    if inputs is not None:
        inputs = tuple(dict.fromkeys(inputs))
    elif modality == "multimodal":
        inputs = ("text", "image")
    else:
        inputs = tuple(m for m in left.split("+") if m) or ("text",)
    if outputs is not None:
        outputs = tuple(dict.fromkeys(outputs))
    else:
        outputs = tuple(m for m in right.split("+") if m) if arrow else ("text",)
    has_vision = "image" in inputs or modality == "multimodal" or "image" in left.split("+")
    return inputs, outputs, has_vision


# A catalogue states a handful of modality combinations and parameter lists, each in many
# records: they were a third of validating a record.
_memo_modalities = lru_cache(maxsize=1024)(_derive_modalities)


def _parameters(value: Any) -> list[str]:
    """The supported parameters, sorted, each once; what is not a short string is dropped."""
    if not isinstance(value, list):
        return []
    stated = tuple(value)
    if _memoizable(stated):
        return list(_memo_parameters(stated))
    return list(_sorted_parameters(stated))


def _sorted_parameters(value: Iterable[Any]) -> tuple[str, ...]:
    return tuple(sorted({p for p in value if isinstance(p, str) and len(p) <= 100}))


_memo_parameters = lru_cache(maxsize=1024)(_sorted_parameters)


def categorize(model_id: str, name: str, has_vision: bool, parameters: list[str]) -> str:
    """One category from the name and the capabilities; 'vision' only for vision models."""
    text = f"{model_id} {name}".lower()
    if _mentions(text, _CODING_HINTS, _CODING_RE):
        return "coding"
    if _mentions(text, _RESEARCH_HINTS, _RESEARCH_RE):
        return "research"
    if _mentions(text, _CREATIVE_HINTS, _CREATIVE_RE):
        return "creative"
    if has_vision:
        return "vision"
    if _mentions(text, _REASONING_HINTS, _REASONING_RE) or "reasoning" in parameters:
        return "reasoning"
    return "general"


def _mentions(text: str, hints: tuple[str, ...], pattern: re.Pattern[str]) -> bool:
    for hint in hints:
        if hint in text:
            return pattern.search(text) is not None
    return False


def is_new(
    created: datetime | None,
    first_seen: datetime | None,
    *,
    since: datetime,
    catalogue_start: datetime | None,
) -> bool:
    """New: created upstream after ``since``; with no ``created``, first seen after ``since`` by a
    sync later than the one that filled the catalogue (a first sync does not make everything new).
    """
    if created is not None:
        return created >= since
    if first_seen is None or first_seen < since:
        return False
    return catalogue_start is not None and first_seen > catalogue_start


def new_since(now: datetime) -> datetime:
    return now - timedelta(days=conf.new_days())


# --------------------------------------------------------------------------------------------
# Live health: per-provider endpoints of a model, and an optional one-token probe


@dataclass(frozen=True, slots=True)
class EndpointHealth:
    status: str  # up | degraded | down
    endpoints: int
    free_endpoints: int
    uptime: float | None  # percent, last 30 minutes, best free endpoint
    latency_ms: int | None  # p50, last 30 minutes, best free endpoint
    providers: list[str]


UP_THRESHOLD = 90.0


def endpoints_url(model_id: str, canonical_slug: str) -> str:
    """``/models/{author}/{slug}/endpoints``, built from the canonical slug (as links.details)."""
    slug = canonical_slug or model_id.lstrip("~").split(":", 1)[0]
    if not _ID_RE.fullmatch(slug) or any(p in {".", ".."} for p in slug.split("/")):
        raise RecordError(f"cannot build an endpoints URL from {slug!r}")
    return f"{conf.api_url().rstrip('/')}/{slug}/endpoints"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if value == value and abs(value) < 1e12 else None


def parse_endpoints(body: bytes) -> EndpointHealth:
    """Health from an endpoints answer; free endpoints (zero prompt and completion) count first."""
    try:
        document = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise UpstreamError(f"endpoints answer is not JSON: {exc}") from exc
    data = document.get("data") if isinstance(document, dict) else None
    endpoints = data.get("endpoints") if isinstance(data, dict) else None
    if not isinstance(endpoints, list):
        raise UpstreamError("endpoints answer has no 'data.endpoints' list")
    endpoints = [e for e in endpoints if isinstance(e, dict)]
    free = []
    for endpoint in endpoints:
        try:
            prices = _parse_prices(endpoint.get("pricing") or {})
        except RecordError:
            continue
        if prices.get("prompt", 1) == 0 and prices.get("completion", 1) == 0:
            free.append(endpoint)
    considered = free or endpoints
    uptimes = [u for e in considered if (u := _number(e.get("uptime_last_30m"))) is not None]
    latencies = []
    for endpoint in considered:
        latency = endpoint.get("latency_last_30m")
        p50 = _number(latency.get("p50")) if isinstance(latency, dict) else _number(latency)
        if p50 is not None and p50 >= 0:
            latencies.append(p50 * 1000 if isinstance(latency, dict) else p50)
    uptime = max(uptimes) if uptimes else None
    if not considered:
        status = "down"
    elif uptime is not None and uptime < UP_THRESHOLD:
        status = "degraded"
    else:
        status = "up"
    providers = [str(e.get("provider_name") or e.get("tag") or "?")[:60] for e in considered]
    return EndpointHealth(
        status=status,
        endpoints=len(endpoints),
        free_endpoints=len(free),
        uptime=round(uptime, 2) if uptime is not None else None,
        latency_ms=round(min(latencies)) if latencies else None,
        providers=providers[:10],
    )


def fetch_endpoints(
    model_id: str, canonical_slug: str, *, session: requests.Session | None = None
) -> EndpointHealth:
    result = fetch(endpoints_url(model_id, canonical_slug), session=session)
    return parse_endpoints(result.body)


@dataclass(frozen=True, slots=True)
class ProbeResult:
    ok: bool
    latency_ms: int
    status: int | None
    error: str


def chat_url() -> str:
    base = conf.api_url().rstrip("/")
    return (base[: -len("/models")] if base.endswith("/models") else base) + "/chat/completions"


def probe(model_id: str, *, session: requests.Session | None = None) -> ProbeResult:
    """A one-token chat completion, to see whether a free model really answers (needs a key)."""
    session = session or requests.Session()
    start = time.monotonic()
    try:
        response = session.post(
            chat_url(),
            json={
                "model": model_id,
                "messages": [{"role": "user", "content": "ping"}],
                "max_tokens": 1,
            },
            headers={
                "Authorization": f"Bearer {conf.api_key()}",
                "User-Agent": conf.user_agent(),
            },
            timeout=(conf.connect_timeout(), conf.read_timeout()),
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        return ProbeResult(False, _elapsed_ms(start), None, _short_reason(exc))
    ok = response.status_code == 200
    error = "" if ok else f"HTTP {response.status_code}"
    if ok:
        try:
            ok = bool(response.json().get("choices"))
        except ValueError:
            ok = False
        error = "" if ok else "answer has no choices"
    return ProbeResult(ok, _elapsed_ms(start), response.status_code, error)
