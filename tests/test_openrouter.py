from __future__ import annotations

import json
from decimal import Decimal

import pytest
import requests
import responses

from models_sync import openrouter
from models_sync.openrouter import (
    RecordError,
    UpstreamError,
    parse_body,
    parse_models,
    read_document,
    scan_document,
)

from .conftest import API_URL, fixture_bytes, fixture_records

EXPECTED = {2024: (100, 10), 2025: (321, 67), 2026: (414, 18)}


def _independent_free_ids(year: int) -> set[str]:
    """Free as PROVENANCE.md counts it, minus non-text outputs without ':free'."""
    free = set()
    for record in fixture_records(year):
        prices = [Decimal(v) for v in record["pricing"].values() if isinstance(v, str)]
        outputs = (record.get("architecture") or {}).get("output_modalities") or ["text"]
        if all(p == 0 for p in prices) and (outputs == ["text"] or record["id"].endswith(":free")):
            free.add(record["id"])
    return free


@pytest.mark.parametrize("year", [2024, 2025, 2026])
def test_each_fixture_parses_with_expected_counts(year):
    result = parse_models(parse_body(fixture_bytes(year)))
    total, free = EXPECTED[year]
    assert (result.fetched, len(result.models), result.skipped) == (total, total, 0)
    assert sum(m.is_free for m in result.models) == free


@pytest.mark.parametrize("year", [2024, 2025, 2026])
def test_free_set_matches_independent_rule(year):
    result = parse_models(parse_body(fixture_bytes(year)))
    assert {m.model_id for m in result.models if m.is_free} == _independent_free_ids(year)


@pytest.mark.parametrize("year", [2024, 2025, 2026])
def test_parsed_price_signature_is_the_one_of_the_record_pricing(year):
    records = fixture_records(year)
    parsed = parse_models(records).models
    assert [m.price_signature for m in parsed] == [
        openrouter.price_signature(r["pricing"]) for r in records
    ]


def _model(year: int, model_id: str) -> openrouter.ParsedModel:
    result = parse_models(parse_body(fixture_bytes(year)))
    return next(m for m in result.models if m.model_id == model_id)


def test_lyria_outputs_audio_so_is_not_free():
    model = _model(2026, "google/lyria-3-pro-preview")
    assert not model.is_free
    assert model.non_free_reason == "outputs audio, priced outside 'pricing'"


def test_router_priced_minus_one_is_not_free():
    model = _model(2026, "openrouter/auto")
    assert not model.is_free
    assert model.non_free_reason == "prompt costs -1"


def test_zero_priced_model_without_free_suffix_is_free():
    assert _model(2024, "rwkv/rwkv-5-world-3b").is_free
    assert _model(2026, "openrouter/free").is_free


def test_batch_variant_with_list_overrides_parses():
    batch = [r for r in fixture_records(2026) if isinstance(r["pricing"].get("overrides"), list)]
    assert len(batch) == 61
    assert parse_models(batch).skipped == 0


def test_2024_multimodal_means_vision():
    result = parse_models(parse_body(fixture_bytes(2024)))
    vision = {m.model_id for m in result.models if m.has_vision}
    multimodal = {
        r["id"] for r in fixture_records(2024) if r["architecture"]["modality"] == "multimodal"
    }
    assert vision == multimodal
    assert vision


def test_vision_from_input_modalities_2026():
    assert _model(2026, "google/gemma-4-31b-it:free").has_vision
    assert not _model(2026, "openai/gpt-oss-20b:free").has_vision


def test_vision_from_modality_string_when_lists_are_missing():
    record = {"id": "a/b", "pricing": {"prompt": "0", "completion": "0"}}
    record["architecture"] = {"modality": "text+image->text"}
    assert openrouter.parse_record(record).has_vision


def test_stated_modalities_and_parameters_are_kept_once_each_in_order():
    record = {"id": "a/b", "pricing": {"prompt": "0", "completion": "0"}}
    record["architecture"] = {"input_modalities": ["image", "text", "image"], "modality": "x"}
    record["supported_parameters"] = ["tools", "seed", 7, "tools", "x" * 101]

    model = openrouter.parse_record(record)

    assert (model.input_modalities, model.output_modalities) == (["image", "text"], ["text"])
    assert model.supported_parameters == ["seed", "tools"]


