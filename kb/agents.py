"""Agents: stored agent configurations that point at documents of their workspace, and retrieval for them.

An agent is the ElevenLabs agent object: a `conversation_config` (and optional `platform_settings`,
`workflow` and any other fields), kept as given in one JSON body. kb reads two parts of it:

- `conversation_config.agent.prompt.knowledge_base`: locators `{"type", "name", "id", "usage_mode"?}`
  naming documents (or folders) of the agent's own workspace. They are mirrored in the
  `agent_documents` table on every write, so "which agents use this document" is one join.
- `conversation_config.agent.prompt.rag`: the agent's retrieval settings. What is absent is read with
  these defaults at retrieval time (the stored config itself is returned as it was given):
  `enabled` false; `embedding_model` the workspace's default model; `max_vector_distance` 0.6;
  `max_documents_length` 50,000; `max_retrieved_rag_chunks_count` 20 (kb's retrieval defaults).
  `num_candidates` sets the candidate pool of each search side (default 100);
  `query_rewrite_prompt_override` is stored but not used yet.

Usage modes: `auto` (also when `usage_mode` is absent) documents are searched by retrieval; `prompt`
documents are handed to the runtime whole, on every turn. A folder locator stands for every document
below it. Everything is scoped by workspace: an agent of one workspace does not exist for another.
"""

from __future__ import annotations

import base64
import copy
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, Column, Float, ForeignKey, Index, String, Table, and_, delete, func, or_, select, update
from sqlalchemy.engine import Connection

from index.retrieval import RetrievalLimits

from . import documents as docs
from .db import documents, metadata, now
from .errors import InvalidRequest, NotFound
from .retrieval import RetrievedChunk, SearchOptions
from .workspaces import Workspace, new_id

if TYPE_CHECKING:
    from .service import KnowledgeBase

agents = Table(
    "agents",
    metadata,
    Column("id", String, primary_key=True),
    Column("workspace_id", String, ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False),
    Column("name", String, nullable=False),
    Column("tags", JSON, nullable=False),
    Column("body", JSON, nullable=False),  # conversation_config, platform_settings, workflow, other fields
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Index("ix_agents_workspace_created", "workspace_id", "created_at"),
    Index("ix_agents_workspace_updated", "workspace_id", "updated_at"),
    Index("ix_agents_workspace_name", "workspace_id", "name"),
)

agent_documents = Table(
    "agent_documents",
    metadata,
    # One row per locator of the agent's knowledge_base, rewritten with every change of the agent.
    # No foreign key to documents: detach_documents() works before or after the document rows go.
    Column("agent_id", String, ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True),
    Column("document_id", String, primary_key=True),
    Column("workspace_id", String, nullable=False),
    Column("usage_mode", String, nullable=False),  # "auto" | "prompt"
    Column("name", String, nullable=False),
    Column("type", String, nullable=False),  # "file" | "url" | "text" | "folder"
    Index("ix_agent_documents_workspace_document", "workspace_id", "document_id"),
)

DEFAULT_NAME = "Untitled agent"
LOCATOR_TYPES = ("file", "url", "text", "folder")
USAGE_MODES = ("auto", "prompt")
SORT_BY = ("name", "created_at", "updated_at", "call_count_7d")
CHARS_PER_PAGE = 2_000
DEFAULT_LIMITS = RetrievalLimits()
# Numeric `rag` settings: (type, minimum, maximum). The API's request schema uses the same bounds.
RAG_RANGES: dict[str, tuple[type, float, float]] = {
    "max_vector_distance": (float, 0.0, 2.0),
    "max_documents_length": (int, 1, 10_000_000),
    "max_retrieved_rag_chunks_count": (int, 1, 1000),
    "num_candidates": (int, 1, 10_000),
}


@dataclass(frozen=True)
class Locator:
    id: str
    name: str
    type: str
    usage_mode: str  # "auto" | "prompt"


@dataclass(frozen=True)
class RagSettings:
    """The agent's `rag` config with the defaults filled in (see the module docstring)."""

    enabled: bool = False
    embedding_model: str | None = None
    max_vector_distance: float = DEFAULT_LIMITS.max_vector_distance
    max_documents_length: int = DEFAULT_LIMITS.max_documents_length
    max_retrieved_rag_chunks_count: int = DEFAULT_LIMITS.max_retrieved_rag_chunks_count
    num_candidates: int | None = None


