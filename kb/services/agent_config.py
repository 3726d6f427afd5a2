"""Reading the parts of an ElevenLabs agent config that kb uses: knowledge-base locators and RAG settings.

- `conversation_config.agent.prompt.knowledge_base`: locators `{"type", "name", "id", "usage_mode"?}`
  naming documents (or folders) of the agent's own workspace.
- `conversation_config.agent.prompt.rag`: the agent's retrieval settings. What is absent is read with
  these defaults at retrieval time, and filled in when the agent is read back (`with_defaults`; the
  stored config stays as it was given): `enabled` false; `embedding_model` the workspace's default
  model; `max_vector_distance` the calibrated default of the model that serves it (0.6 for
  all-MiniLM-L6-v2, ElevenLabs' default too; a value given for an e5 name that another model serves is
  mapped onto that model's scale, see `ModelRegistry.max_vector_distance`); `max_documents_length`
  50,000; `max_retrieved_rag_chunks_count` 20 (kb's retrieval defaults, which are ElevenLabs' too).
  `num_candidates` sets the candidate pool of each search side (default 100); `filters` (a kb
  extension) is the agent's default metadata filter (`kb.filters`), applied together with (AND)
  the filter of each retrieval request;
  `query_rewrite_prompt_override` is stored but not used yet.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from index.retrieval import RetrievalLimits

from ..errors import InvalidRequest
from ..filters import Filter, parse_filter
from ..records import Locator

LOCATOR_TYPES = ("file", "url", "text", "folder")
# Locators one agent's knowledge_base may hold (a folder locator stands for everything below it).
MAX_KNOWLEDGE_BASE_ITEMS = 1_000
USAGE_MODES = ("auto", "prompt")
DEFAULT_LIMITS = RetrievalLimits()
# Numeric `rag` settings: (type, minimum, maximum). The API's request schema uses the same bounds.
RAG_RANGES: dict[str, tuple[type, float, float]] = {
    "max_vector_distance": (float, 0.0, 2.0),
    "max_documents_length": (int, 1, 10_000_000),
    "max_retrieved_rag_chunks_count": (int, 1, 1000),
    "num_candidates": (int, 1, 10_000),
}


@dataclass(frozen=True)
class RagSettings:
    """The agent's `rag` config with the defaults filled in (see the module docstring)."""

    enabled: bool = False
    embedding_model: str | None = None
    max_vector_distance: float | None = None  # None: the served model's calibrated default
    max_documents_length: int = DEFAULT_LIMITS.max_documents_length
    max_retrieved_rag_chunks_count: int = DEFAULT_LIMITS.max_retrieved_rag_chunks_count
    num_candidates: int | None = None
    filters: Filter | None = None


def section(config: Mapping, key: str) -> dict:
    value = config.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidRequest(f"{key} must be an object")
    return dict(value)


def prompt_of(conversation_config: Mapping) -> dict:
    return section(section(conversation_config, "agent"), "prompt")


def parse_locators(conversation_config: Mapping) -> list[Locator]:
    """The knowledge_base locators, checked: each names a document once, with a known type and usage mode."""
    items = prompt_of(conversation_config).get("knowledge_base") or []
    if not isinstance(items, list):
        raise InvalidRequest("conversation_config.agent.prompt.knowledge_base must be a list")
    if len(items) > MAX_KNOWLEDGE_BASE_ITEMS:
        raise InvalidRequest(
            f"conversation_config.agent.prompt.knowledge_base has {len(items)} items, over the limit of "
            f"{MAX_KNOWLEDGE_BASE_ITEMS}: put the documents in folders and name the folders instead"
        )
    locators: list[Locator] = []
    seen: set[str] = set()
    for n, item in enumerate(items):
        where = f"conversation_config.agent.prompt.knowledge_base[{n}]"
        if not isinstance(item, Mapping):
            raise InvalidRequest(f"{where} must be an object with type, name and id")
        doc_id, name, kind, mode = item.get("id"), item.get("name"), item.get("type"), item.get("usage_mode") or "auto"
        if not isinstance(doc_id, str) or not doc_id:
            raise InvalidRequest(f"{where}.id must be a document id")
        if not isinstance(name, str):
            raise InvalidRequest(f"{where}.name must be a string")
        if kind not in LOCATOR_TYPES:
            raise InvalidRequest(f"{where}.type must be one of {', '.join(LOCATOR_TYPES)}")
        if mode not in USAGE_MODES:
            raise InvalidRequest(f"{where}.usage_mode must be one of {', '.join(USAGE_MODES)}")
        if doc_id in seen:
            raise InvalidRequest(f"document {doc_id!r} is in the knowledge_base twice")
        seen.add(doc_id)
        locators.append(Locator(doc_id, name, kind, mode))
    return locators