def test_each_parsed_model_owns_its_lists():
    record = fixture_records(2026)[0]
    first = openrouter.parse_record(record)
    first.input_modalities.append("smell")
    first.supported_parameters.clear()

    again = openrouter.parse_record(record)

    assert "smell" not in again.input_modalities
    assert again.supported_parameters == sorted(set(record["supported_parameters"]))


def test_long_upstream_texts_are_not_memoized():
    openrouter._memo_parameters.cache_clear()
    openrouter._memo_modalities.cache_clear()
    record = {"id": "a/b", "pricing": {"prompt": "0", "completion": "0"}}
    record["architecture"] = {"modality": "text+image->text" + "+x" * 500}
    record["supported_parameters"] = ["seed", "y" * 5000]

    model = openrouter.parse_record(record)

    assert (model.has_vision, model.supported_parameters) == (True, ["seed"])
    assert openrouter._memo_parameters.cache_info().currsize == 0
    assert openrouter._memo_modalities.cache_info().currsize == 0


@pytest.mark.parametrize("year", [2024, 2025, 2026])
def test_record_facts_are_the_parsed_models(year):
    records = fixture_records(year)
    models = [openrouter.parse_record(record) for record in records]

    facts = [openrouter.record_facts(record) for record in records]

    assert facts == [(m.model_id, m.author, m.name, m.context_length, m.is_free) for m in models]


def test_alias_author_drops_tilde():
    alias = next(r for r in fixture_records(2026) if r["id"].startswith("~"))
    assert openrouter.parse_record(alias).author == alias["id"][1:].split("/")[0]


def test_category_vision_only_for_vision_models():
    for year in (2024, 2025, 2026):
        for model in parse_models(parse_body(fixture_bytes(year))).models:
            if model.category == "vision":
                assert model.has_vision, model.model_id


def test_category_coding_from_name():
    assert _model(2026, "cohere/north-mini-code:free").category == "coding"


# One name per alternative of each category's pattern, and names that hold a hint but match
# nothing: a hint missing from ``_*_HINTS`` would send its name to "general".
@pytest.mark.parametrize(
    ("model_id", "category"),
    [
        ("a/code-x", "coding"),
        ("a/x-coder", "coding"),
        ("a/coding-1", "coding"),
        ("mistralai/codestral", "coding"),
        ("mistralai/devstral-small", "coding"),
        ("a/programming-x", "coding"),
        ("a/swe-1", "coding"),
        ("bigcode/starcoder2", "coding"),
        ("a/deep-research", "research"),
        ("perplexity/sonar", "research"),
        ("a/web-search", "research"),
        ("a/creative-writer", "creative"),
        ("a/storyteller", "creative"),
        ("a/roleplay-x", "creative"),
        ("a/rp", "creative"),
        ("a/xrp-x", "creative"),
        ("gryphe/mythomax", "creative"),
        ("google/lyria-2", "creative"),
        ("a/music-gen", "creative"),
        ("a/novelist", "creative"),
        ("a/fiction-x", "creative"),
        ("thedrummer/unslopnemo", "creative"),
        ("a/reasoner", "reasoning"),
        ("a/thinker", "reasoning"),
        ("deepseek/r1", "reasoning"),
        ("a/x-r1x", "reasoning"),
        ("a/xr1-x", "reasoning"),
        ("tngtech/deepseek-r1t", "reasoning"),
        ("qwen/qwq-32b", "reasoning"),
        ("deepseek/deepseek-prover", "reasoning"),
        ("openai/o1", "reasoning"),
        ("openai/o3-mini", "reasoning"),
        ("openai/o4", "reasoning"),
        ("thudm/glm-z1", "reasoning"),
        ("a/codex", "general"),
        ("a/swell", "general"),
        ("a/sharp", "general"),
        ("a/o10", "general"),
        ("a/plain", "general"),
    ],
)
def test_category_from_each_word_of_the_patterns(model_id, category):
    assert openrouter.categorize(model_id, "", False, []) == category