@dataclass(frozen=True)
class Agent:
    id: str
    workspace_id: str
    name: str
    tags: list[str]
    body: dict  # everything stored but name and tags: conversation_config, platform_settings, ...
    created_at: float
    updated_at: float

    @property
    def conversation_config(self) -> dict:
        return self.body.get("conversation_config") or {}

    @property
    def voice_id(self) -> str:
        return _section(self.conversation_config, "tts").get("voice_id") or ""

    @property
    def locators(self) -> list[Locator]:
        return parse_locators(self.conversation_config)

    @property
    def rag(self) -> RagSettings:
        return parse_rag(self.conversation_config)

    @classmethod
    def from_row(cls, row) -> "Agent":
        return cls(row.id, row.workspace_id, row.name, list(row.tags), dict(row.body), row.created_at, row.updated_at)


@dataclass(frozen=True)
class AgentPage:
    agents: list[Agent]
    next_cursor: str | None
    has_more: bool


@dataclass(frozen=True)
class DependentAgent:
    """An agent whose knowledge_base names some of the asked documents (`referenced_resource_ids`)."""

    id: str
    name: str
    created_at: float
    referenced_resource_ids: list[str]


@dataclass(frozen=True)
class RetrieveOverrides:
    """Per-call changes to the agent's retrieval settings.

    Given limits always win. With `use_agent_defaults` false, the limits not given come from kb's
    defaults (0.6 / 50,000 / 20) instead of the agent's `rag` config.
    """

    max_documents_length: int | None = None
    max_retrieved_rag_chunks_count: int | None = None
    use_agent_defaults: bool = True


@dataclass(frozen=True)
class PromptDocument:
    document_id: str
    document_name: str
    text: str


@dataclass(frozen=True)
class AgentRetrieval:
    chunks: list[RetrievedChunk]
    prompt_documents: list[PromptDocument]
    embedding_model: str
    retrieval_query: str
    rag_latency_secs: float
    rag_enabled: bool


# --- reading the stored config ---------------------------------------------------------------------


def _section(config: Mapping, key: str) -> dict:
    value = config.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidRequest(f"{key} must be an object")
    return dict(value)


def _prompt(conversation_config: Mapping) -> dict:
    return _section(_section(conversation_config, "agent"), "prompt")


def parse_locators(conversation_config: Mapping) -> list[Locator]:
    """The knowledge_base locators, checked: each names a document once, with a known type and usage mode."""
    items = _prompt(conversation_config).get("knowledge_base") or []
    if not isinstance(items, list):
        raise InvalidRequest("conversation_config.agent.prompt.knowledge_base must be a list")
    locators: list[Locator] = []
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
        if any(loc.id == doc_id for loc in locators):
            raise InvalidRequest(f"document {doc_id!r} is in the knowledge_base twice")
        locators.append(Locator(doc_id, name, kind, mode))
    return locators


def parse_rag(conversation_config: Mapping) -> RagSettings:
    rag = _section(_prompt(conversation_config), "rag")
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
    return RagSettings(**values)


def deep_merge(base: Mapping, changes: Mapping) -> dict:
    """`base` with `changes` applied: objects are merged key by key, anything else (lists too) replaces."""
    merged = copy.deepcopy(dict(base))
    for key, value in changes.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _given_or(value: Any, default: Any) -> Any:
    return default if value is None else value


def _workspace_id(workspace: Workspace | str) -> str:
    return workspace if isinstance(workspace, str) else workspace.id


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


# --- the service -----------------------------------------------------------------------------------


