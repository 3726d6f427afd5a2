"""Agents: stored agent configurations that point at documents of their workspace, and retrieval for them.

An agent is the ElevenLabs agent object: a `conversation_config` (and optional `platform_settings`,
`workflow` and any other fields), kept as given in one JSON body. kb reads two parts of it (see
`agent_config`): the knowledge-base locators, mirrored in `agent_documents` on every write so that
"which agents use this document" is one join, and the `rag` retrieval settings.

Usage modes: `auto` (also when `usage_mode` is absent) documents are searched by retrieval; `prompt`
documents are handed to the runtime whole, on every turn. A folder locator stands for every document
below it. Everything is scoped by workspace: an agent of one workspace does not exist for another.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from index.calibration import ANY_BACKEND, UNCALIBRATED
from index.retrieval import RetrievalLimits

from ..errors import Conflict, InvalidRequest, ModelNotInstalled, NotFound, UnknownModel
from ..filters import Filter, both
from ..records import (Agent, AgentPage, DependentAgent, DependentAgentPage, DocumentScope, Locator, Selection,
                       Workspace, new_id)
from ..storage import Database, Tx, now
from ..storage.interfaces import BlobStore
from ..storage.repositories import MAX_FOLDER_DEPTH, AgentStore, DocumentStore
from ..storage.sql.agents import stored_size
from .agent_config import RAG_RANGES, RagSettings, deep_merge, parse_locators, parse_rag, prompt_of, with_defaults
from .conversation import Message, check_messages, contextual_query
from .cursors import INVALID, decode_cursor, decode_value, encode_cursor, encode_value, is_finite_number
from .document_files import load_text
from .models import ModelRegistry
from .names import display_name
from .queries import checked_query
from .quotas import Quotas
from .retrieval import DistanceCut, RetrievalResult, RetrievedChunk, Retriever, SearchOptions

DEFAULT_NAME = "Untitled agent"
SORT_BY = ("name", "created_at", "updated_at", "call_count_7d")
DEPENDENT_TYPES = ("direct", "transitive", "all")
CHARS_PER_PAGE = 2_000
UPDATE_ATTEMPTS = 5  # an update merged while others came in is merged again, this many times at most

__all__ = ["Agents", "AgentRetrieval", "PromptDocument", "RetrieveOverrides", "RAG_RANGES"]


@dataclass(frozen=True)
class RetrieveOverrides:
    """Per-call changes to the agent's retrieval settings.

    Given limits always win. With `use_agent_defaults` false, the limits not given come from kb's
    defaults (the model's calibrated distance / 50,000 / 20) instead of the agent's `rag` config.
    """

    max_documents_length: int | None = None
    max_retrieved_rag_chunks_count: int | None = None
    use_agent_defaults: bool = True
    filters: Filter | None = None  # with the agent's rag.filters (both apply)
    folder_ids: list[str] | None = None  # only the agent's documents below these folders


@dataclass(frozen=True)
class PromptDocument:
    document_id: str
    document_name: str
    text: str


@dataclass(frozen=True)
class AgentRetrieval:
    chunks: list[RetrievedChunk]
    prompt_documents: list[PromptDocument]
    embedding_model: str  # the agent's rag.embedding_model (or the workspace's default)
    retrieval_query: str
    rag_latency_secs: float
    rag_enabled: bool
    served_model: str | None = None  # the model that ran; None when rag is disabled
    max_vector_distance: float | None = None  # the cut applied (None: no search was made)
    distance_cut: DistanceCut | None = None  # what that cut removed (None: nothing)


def _given_or(value: Any, default: Any) -> Any:
    return default if value is None else value


def _workspace_id(workspace: Workspace | str) -> str:
    return workspace if isinstance(workspace, str) else workspace.id


class Agents:
    """Agent configurations of every workspace."""

    def __init__(self, db: Database, agents: AgentStore, documents: DocumentStore, blobs: BlobStore,
                 models: ModelRegistry, retriever: Retriever, quotas: Quotas):
        self.db = db
        self.quotas = quotas
        self.repo = agents
        self.documents = documents
        self.blobs = blobs
        self.models = models
        self.retriever = retriever

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
        locators = self._check(workspace.id, agent.conversation_config)  # before the write: it holds the lock
        with self.db.write() as tx:
            self.quotas.check_storage(tx, workspace.id, stored_size(agent), 0, what="agent")
            self.repo.insert(tx, agent)
            self.repo.replace_locators(tx, workspace.id, agent.id, locators)
        return agent

    def update(self, workspace: Workspace, agent_id: str, changes: Mapping[str, Any]) -> Agent:
        """Partial update: `name` and `tags` replace; every other field is deep-merged into the stored
        one (objects key by key, lists such as `knowledge_base` replaced whole). A top-level null
        changes nothing; a nested null is stored."""
        changes = {key: value for key, value in changes.items() if value is not None}
        name = self._name(changes.pop("name")) if "name" in changes else None
        tags = self._tags(changes.pop("tags")) if "tags" in changes else None
        for _ in range(UPDATE_ATTEMPTS):
            # Merged and checked outside the write transaction (which holds the database's write
            # lock); written only if no other update came in between, else merged again.
            agent = self.get(workspace, agent_id)
            body = deep_merge(agent.body, changes)
            if not isinstance(body.get("conversation_config"), Mapping):
                raise InvalidRequest("conversation_config must be an object")
            locators = self._check(workspace.id, body["conversation_config"])
            updated = Agent(agent.id, agent.workspace_id, agent.name if name is None else name,
                            agent.tags if tags is None else tags, body, agent.created_at,
                            max(now(), agent.updated_at + 1e-6))
            with self.db.write() as tx:
                if self._get(tx, workspace.id, agent_id).updated_at != agent.updated_at:
                    continue  # changed meanwhile: merge into the newer version
                self.quotas.check_storage(tx, workspace.id, stored_size(updated), 0, replacing_agent=agent.id,
                                          what="agent")
                self.repo.update(tx, updated)
                self.repo.replace_locators(tx, workspace.id, agent.id, locators)
            return updated
        raise Conflict(f"agent {agent_id!r} kept changing while this update was applied; send it again")

    def duplicate(self, workspace: Workspace, agent_id: str, name: str | None = None) -> Agent:
        """A new agent with a copy of the agent's config and tags, named `name` (default: "<name> (copy)")."""
        source = self.get(workspace, agent_id)
        t = now()
        agent = Agent(new_id("agent_"), workspace.id, self._name(name if name is not None else f"{source.name} (copy)"),
                      list(source.tags), copy.deepcopy(source.body), t, t)
        locators = parse_locators(agent.conversation_config)
        with self.db.write() as tx:
            self.quotas.check_storage(tx, workspace.id, stored_size(agent), 0, what="agent")
            self.repo.insert(tx, agent)
            self.repo.replace_locators(tx, workspace.id, agent.id, locators)
        return agent

    def delete(self, workspace: Workspace, agent_id: str) -> None:
        with self.db.write() as tx:
            self._get(tx, workspace.id, agent_id)
            self.repo.delete(tx, workspace.id, agent_id)

    def detach_documents(self, workspace: Workspace | str, document_ids: Iterable[str], *, tx: Tx | None = None) -> list[str]:
        """Remove the documents' locators from every agent of the workspace (stored config and
        `agent_documents`); return the ids of the agents changed. Pass `tx` to do it inside the
        caller's write transaction. Works before or after the documents' own rows are deleted."""
        if tx is None:
            with self.db.write() as own:
                return self.detach_documents(workspace, document_ids, tx=own)
        workspace_id, ids = _workspace_id(workspace), set(document_ids)
        if not ids:
            return []
        agent_ids = self.repo.agents_naming(tx, workspace_id, list(ids))
        t = now()
        for agent in sorted(self.repo.get_many(tx, workspace_id, agent_ids), key=lambda a: a.id):
            kept = [item for item in prompt_of(agent.conversation_config).get("knowledge_base") or [] if item.get("id") not in ids]
            body = deep_merge(agent.body, {"conversation_config": {"agent": {"prompt": {"knowledge_base": kept}}}})
            self.repo.update(tx, Agent(agent.id, agent.workspace_id, agent.name, agent.tags, body, agent.created_at, t))
        self.repo.remove_locators_of_documents(tx, workspace_id, list(ids))
        return agent_ids

    # --- reading ---------------------------------------------------------------------------------

    def get(self, workspace: Workspace, agent_id: str) -> Agent:
        with self.db.read() as tx:
            return self._get(tx, workspace.id, agent_id)

    def read_back(self, workspace: Workspace, agent: Agent) -> dict:
        """The agent's stored fields as ElevenLabs returns them: its `conversation_config` with the
        knowledge-base settings kb applies filled in (`with_defaults`), the embedding model named as
        the ElevenLabs name the workspace's default model serves. The stored config is unchanged."""
        model = parse_rag(agent.conversation_config).embedding_model or self._default_model(workspace)
        return {**agent.body, "conversation_config": with_defaults(
            agent.conversation_config, self._default_model(workspace), self._default_distance(model))}

    def _default_distance(self, model: str) -> float:
        """The default `max_vector_distance` of the model that serves `model` (ElevenLabs' 0.6 when it is
        not installed, as the read-back must still show one)."""
        try:
            return self.models.default_distance(self.models.resolve(model).served)
        except (ModelNotInstalled, UnknownModel):
            return UNCALIBRATED.default_distance(ANY_BACKEND)

    def _default_model(self, workspace: Workspace) -> str:
        """The model name of an agent that names none: the ElevenLabs name served by the workspace's
        default model (read back and used alike), else that model's own name."""
        try:
            return self.models.client_name(self.models.resolve(workspace.default_model).served)
        except ModelNotInstalled:
            return workspace.default_model

    def list(
        self,
        workspace: Workspace,
        *,
        page_size: int = 30,
        cursor: str | None = None,
        search: str | None = None,
        sort_by: str = "created_at",
        sort_direction: str = "desc",
        tags: Iterable[str] = (),
    ) -> AgentPage:
        """A page of the workspace's agents. `search`: names containing it (case-insensitive); `tags`:
        agents having any of these tags (exactly).
        `sort_by`: name, created_at or updated_at (call_count_7d sorts by created_at: kb counts no
        calls). Follow `next_cursor` (with the same sort) while `has_more`."""
        if not 1 <= page_size <= 100:
            raise InvalidRequest("page_size must be between 1 and 100")
        if sort_by not in SORT_BY:
            raise InvalidRequest(f"sort_by must be one of {', '.join(SORT_BY)}")
        if sort_direction not in ("asc", "desc"):
            raise InvalidRequest("sort_direction must be asc or desc")
        column = "created_at" if sort_by == "call_count_7d" else sort_by
        after = self._decode_cursor(cursor, sort_by, sort_direction) if cursor else None
        with self.db.read() as tx:
            rows = self.repo.page(tx, workspace.id, limit=page_size + 1, sort_by=column,
                                  ascending=sort_direction == "asc", search=search, after=after,
                                  tags=list(dict.fromkeys(tags)))
        page, has_more = rows[:page_size], len(rows) > page_size
        next_cursor = None
        if has_more:
            last = rows[page_size - 1]
            next_cursor = self._encode_cursor(sort_by, sort_direction, getattr(last, column), last.id)
        return AgentPage(page, next_cursor, has_more)

    def dependent_agents(self, workspace: Workspace | str, document_ids: Iterable[str]) -> list[DependentAgent]:
        """Agents of the workspace whose knowledge_base names any of `document_ids` directly, newest
        first, each with the ids it names among them (`referenced_resource_ids`)."""
        ids = list(dict.fromkeys(document_ids))
        if not ids:
            return []
        with self.db.read() as tx:
            return self.repo.dependents(tx, _workspace_id(workspace), ids)

    def dependents_page(self, workspace: Workspace, document_ids: Iterable[str], *, dependent_type: str = "all",
                        page_size: int = 30, cursor: str | None = None) -> DependentAgentPage:
        """A page of the agents that use any of the documents, newest first. `direct`: agents whose
        knowledge_base names one of them; `transitive`: agents that name none of them but a folder
        above one (their `referenced_resource_ids` are those folders); `all`: both, each agent once."""
        if dependent_type not in DEPENDENT_TYPES:
            raise InvalidRequest(f"dependent_type must be one of {', '.join(DEPENDENT_TYPES)}")
        if not 1 <= page_size <= 100:
            raise InvalidRequest("page_size must be between 1 and 100")
        offset = decode_cursor(cursor)
        ids = list(dict.fromkeys(document_ids))
        with self.db.read() as tx:
            folders = self._folders_above(tx, workspace.id, ids) if dependent_type != "direct" else []
            found = self.repo.dependents(tx, workspace.id, ids + [f for f in folders if f not in ids]) if ids else []
        asked = set(ids)
        agents: list[DependentAgent] = []
        for agent in found:
            direct = [r for r in agent.referenced_resource_ids if r in asked]
            if direct and dependent_type != "transitive":
                agents.append(DependentAgent(agent.id, agent.name, agent.created_at, direct))
            elif not direct and dependent_type != "direct":
                agents.append(DependentAgent(agent.id, agent.name, agent.created_at, agent.referenced_resource_ids, True))
        page, has_more = agents[offset: offset + page_size], len(agents) > offset + page_size
        return DependentAgentPage(page, encode_cursor(offset + page_size) if has_more else None, has_more)

    def _folders_above(self, tx: Tx, workspace_id: str, document_ids: list[str]) -> list[str]:
        """Ids of every folder above any of the documents (two queries)."""
        parents = [d.parent_folder_id for d in self.documents.get_many(tx, workspace_id, document_ids) if d.parent_folder_id]
        return list(self.documents.ancestors(tx, workspace_id, parents))

    def knowledge_base_size(self, workspace: Workspace, agent_id: str) -> float:
        """`number_of_pages` of the agent's knowledge base: the characters of extracted text of all its
        documents (both usage modes, folders counted by the documents below them, each document once)
        divided by 2,000 characters a page, as a float (e.g. 3,000 characters → 1.5)."""
        agent = self.get(workspace, agent_id)
        with self.db.read() as tx:
            resolved = self._resolve(tx, workspace.id, parse_locators(agent.conversation_config))
            total = self.documents.char_count_sum(tx, workspace.id, list(resolved))
        return total / CHARS_PER_PAGE

    def retrieve(
        self, workspace: Workspace, agent_id: str, query: str, overrides: RetrieveOverrides | None = None,
        messages: list[Message] | tuple[Message, ...] = (), query_strategy: str = "short",
    ) -> AgentRetrieval:
        """What a runtime needs for one turn: the nearest chunks of the agent's `auto` documents, cut
        by its `rag` limits (and `overrides`), and the whole text of its `prompt` documents.

        With `rag.enabled` false (the default) no search is made: `chunks` is empty and only the
        `prompt` documents come back. An agent without `auto` documents gets no chunks (never the rest
        of the workspace). `embedding_model` is resolved as everywhere (`ModelRegistry.resolve`): an
        ElevenLabs name is served by its fallback when its own model is not on this machine.

        `messages`, the conversation's recent turns, put a short follow-up in the context of the
        previous user turn (`conversation.contextual_query`); `retrieval_query` is what was searched.
        """
        started = time.perf_counter()
        overrides = overrides or RetrieveOverrides()
        query = checked_query(query)  # the same limit with rag disabled: a query is never stored or echoed unbounded
        check_messages(messages)
        query = contextual_query(query, messages, query_strategy)
        agent = self.get(workspace, agent_id)
        rag = parse_rag(agent.conversation_config)
        with self.db.read() as tx:
            prompt_names, auto, excluded = self._retrieval_scope(tx, workspace.id, parse_locators(agent.conversation_config))
        prompt_documents = [
            PromptDocument(doc_id, name, load_text(self.blobs, workspace.id, doc_id)) for doc_id, name in prompt_names.items()
        ]
        model = rag.embedding_model or self._default_model(workspace)
        chunks: list[RetrievedChunk] = []
        served = None
        searched: RetrievalResult | None = None
        if rag.enabled:
            served = self.models.resolve(model).served
            if auto is not None:
                # The model as the agent names it (None: the workspace's default, which maps no distance).
                searched = self._search(workspace, query, auto, excluded, rag.embedding_model, rag, overrides, agent_id)
                chunks = searched.chunks
        return AgentRetrieval(chunks, prompt_documents, model, query.strip(), time.perf_counter() - started, rag.enabled,
                              served, searched.max_vector_distance if searched else None,
                              searched.distance_cut if searched else None)

    def _search(self, workspace: Workspace, query: str, auto: Selection, excluded: tuple[str, ...], model: str | None,
                rag: RagSettings, overrides: RetrieveOverrides, agent_id: str | None = None) -> RetrievalResult:
        base = rag if overrides.use_agent_defaults else RagSettings()
        limits = RetrievalLimits(
            max_vector_distance=base.max_vector_distance,
            max_documents_length=_given_or(overrides.max_documents_length, base.max_documents_length),
            max_retrieved_rag_chunks_count=_given_or(
                overrides.max_retrieved_rag_chunks_count, base.max_retrieved_rag_chunks_count
            ),
        )
        options = SearchOptions(num_candidates=base.num_candidates) if base.num_candidates else SearchOptions()
        return self.retriever.retrieve(
            workspace, query, within=auto, excluded=excluded, filters=both(rag.filters, overrides.filters),
            folder_ids=overrides.folder_ids, embedding_model=model, limits=limits, options=options,
            agent_id=agent_id,
        )

    # --- internals -------------------------------------------------------------------------------

    def _get(self, tx: Tx, workspace_id: str, agent_id: str) -> Agent:
        agent = self.repo.get(tx, workspace_id, agent_id)
        if agent is None:
            raise NotFound(f"agent {agent_id!r} not found in this workspace")
        return agent

    @staticmethod
    def _name(name: Any) -> str:
        if name is None:
            return DEFAULT_NAME
        if not isinstance(name, str):
            raise InvalidRequest("name must be a string")
        return display_name(name) or DEFAULT_NAME

    @staticmethod
    def _tags(tags: Any) -> list[str]:
        if tags is None:
            return []
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise InvalidRequest("tags must be a list of strings")
        return list(tags)

    def _check(self, workspace_id: str, conversation_config: Mapping) -> list[Locator]:
        """Validate the parts of the config kb reads; every locator must name a document of this workspace,
        and `rag.embedding_model` a model name kb knows. Reads only (never inside a write transaction):
        a document deleted right after is left out at retrieval like any deleted since."""
        rag = parse_rag(conversation_config)
        if rag.embedding_model is not None:
            self.models.require_known(rag.embedding_model)
        locators = parse_locators(conversation_config)
        if locators:
            wanted = [loc.id for loc in locators]
            with self.db.read() as tx:
                found = self.documents.types_of(tx, workspace_id, wanted)
            missing = [doc_id for doc_id in wanted if doc_id not in found]
            if missing:
                raise InvalidRequest(
                    "conversation_config.agent.prompt.knowledge_base names documents not found in this workspace: "
                    + ", ".join(missing)
                )
        return locators

    def _retrieval_scope(self, tx: Tx, workspace_id: str, locators: list[Locator]
                         ) -> tuple[dict[str, str], Selection | None, tuple[str, ...]]:
        """What `_resolve` gives a turn, without expanding `auto` folders into their documents: (id → name
        of the `prompt` documents, in `_resolve`'s order; the `auto` locators as a selection, None when
        it selects no document; the `prompt` documents, to leave out of that selection).

        The modes are `_resolve`'s: the first locator that names a document or a folder above it decides.
        Only `prompt` folders are expanded (their documents' text is sent whole anyway), and a document
        they hold is `auto` when an earlier `auto` locator names a folder above it."""
        auto_ids = tuple(dict.fromkeys(loc.id for loc in locators if loc.usage_mode == "auto"))
        auto_folders = tuple(dict.fromkeys(loc.id for loc in locators if loc.usage_mode == "auto" and loc.type == "folder"))
        prompt: dict[str, str] = {}
        if any(loc.usage_mode == "prompt" for loc in locators):
            first: dict[str, int] = {}  # document id -> index of the first prompt locator naming it or a folder above
            for n, loc in enumerate(locators):
                if loc.usage_mode == "prompt":
                    first.setdefault(loc.id, n)
                    if loc.type == "folder":
                        for below in self.documents.descendant_ids(tx, workspace_id, loc.id):
                            first.setdefault(below, n)
            docs = {d.id: d for d in self.documents.get_many(tx, workspace_id, list(first)) if not d.is_folder}
            auto_at: dict[str, int] = {}  # id -> index of the first auto locator naming it (folders: as a folder)
            for n, loc in enumerate(locators):
                if loc.usage_mode == "auto":
                    auto_at.setdefault(loc.id, n)
            folder_at = {}
            for n, loc in enumerate(locators):
                if loc.usage_mode == "auto" and loc.type == "folder":
                    folder_at.setdefault(loc.id, n)
            above = self.documents.ancestors(tx, workspace_id, [d.parent_folder_id for d in docs.values()]) if folder_at else {}
            for doc_id, n in first.items():
                doc = docs.get(doc_id)
                if doc is None:
                    continue  # deleted since, or a folder
                decided = auto_at.get(doc_id, len(locators))
                parent, depth = doc.parent_folder_id, 0
                while parent and parent in above and depth < MAX_FOLDER_DEPTH:
                    decided = min(decided, folder_at.get(parent, decided))
                    parent, depth = above[parent][2], depth + 1
                if n < decided:
                    prompt[doc_id] = doc.name
        if not auto_ids:
            return prompt, None, ()
        auto = Selection(document_ids=auto_ids, folder_ids=auto_folders)
        excluded = tuple(prompt)
        if not self.documents.any_in_scope(tx, workspace_id, DocumentScope((auto,), excluded)):
            return prompt, None, ()
        return prompt, auto, excluded

    def _resolve(self, tx: Tx, workspace_id: str, locators: list[Locator]) -> dict[str, tuple[str, str]]:
        """document id → (current name, usage mode) of the documents the locators stand for: folders
        expanded to the documents below them, documents deleted since left out, the first mention of
        a document deciding its mode."""
        wanted: dict[str, str] = {}
        for loc in locators:
            wanted.setdefault(loc.id, loc.usage_mode)
            if loc.type == "folder":
                for below in self.documents.descendant_ids(tx, workspace_id, loc.id):
                    wanted.setdefault(below, loc.usage_mode)
        if not wanted:
            return {}
        names = self.documents.names_of(tx, workspace_id, list(wanted), folders=False)
        return {doc_id: (names[doc_id], mode) for doc_id, mode in wanted.items() if doc_id in names}

    @staticmethod
    def _encode_cursor(sort_by: str, direction: str, value: Any, agent_id: str) -> str:
        return encode_value([sort_by, direction, value, agent_id])

    @staticmethod
    def _decode_cursor(cursor: str, sort_by: str, direction: str) -> tuple[Any, str]:
        """(last sort value, last agent id) of the previous page; each checked for its type, so a
        forged cursor is a 400, never a database error."""
        decoded = decode_value(cursor)
        if not (isinstance(decoded, list) and len(decoded) == 4):
            raise InvalidRequest(INVALID)
        cursor_sort, cursor_direction, value, agent_id = decoded
        if (cursor_sort, cursor_direction) != (sort_by, direction):
            raise InvalidRequest("the cursor belongs to another sort order: pass the same sort_by and sort_direction")
        by_name = sort_by == "name"
        if not isinstance(agent_id, str) or not (isinstance(value, str) if by_name else is_finite_number(value)):
            raise InvalidRequest(INVALID)
        return value, agent_id