def test_top_level_list_is_accepted():
    records = fixture_records(2025)
    assert len(parse_body(json.dumps(records).encode())) == 321


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"data": [', "response is not valid JSON: Expecting value: line 1 column 11 (char 10)"),
        (b"<html><body>Bad gateway</body></html>", "response is HTML, not JSON"),
        (b"\xff\xfe{}", "response is not UTF-8 (invalid byte at offset 0)"),
        (b"[" * 100_000 + b"]" * 100_000, "response is nested too deep to be a model list"),
        (b'{"models": []}', "response has no 'data' list of models"),
        (b'{"data": {"id": "x"}}', "response 'data' is an object, not a list of models"),
        (b'"hello"', "response is a string, not a model list"),
        (b"42", "response is a number, not a model list"),
        (b"", "response is empty"),
        (
            b'{"error": {"message": "Rate limited", "code": 429}}',
            "upstream returned an error: Rate limited",
        ),
        (b'{"data": [NaN]}', "response is not valid JSON: NaN is not valid JSON"),
    ],
)
def test_unusable_body_raises_clear_error(body, message):
    with pytest.raises(UpstreamError) as excinfo:
        parse_body(body)
    assert excinfo.value.message == message


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({"name": "x", "pricing": {}}, "missing id"),
        ({"id": None, "pricing": {}}, "missing id"),
        ({"id": 42, "pricing": {}}, "id is not a string"),
        ({"id": "a/" + "b" * 199, "pricing": {}}, "id has 201 characters (1 to 200 allowed)"),
        ({"id": "a/b\x00c", "pricing": {}}, "id 'a/b\\x00c' is not of the form author/model"),
        (
            {"id": "../etc/passwd", "pricing": {}},
            "id '../etc/passwd' is not of the form author/model",
        ),
        ({"id": "a/b", "pricing": None}, "pricing is null, not an object"),
        (
            {"id": "a/b", "pricing": {"prompt": "abc", "completion": "0"}},
            "price 'prompt' is not a number: 'abc'",
        ),
        (
            {"id": "a/b", "pricing": {"prompt": "NaN", "completion": "0"}},
            "price 'prompt' is not a finite number: 'NaN'",
        ),
        (
            {"id": "a/b", "pricing": {"prompt": "1e1000000", "completion": "0"}},
            "price 'prompt' is out of range: '1e1000000'",
        ),
        (
            {"id": "a/b", "pricing": {"prompt": "1e-999998", "completion": "0"}},
            "price 'prompt' is out of range: '1e-999998'",
        ),
        (  # within Decimal's range, but normalising it would overflow
            {
                "id": "a/b",
                "pricing": {
                    "prompt": "0",
                    "completion": "0",
                    "image": "9." + "9" * 29 + "E+999999",
                },
            },
            "price 'image' is out of range: '9.99999999999999999999999999999E+999999'",
        ),
        (
            {"id": "a/b", "pricing": {"prompt": "0" * 101, "completion": "0"}},
            f"price 'prompt' is longer than 100 characters: '{'0' * 40}'",
        ),
        (
            {"id": "a/b", "pricing": {"prompt": "0"}, "context_length": 10**400},
            "context_length 10000000000000000000... is out of range",
        ),
        (
            {"id": "a/b", "pricing": {"prompt": "0"}, "context_length": -1},
            "context_length -1 is out of range",
        ),
        (
            {"id": "a/b", "pricing": {"prompt": "0"}, "context_length": "4096"},
            "context_length is a string, not a number",
        ),
        (
            {"id": "a/b", "pricing": {"prompt": "0"}, "context_length": 1e30},
            "context_length 1e+30 is out of range",
        ),
        ("a/b", "record is a string, not an object"),
    ],
)
def test_bad_record_is_rejected_with_reason(record, reason):
    with pytest.raises(RecordError) as excinfo:
        openrouter.parse_record(record)
    assert str(excinfo.value) == reason


