"""Catalogues a sync can read: OpenRouter, and any OpenAI-compatible ``GET /v1/models``.

A catalogue turns one record into a ``ParsedModel``; fetching and walking the body stay in
``openrouter`` (the one place that speaks HTTP), so every catalogue gets the same timeouts, size
cap, retries and body checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from . import conf, openrouter
from .openrouter import ParsedModel, RecordError, RecordFacts

OPENROUTER = "openrouter"


class Catalogue(Protocol):
    name: str

    def url(self) -> str: ...

    def parse_record(self, record: Any) -> ParsedModel: ...

    def record_facts(self, record: Any) -> RecordFacts:
        """``parse_record``'s verdict on the record and the facts a sync sorts it by."""
        ...


@dataclass(frozen=True)
class OpenRouterCatalogue:
    name: str = OPENROUTER

    def url(self) -> str:
        return conf.api_url()

    def parse_record(self, record: Any) -> ParsedModel:
        return openrouter.parse_record(record)

    def record_facts(self, record: Any) -> RecordFacts:
        return openrouter.record_facts(record)


@dataclass(frozen=True)
class OpenAICompatibleCatalogue:
    """A self-hosted vLLM, Ollama or other OpenAI-compatible server: its models are free."""

    name: str
    endpoint: str

    def url(self) -> str:
        return self.endpoint

    def parse_record(self, record: Any) -> ParsedModel:
        if not isinstance(record, dict):
            raise RecordError("record is not an object")
        model_id = record.get("id")
        if not isinstance(model_id, str) or not model_id.strip():
            raise RecordError("missing id")
        model_id = model_id.strip()
        if len(model_id) > openrouter.MAX_ID_LENGTH or any(ord(c) < 32 for c in model_id):
            raise RecordError("id is too long or has control characters")
        owner = record.get("owned_by")
        author = owner if isinstance(owner, str) and owner.strip() else self.name
        context = record.get("max_model_len") or record.get("context_length") or 0
        if isinstance(context, bool) or not isinstance(context, int) or context < 0:
            context = 0
        name = model_id.split("/")[-1]
        pricing = {"prompt": "0", "completion": "0"}
        return ParsedModel(
            model_id=model_id,
            canonical_slug="",
            name=name[: openrouter.MAX_NAME_LENGTH],
            author=author.strip().lower()[:100],
            description="",
            context_length=min(context, openrouter.MAX_CONTEXT_LENGTH),
            input_modalities=["text"],
            output_modalities=["text"],
            has_vision=False,
            supported_parameters=[],
            pricing=pricing,
            is_free=True,
            non_free_reason="",
            category=openrouter.categorize(model_id, name, False, []),
            created_upstream=openrouter._parse_created(record.get("created")),
            metadata={"architecture": {}, "topProvider": None, "perRequestLimits": None},
            raw=record,
            price_signature=openrouter.price_signature(pricing),
        )

    def record_facts(self, record: Any) -> RecordFacts:
        model = self.parse_record(record)  # cheap already: nothing to leave out
        return RecordFacts(
            model.model_id, model.author, model.name, model.context_length, model.is_free
        )


def configured() -> dict[str, Catalogue]:
    """OpenRouter, plus each ``MODELS_SYNC_CATALOGUES`` entry ``{name: {"url": ...}}``."""
    catalogues: dict[str, Catalogue] = {OPENROUTER: OpenRouterCatalogue()}
    for name, options in conf.extra_catalogues().items():
        catalogues[name] = OpenAICompatibleCatalogue(name=name, endpoint=options["url"])
    return catalogues


def get(name: str) -> Catalogue:
    catalogues = configured()
    if name not in catalogues:
        raise KeyError(f"unknown catalogue {name!r}; configured: {', '.join(catalogues)}")
    return catalogues[name]