def parse_rag(conversation_config: Mapping) -> RagSettings:
    rag = section(prompt_of(conversation_config), "rag")
    values: dict[str, Any] = {}
    if rag.get("enabled") is not None:
        if not isinstance(rag["enabled"], bool):
            raise InvalidRequest("rag.enabled must be true or false")
        values["enabled"] = rag["enabled"]
    if rag.get("embedding_model") is not None:
        if not isinstance(rag["embedding_model"], str):
            raise InvalidRequest("rag.embedding_model must be a model name")
        values["embedding_model"] = rag["embedding_model"]
    for key, (kind, low, high) in RAG_RANGES.items():
        value = rag.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidRequest(f"rag.{key} must be a number")
        if not low <= value <= high:  # also refuses NaN and infinities
            raise InvalidRequest(f"rag.{key} must be between {low} and {high}")
        if kind is int and value != int(value):
            raise InvalidRequest(f"rag.{key} must be an integer")
        values[key] = kind(value)
    values["filters"] = parse_filter(rag.get("filters"), "conversation_config.agent.prompt.rag.filters")
    return RagSettings(**values)


def with_defaults(conversation_config: Mapping, embedding_model: str, max_vector_distance: float) -> dict:
    """The config as ElevenLabs reads it back: `agent.prompt.knowledge_base` a list whose locators
    each have a `usage_mode`, and `agent.prompt.rag` with every retrieval setting kb applies (given
    values kept, absent ones the defaults above; `embedding_model` and `max_vector_distance`, the
    served model's default, as given here)."""
    config = copy.deepcopy(dict(conversation_config))
    agent = config["agent"] = dict(config.get("agent") or {})
    prompt = agent["prompt"] = dict(agent.get("prompt") or {})
    prompt["knowledge_base"] = [
        {**item, "usage_mode": item.get("usage_mode") or "auto"} for item in prompt.get("knowledge_base") or []
    ]
    rag = prompt["rag"] = dict(prompt.get("rag") or {})
    defaults = RagSettings()
    for key, value in {
        "enabled": defaults.enabled,
        "embedding_model": embedding_model,
        "max_vector_distance": max_vector_distance,
        "max_documents_length": defaults.max_documents_length,
        "max_retrieved_rag_chunks_count": defaults.max_retrieved_rag_chunks_count,
    }.items():
        if rag.get(key) is None:
            rag[key] = value
    return config


# Objects a change replaces whole (a filter is one value, not fields to merge), by path.
REPLACED_WHOLE = (("conversation_config", "agent", "prompt", "rag", "filters"),)


def deep_merge(base: Mapping, changes: Mapping, _path: tuple[str, ...] = ()) -> dict:
    """`base` with `changes` applied: objects are merged key by key, anything else (lists too) and
    the objects of REPLACED_WHOLE replace."""
    merged = copy.deepcopy(dict(base))
    for key, value in changes.items():
        path = _path + (key,)
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping) and path not in REPLACED_WHOLE:
            merged[key] = deep_merge(merged[key], value, path)
        else:
            merged[key] = copy.deepcopy(value)
    return merged