def test_bad_records_are_skipped_and_good_ones_kept():
    good = fixture_records(2026)[:3]
    result = parse_models([{"id": 1}, *good, {"pricing": {}}])
    assert [m.model_id for m in result.models] == [r["id"] for r in good]
    assert (result.fetched, result.skipped) == (5, 2)


def test_duplicate_id_keeps_first_occurrence():
    first, second = fixture_records(2026)[:2]
    duplicate = {**second, "id": first["id"], "name": "Impostor"}
    result = parse_models([first, duplicate])
    assert [m.name for m in result.models] == [first["name"]]
    assert result.skipped == 1


@pytest.mark.parametrize("value", ["-0", "0.0", " 0 ", 0])
def test_zero_spellings_are_free(value):
    record = {"id": "a/b", "pricing": {"prompt": value, "completion": "0"}}
    assert openrouter.parse_record(record).is_free


def test_created_out_of_range_is_unknown():
    record = {"id": "a/b", "pricing": {"prompt": "0", "completion": "0"}, "created": 32503680000}
    assert openrouter.parse_record(record).created_upstream is None


def test_unknown_upstream_fields_are_kept_in_raw():
    record = {"id": "a/b", "pricing": {"prompt": "0", "completion": "0"}, "future": {"x": 1}}
    assert openrouter.parse_record(record).raw["future"] == {"x": 1}


# --- HTTP


def test_fetch_retries_429_then_succeeds(upstream):
    upstream.add(responses.GET, API_URL, status=429, headers={"Retry-After": "1"})
    upstream.add(responses.GET, API_URL, body=fixture_bytes(2024))
    result = openrouter.fetch()
    assert result.status == 200
    assert len(upstream.calls) == 2


def test_retry_honours_retry_after_up_to_the_cap(settings):
    settings.MODELS_SYNC_MAX_RETRY_AFTER = 7
    retry = openrouter.build_session().get_adapter(API_URL).max_retries
    assert retry.respect_retry_after_header
    assert 429 in retry.status_forcelist

    class Answer:
        headers = {"Retry-After": "3600"}

        def getheader(self, name):
            return self.headers.get(name)

    assert retry.get_retry_after(Answer()) == 7


def test_fetch_gives_up_after_retries_with_status(upstream, settings):
    settings.MODELS_SYNC_RETRIES = 2
    upstream.add(responses.GET, API_URL, status=503)
    with pytest.raises(UpstreamError) as excinfo:
        openrouter.fetch()
    assert excinfo.value.message == "openrouter.ai answered HTTP 503 Service Unavailable"
    assert excinfo.value.status == 503
    assert len(upstream.calls) == 3


def test_fetch_timeout_is_a_clear_error(upstream):
    upstream.add(responses.GET, API_URL, body=requests.ReadTimeout("read timed out"))
    with pytest.raises(UpstreamError) as excinfo:
        openrouter.fetch()
    assert excinfo.value.message == "openrouter.ai did not answer in time (timeout): ReadTimeout"


def test_fetch_refuses_body_over_size_cap(upstream, settings):
    settings.MODELS_SYNC_MAX_RESPONSE_BYTES = 1000
    upstream.add(
        responses.GET, API_URL, body=b"[" + b" " * 5000 + b"]", auto_calculate_content_length=False
    )
    with pytest.raises(UpstreamError) as excinfo:
        openrouter.fetch()
    assert excinfo.value.message == "response is over the 1000-byte limit; refused"


def test_fetch_does_not_follow_redirects(upstream):
    upstream.add(
        responses.GET, API_URL, status=301, headers={"Location": "https://evil.example/models"}
    )
    with pytest.raises(UpstreamError) as excinfo:
        openrouter.fetch()
    assert excinfo.value.message == (
        "openrouter.ai answered HTTP 301 redirecting to 'https://evil.example/models'; "
        "redirects are not followed"
    )
    assert len(upstream.calls) == 1


