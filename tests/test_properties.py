"""Property tests: whatever upstream or a client sends, nothing raises, nothing is half-written."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest
import responses
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models_sync import openrouter
from models_sync.models import LLMModel, SyncRun
from models_sync.services import SyncError, sync_models

from .conftest import API_URL, fixture_records

pytestmark = pytest.mark.django_db
PROPERTY = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
VALID = fixture_records(2026)[:40]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)
junk_records = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {},
        optional={
            "id": st.one_of(st.text(max_size=30), st.integers(), st.none()),
            "name": json_values,
            "pricing": st.one_of(
                json_values,
                st.dictionaries(
                    st.sampled_from(["prompt", "completion", "request", "image"]),
                    st.one_of(st.text(max_size=8), st.integers(), json_values),
                ),
            ),
            "context_length": json_values,
            "architecture": json_values,
            "created": json_values,
        },
    ),
)


def _dump():
    return list(LLMModel.objects.order_by("model_id").values_list("model_id", "content_hash"))


def _sync_body(body: bytes):
    with responses.RequestsMock() as mock:
        mock.add(responses.GET, API_URL, body=body)
        try:
            return sync_models(trigger="cli")
        except SyncError as exc:
            return exc.run


@PROPERTY
@given(document=json_values)
def test_arbitrary_json_never_raises_or_half_writes(document, settings):
    settings.MODELS_SYNC_RETRIES = 0
    LLMModel.objects.all().delete()
    _sync_body(json.dumps({"data": VALID}).encode())
    before = _dump()
    run = _sync_body(json.dumps(document).encode())
    assert run.status in {"success", "failed", "refused"}
    if run.status != "success":
        assert _dump() == before


@PROPERTY
@given(junk=st.lists(junk_records, max_size=8), positions=st.randoms())
def test_valid_records_survive_any_junk_beside_them(junk, positions, settings):
    settings.MODELS_SYNC_RETRIES = 0
    LLMModel.objects.all().delete()
    SyncRun.objects.all().delete()
    records = [*VALID, *junk]
    positions.shuffle(records)
    run = _sync_body(json.dumps({"data": records}).encode())
    assert run.status == "success"
    stored = set(LLMModel.objects.values_list("model_id", flat=True))
    assert {r["id"] for r in VALID} <= stored


PARAMS = ["refresh", "includeStats", "provider", "hasVision", "minContextLength", "search", "x"]


@PROPERTY
@given(query=st.lists(st.tuples(st.sampled_from(PARAMS), st.text(max_size=300)), max_size=6))
def test_api_never_answers_500(client, serve, query):
    serve(2026)
    response = client.get("/api/models/sync?" + urlencode(query))
    assert response.status_code in {200, 304, 400, 401, 429, 503}
    assert response["Content-Type"] == "application/json"
    assert "success" in response.json()


@PROPERTY
@given(
    query=st.lists(
        st.tuples(st.sampled_from(["since", "kind", "limit", "y"]), st.text(max_size=60)),
        max_size=5,
    )
)
def test_changes_api_never_answers_500(client, query):
    response = client.get("/api/models/changes?" + urlencode(query))
    assert response.status_code in {200, 400}
    assert "success" in response.json()


def _loads_reference(text: str) -> list | str:
    """What ``json.loads`` makes of a body: its records, or why it is not a model list."""
    if not text.strip():
        return "response is empty"
    try:
        document = json.loads(text)
    except ValueError as exc:
        return f"response is not valid JSON: {exc}"
    if isinstance(document, list):
        return document
    if isinstance(document, dict) and isinstance(document.get("data"), list):
        return document["data"]
    return "not a model list"


@settings(max_examples=300, deadline=None)
@given(
    document=st.one_of(
        json_values,
        st.fixed_dictionaries(
            {"data": st.lists(json_values, max_size=4)}, optional={"x": json_values}
        ),
    ),
    indent=st.sampled_from([None, 0, 2]),
    cut=st.integers(min_value=0, max_value=200),
    junk=st.sampled_from(["", " ", ",", "]", "}", "x", '"', "{", "[1"]),
)
def test_streamed_body_reads_as_json_loads(document, indent, cut, junk):
    """The record-by-record walk gives json.loads' records and json.loads' error messages,
    on whole, truncated and corrupted bodies."""
    from models_sync.openrouter import UpstreamError, parse_body

    text = json.dumps(document, indent=indent)
    text = text[: len(text) - cut] + junk if cut else text
    expected = _loads_reference(text)
    try:
        got: list | str = parse_body(text.encode())
    except UpstreamError as exc:
        got = exc.message
    if expected == "not a model list":  # a valid document of another shape: our own words
        assert isinstance(got, str)
        assert not got.startswith("response is not valid JSON")
    else:
        assert got == expected


def _verdict(check, record):
    try:
        return check(record)
    except Exception as exc:  # anything but a RecordError fails the property below
        return f"{type(exc).__name__}: {exc}"


prices = st.one_of(
    st.decimals().map(str),
    st.from_regex(r"-?[0-9]{1,3}(\.[0-9]{1,30})?[eE][+-]?[0-9]{1,7}", fullmatch=True),
    st.text(max_size=120),
)


@PROPERTY
@given(
    price=prices,
    context=st.one_of(st.integers(min_value=-(10**400), max_value=10**400), st.floats()),
)
def test_any_price_or_context_is_accepted_or_a_record_error(price, context):
    record = {"id": "a/b", "pricing": {"prompt": "0", "completion": price}}
    record["context_length"] = context

    verdict = _verdict(openrouter.parse_record, record)

    assert isinstance(verdict, openrouter.ParsedModel) or verdict.startswith("RecordError: ")
    facts = _verdict(openrouter.record_facts, record)
    if isinstance(verdict, openrouter.ParsedModel):
        assert isinstance(facts, openrouter.RecordFacts)
    else:
        assert facts == verdict


@PROPERTY
@given(record=junk_records)
def test_record_facts_judge_any_record_as_parse_record_does(record):
    parsed = _verdict(openrouter.parse_record, record)
    expected = parsed
    if isinstance(parsed, openrouter.ParsedModel):
        expected = (parsed.model_id, parsed.author, parsed.name, parsed.context_length)
        expected += (parsed.is_free,)

    facts = _verdict(openrouter.record_facts, record)

    assert (tuple(facts) if isinstance(facts, tuple) else facts) == expected