class Agents:
    """Agent configurations of every workspace, on the knowledge base's database."""

    def __init__(self, kb: "KnowledgeBase"):
        self.kb = kb
        self.db = kb.db
        # Normally created with the rest of the schema (this module is imported before the Database);
        # this makes sure of it when it was not.
        metadata.create_all(self.db.writer, tables=[agents, agent_documents])

    # --- writing ---------------------------------------------------------------------------------

    def create(self, workspace: Workspace, fields: Mapping[str, Any]) -> Agent:
        """Store a new agent. `fields`: `conversation_config` (required), `name`, `tags`, and any others
        (`platform_settings`, `workflow`, ...), stored and returned as given."""
        fields = dict(fields)
        if not isinstance(fields.get("conversation_config"), Mapping):
            raise InvalidRequest("conversation_config is required and must be an object")
        name = self._name(fields.pop("name", None))
        tags = self._tags(fields.pop("tags", None))
        t = now()
        agent = Agent(new_id("agent_"), workspace.id, name, tags, copy.deepcopy(fields), t, t)
        with self.db.write() as conn:
            locators = self._check(conn, workspace.id, agent.conversation_config)
            conn.execute(
                agents.insert().values(
                    id=agent.id,
                    workspace_id=workspace.id,
                    name=name,
                    tags=tags,
                    body=agent.body,
                    created_at=t,
                    updated_at=t,
                )
            )
            self._sync_documents(conn, workspace.id, agent.id, locators)
        return agent

    def update(self, workspace: Workspace, agent_id: str, changes: Mapping[str, Any]) -> Agent:
        """Partial update: `name` and `tags` replace; every other field is deep-merged into the stored
        one (objects key by key, lists such as `knowledge_base` replaced whole). A top-level null
        changes nothing; a nested null is stored."""
        changes = {key: value for key, value in changes.items() if value is not None}
        with self.db.write() as conn:
            agent = self._get(conn, workspace.id, agent_id)
            name = self._name(changes.pop("name")) if "name" in changes else agent.name
            tags = self._tags(changes.pop("tags")) if "tags" in changes else agent.tags
            body = deep_merge(agent.body, changes)
            if not isinstance(body.get("conversation_config"), Mapping):
                raise InvalidRequest("conversation_config must be an object")
            locators = self._check(conn, workspace.id, body["conversation_config"])
            t = now()
            conn.execute(
                update(agents)
                .where(agents.c.id == agent.id, agents.c.workspace_id == workspace.id)
                .values(name=name, tags=tags, body=body, updated_at=t)
            )
            self._sync_documents(conn, workspace.id, agent.id, locators)
        return Agent(agent.id, agent.workspace_id, name, tags, body, agent.created_at, t)

    def delete(self, workspace: Workspace, agent_id: str) -> None:
        with self.db.write() as conn:
            self._get(conn, workspace.id, agent_id)
            conn.execute(delete(agent_documents).where(agent_documents.c.agent_id == agent_id))
            conn.execute(delete(agents).where(agents.c.id == agent_id, agents.c.workspace_id == workspace.id))

    def detach_documents(
        self, workspace: Workspace | str, document_ids: Iterable[str], *, conn: Connection | None = None
    ) -> list[str]:
        """Remove the documents' locators from every agent of the workspace (stored config and
        `agent_documents`); return the ids of the agents changed. Pass `conn` to do it inside the
        caller's write transaction. Works before or after the documents' own rows are deleted."""
        if conn is None:
            with self.db.write() as own:
                return self.detach_documents(workspace, document_ids, conn=own)
        workspace_id, ids = _workspace_id(workspace), set(document_ids)
        if not ids:
            return []
        agent_ids = sorted(
            set(
                conn.execute(
                    select(agent_documents.c.agent_id).where(
                        agent_documents.c.workspace_id == workspace_id, agent_documents.c.document_id.in_(ids)
                    )
                ).scalars()
            )
        )
        t = now()
        for agent_id in agent_ids:
            agent = self._get(conn, workspace_id, agent_id)
            prompt = _prompt(agent.conversation_config)
            kept = [item for item in prompt.get("knowledge_base") or [] if item.get("id") not in ids]
            body = deep_merge(agent.body, {"conversation_config": {"agent": {"prompt": {"knowledge_base": kept}}}})
            conn.execute(update(agents).where(agents.c.id == agent_id).values(body=body, updated_at=t))
        conn.execute(
            delete(agent_documents).where(
                agent_documents.c.workspace_id == workspace_id, agent_documents.c.document_id.in_(ids)
            )
        )
        return agent_ids

    # --- reading ---------------------------------------------------------------------------------

    def get(self, workspace: Workspace, agent_id: str) -> Agent:
        with self.db.read() as conn:
            return self._get(conn, workspace.id, agent_id)

    def list(
        self,
        workspace: Workspace,
        *,
        page_size: int = 30,
        cursor: str | None = None,
        search: str | None = None,
        sort_by: str = "created_at",
        sort_direction: str = "desc",
    ) -> AgentPage:
        """A page of the workspace's agents. `search`: names containing it (case-insensitive).
        `sort_by`: name, created_at or updated_at (call_count_7d sorts by created_at: kb counts no
        calls). Follow `next_cursor` (with the same sort) while `has_more`."""
        if not 1 <= page_size <= 100:
            raise InvalidRequest("page_size must be between 1 and 100")
        if sort_by not in SORT_BY:
            raise InvalidRequest(f"sort_by must be one of {', '.join(SORT_BY)}")
        if sort_direction not in ("asc", "desc"):
            raise InvalidRequest("sort_direction must be asc or desc")
        column = agents.c["created_at" if sort_by == "call_count_7d" else sort_by]
        query = select(agents).where(agents.c.workspace_id == workspace.id)
        if search:
            query = query.where(agents.c.name.ilike(f"%{_escape_like(search)}%", escape="\\"))
        if cursor:
            value, last_id = self._decode_cursor(cursor, sort_by, sort_direction)
            after = (column > value, agents.c.id > last_id) if sort_direction == "asc" else (column < value, agents.c.id < last_id)
            query = query.where(or_(after[0], and_(column == value, after[1])))
        order = (column.asc(), agents.c.id.asc()) if sort_direction == "asc" else (column.desc(), agents.c.id.desc())
        with self.db.read() as conn:
            rows = conn.execute(query.order_by(*order).limit(page_size + 1)).fetchall()
        page = [Agent.from_row(row) for row in rows[:page_size]]
        has_more = len(rows) > page_size
        next_cursor = None
        if has_more:
            last = rows[page_size - 1]
            next_cursor = self._encode_cursor(sort_by, sort_direction, getattr(last, column.name), last.id)
        return AgentPage(page, next_cursor, has_more)

    def dependent_agents(self, workspace: Workspace | str, document_ids: Iterable[str]) -> list[DependentAgent]:
        """Agents of the workspace whose knowledge_base names any of `document_ids` directly, newest
        first, each with the ids it names among them (`referenced_resource_ids`)."""
        ids = list(dict.fromkeys(document_ids))
        if not ids:
            return []
        with self.db.read() as conn:
            rows = conn.execute(
                select(agents.c.id, agents.c.name, agents.c.created_at, agent_documents.c.document_id)
                .join(agent_documents, agent_documents.c.agent_id == agents.c.id)
                .where(
                    agent_documents.c.workspace_id == _workspace_id(workspace), agent_documents.c.document_id.in_(ids)
                )
                .order_by(agents.c.created_at.desc(), agents.c.id.desc(), agent_documents.c.document_id)
            ).fetchall()
        found: dict[str, DependentAgent] = {}
        for row in rows:
            found.setdefault(row.id, DependentAgent(row.id, row.name, row.created_at, []))
            found[row.id].referenced_resource_ids.append(row.document_id)
        return list(found.values())

    def knowledge_base_size(self, workspace: Workspace, agent_id: str) -> float:
        """`number_of_pages` of the agent's knowledge base: the characters of extracted text of all its
        documents (both usage modes, folders counted by the documents below them, each document once)
        divided by 2,000 characters a page, as a float (e.g. 3,000 characters → 1.5)."""
        agent = self.get(workspace, agent_id)
        with self.db.read() as conn:
            resolved = self._resolve(conn, workspace.id, agent.locators)
            if not resolved:
                return 0.0
            total = conn.execute(
                select(func.coalesce(func.sum(documents.c.char_count), 0)).where(
                    documents.c.workspace_id == workspace.id, documents.c.id.in_(list(resolved))
                )
            ).scalar_one()
        return total / CHARS_PER_PAGE

    def retrieve(
        self, workspace: Workspace, agent_id: str, query: str, overrides: RetrieveOverrides | None = None
    ) -> AgentRetrieval:
        """What a runtime needs for one turn: the nearest chunks of the agent's `auto` documents, cut
        by its `rag` limits (and `overrides`), and the whole text of its `prompt` documents.

        With `rag.enabled` false (the default) no search is made: `chunks` is empty and only the
        `prompt` documents come back. An agent without `auto` documents gets no chunks (never the rest
        of the workspace). An unknown `embedding_model` is a 400 naming the configured models.
        """
        started = time.perf_counter()
        overrides = overrides or RetrieveOverrides()
        if not query.strip():
            raise InvalidRequest("query must not be empty")
        agent = self.get(workspace, agent_id)
        rag = agent.rag
        with self.db.read() as conn:
            resolved = self._resolve(conn, workspace.id, agent.locators)
        prompt_documents = [
            PromptDocument(doc_id, name, self.kb.document_text(workspace, doc_id))
            for doc_id, (name, mode) in resolved.items()
            if mode == "prompt"
        ]
        auto_ids = [doc_id for doc_id, (_, mode) in resolved.items() if mode == "auto"]
        model = rag.embedding_model or workspace.default_model
        chunks: list[RetrievedChunk] = []
        if rag.enabled:
            model = self.kb.models.require_known(model)
            if auto_ids:
                base = rag if overrides.use_agent_defaults else RagSettings()
                limits = RetrievalLimits(
                    max_vector_distance=base.max_vector_distance,
                    max_documents_length=_given_or(overrides.max_documents_length, base.max_documents_length),
                    max_retrieved_rag_chunks_count=_given_or(
                        overrides.max_retrieved_rag_chunks_count, base.max_retrieved_rag_chunks_count
                    ),
                )
                options = SearchOptions(num_candidates=base.num_candidates) if base.num_candidates else SearchOptions()
                result = self.kb.retrieve(
                    workspace, query, document_ids=auto_ids, embedding_model=model, limits=limits, options=options
                )
                chunks = result.chunks
        return AgentRetrieval(
            chunks, prompt_documents, model, query.strip(), time.perf_counter() - started, rag.enabled
        )

    # --- internals -------------------------------------------------------------------------------

    def _get(self, conn: Connection, workspace_id: str, agent_id: str) -> Agent:
        row = conn.execute(select(agents).where(agents.c.id == agent_id, agents.c.workspace_id == workspace_id)).first()
        if row is None:
            raise NotFound(f"agent {agent_id!r} not found in this workspace")
        return Agent.from_row(row)

    @staticmethod
    def _name(name: Any) -> str:
        if name is None:
            return DEFAULT_NAME
        if not isinstance(name, str):
            raise InvalidRequest("name must be a string")
        return name.strip()[:255] or DEFAULT_NAME

    @staticmethod
    def _tags(tags: Any) -> list[str]:
        if tags is None:
            return []
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise InvalidRequest("tags must be a list of strings")
        return list(tags)

    def _check(self, conn: Connection, workspace_id: str, conversation_config: Mapping) -> list[Locator]:
        """Validate the parts of the config kb reads; every locator must name a document of this workspace."""
        parse_rag(conversation_config)
        locators = parse_locators(conversation_config)
        if locators:
            wanted = [loc.id for loc in locators]
            found = set(
                conn.execute(
                    select(documents.c.id).where(documents.c.workspace_id == workspace_id, documents.c.id.in_(wanted))
                ).scalars()
            )
            missing = [doc_id for doc_id in wanted if doc_id not in found]
            if missing:
                raise InvalidRequest(
                    "conversation_config.agent.prompt.knowledge_base names documents not found in this workspace: "
                    + ", ".join(missing)
                )
        return locators

    def _sync_documents(self, conn: Connection, workspace_id: str, agent_id: str, locators: list[Locator]) -> None:
        conn.execute(delete(agent_documents).where(agent_documents.c.agent_id == agent_id))
        if locators:
            conn.execute(
                agent_documents.insert(),
                [
                    {
                        "agent_id": agent_id,
                        "workspace_id": workspace_id,
                        "document_id": loc.id,
                        "usage_mode": loc.usage_mode,
                        "name": loc.name,
                        "type": loc.type,
                    }
                    for loc in locators
                ],
            )

    def _resolve(self, conn: Connection, workspace_id: str, locators: list[Locator]) -> dict[str, tuple[str, str]]:
        """document id → (current name, usage mode) of the documents the locators stand for: folders
        expanded to the documents below them, documents deleted since left out, the first mention of
        a document deciding its mode."""
        wanted: dict[str, str] = {}
        for loc in locators:
            wanted.setdefault(loc.id, loc.usage_mode)
            if loc.type == "folder":
                for below in docs.descendant_ids(conn, workspace_id, loc.id):
                    wanted.setdefault(below, loc.usage_mode)
        if not wanted:
            return {}
        rows = conn.execute(
            select(documents.c.id, documents.c.name).where(
                documents.c.workspace_id == workspace_id,
                documents.c.id.in_(list(wanted)),
                documents.c.type != "folder",
            )
        ).fetchall()
        names = {row.id: row.name for row in rows}
        return {doc_id: (names[doc_id], mode) for doc_id, mode in wanted.items() if doc_id in names}

    @staticmethod
    def _encode_cursor(sort_by: str, direction: str, value: Any, agent_id: str) -> str:
        return base64.urlsafe_b64encode(json.dumps([sort_by, direction, value, agent_id]).encode()).decode()

    @staticmethod
    def _decode_cursor(cursor: str, sort_by: str, direction: str) -> tuple[Any, str]:
        try:
            cursor_sort, cursor_direction, value, agent_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        except Exception as exc:
            raise InvalidRequest("invalid cursor: pass the next_cursor of the previous page unchanged") from exc
        if (cursor_sort, cursor_direction) != (sort_by, direction):
            raise InvalidRequest("the cursor belongs to another sort order: pass the same sort_by and sort_direction")
        return value, str(agent_id)