def test_fetch_sends_bearer_key_and_user_agent(upstream, settings):
    settings.MODELS_SYNC_API_KEY = "sk-test"
    upstream.add(responses.GET, API_URL, body=b"[]")
    openrouter.fetch()
    sent = upstream.calls[0].request.headers
    assert sent["Authorization"] == "Bearer sk-test"
    assert sent["User-Agent"].startswith("tetika-models-sync/")


def test_fetch_sends_no_authorization_without_key(upstream):
    upstream.add(responses.GET, API_URL, body=b"[]")
    openrouter.fetch()
    assert "Authorization" not in upstream.calls[0].request.headers


def test_read_source_missing_file():
    with pytest.raises(UpstreamError) as excinfo:
        openrouter.read_source("/nonexistent/models.json")
    assert excinfo.value.message == "snapshot file not found: /nonexistent/models.json"


@pytest.mark.parametrize("year", [2024, 2025, 2026])
def test_document_walk_yields_each_record_with_its_text(year):
    document = read_document(fixture_bytes(year))
    walked = list(document.records())
    assert [record for _start, _end, record in walked] == fixture_records(year)
    for start, end, record in walked:
        assert json.loads(document.text[start:end]) == record
        assert document.decode_at(start) == record


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"data": []} x', "response is not valid JSON: Extra data: line 1 column 14 (char 13)"),
        (
            b'{"data": [{"id": "a/b"} {"id": "c/d"}]}',
            "response is not valid JSON: Expecting ',' delimiter: line 1 column 25 (char 24)",
        ),
        (
            b'{"data" []}',
            "response is not valid JSON: Expecting ':' delimiter: line 1 column 9 (char 8)",
        ),
        (
            b'{"data": [{"id": "a/b"}], "x": }',
            "response is not valid JSON: Expecting value: line 1 column 32 (char 31)",
        ),
        (b'{"data": [], "data": []}', "response has more than one 'data' key"),
        (b"{}", "response has no 'data' list of models"),
    ],
)
def test_broken_top_level_is_named_as_json_would(body, message):
    with pytest.raises(UpstreamError) as excinfo:
        parse_body(body)
    assert excinfo.value.message == message


def test_fault_after_the_records_still_fails_the_body():
    records = read_document(b'{"data": [{"id": "a/b"}], "total_count": }').records()
    assert next(records)[2] == {"id": "a/b"}
    with pytest.raises(UpstreamError):
        next(records)


def test_members_around_the_list_are_read():
    body = b'{"total_count": 1, "data": [{"id": "a/b"}], "links": {"next": null}}'
    assert parse_body(body) == [{"id": "a/b"}]


def test_content_hash_is_of_the_record_text_and_rules(monkeypatch):
    record = {"id": "a/b", "pricing": {"prompt": "0"}}
    compact = read_document(json.dumps([record]).encode())
    pretty = read_document(json.dumps([record], indent=2).encode())
    (c_start, c_end, _), (p_start, p_end, _) = next(compact.records()), next(pretty.records())
    same = read_document(json.dumps([record]).encode())
    assert compact.content_hash(c_start, c_end) == same.content_hash(c_start, c_end)
    assert compact.content_hash(c_start, c_end) != pretty.content_hash(p_start, p_end)
    before = compact.content_hash(c_start, c_end)
    monkeypatch.setattr(openrouter, "RULES_VERSION", "new rules")
    assert compact.content_hash(c_start, c_end) != before


def test_scan_passes_known_records_on_unparsed():
    document = read_document(fixture_bytes(2026))
    first = next(document.records())
    known = {first[2]["id"]: document.content_hash(first[0], first[1])}
    entries = list(scan_document(document, known=known))
    assert entries[0].model is None
    assert all(entry.model is not None for entry in entries[1:])
    assert len(entries) == 414


def test_document_marks_the_records_with_far_out_numbers():
    body = b'[{"a": 1.5e-7}, {"a": 1e-400}, {"a": 2.0, "b": 0E+100}, {"a": 12}]'
    document = openrouter.read_document(body)
    starts = [start for start, _end, _record in document.records()]
    assert document.far_numbers == {starts[1], starts[2]}
