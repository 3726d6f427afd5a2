"""Dify's external knowledge API, kb's side: a knowledge id (a workspace or a folder), a query, `top_k`
and `score_threshold`, Dify's metadata conditions → records with a similarity score in [0, 1].

Score: kb's cosine distance d (1 - cosine similarity, in [0, 2]) becomes `score = max(0, 1 - d)`, the
cosine similarity clipped at 0. A `score_threshold` t > 0 keeps hits with d ≤ 1 - t (kb's
`max_vector_distance`, and then every record's score is at least t: a complete lexical match, which
kb's distance cut spares, is not spared here); t = 0 (Dify's "threshold off") keeps every hit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from index.retrieval import RetrievalLimits

from ..errors import InvalidRequest, KnowledgeNotFound, NotFound
from ..filters import MAX_COMPARISONS, Compound, Filter, parse_filter
from ..records import Workspace
from .citations import Citations
from .documents import Documents
from .folders import Folders
from .retrieval import Retriever

MAX_TOP_K = 100
# Dify's comparison operators → kb's filter types (OpenAI's comparison filters).
OPERATORS = {"is": "eq", "=": "eq", "is not": "ne", "≠": "ne", "!=": "ne", ">": "gt", "<": "lt", "≥": "gte",
             ">=": "gte", "≤": "lte", "<=": "lte", "in": "in", "not in": "nin", "before": "lt", "after": "gt"}
NUMERIC = {"=", "≠", "!=", ">", "<", "≥", ">=", "≤", "<="}


@dataclass(frozen=True)
class KnowledgeRecord:
    content: str
    score: float
    title: str
    metadata: dict[str, Any] = field(default_factory=dict)


def score_of(distance: float) -> float:
    return round(max(0.0, min(1.0, 1.0 - distance)), 6)


def max_distance_for(score_threshold: float) -> float:
    """The cosine distance that `score_threshold` allows (2.0, every hit, when the threshold is 0)."""
    return 2.0 if score_threshold <= 0 else 1.0 - score_threshold


def _value(operator: str, value: Any, where: str) -> Any:
    if operator in ("in", "not in"):
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, list) or not value:
            raise InvalidRequest(f"{where}.value must be a non-empty list for {operator!r}")
        return value
    if value is None or isinstance(value, (list, dict)):
        raise InvalidRequest(f"{where}.value must be a string or a number for {operator!r}")
    if operator in NUMERIC and isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            raise InvalidRequest(f"{where}.value must be a number for {operator!r}, not {value!r}") from None
        return int(number) if number.is_integer() else number
    return value


def translate_metadata_condition(condition: dict[str, Any] | None) -> Filter | None:
    """Dify's `{"logical_operator", "conditions": [{"name", "comparison_operator", "value"}]}` as kb's
    filter (`{"type": "eq", "key", "value"}`, or `{"type": "and" | "or", "filters": [...]}`), parsed
    and checked (`kb.filters.parse_filter`; a bad condition names its path)."""
    if not condition:
        return None
    if not isinstance(condition, dict):
        raise InvalidRequest("metadata_condition must be an object")
    logical = (condition.get("logical_operator") or "and").lower()
    if logical not in ("and", "or"):
        raise InvalidRequest("metadata_condition.logical_operator must be 'and' or 'or'")
    conditions = condition.get("conditions")
    if not isinstance(conditions, list):
        raise InvalidRequest("metadata_condition.conditions must be a list")
    if len(conditions) > MAX_COMPARISONS:
        raise InvalidRequest(f"metadata_condition.conditions: at most {MAX_COMPARISONS} conditions")
    filters = []
    for i, item in enumerate(conditions):
        where = f"metadata_condition.conditions[{i}]"
        if not isinstance(item, dict):
            raise InvalidRequest(f"{where} must be an object")
        name, operator = item.get("name"), item.get("comparison_operator")
        if not isinstance(name, str) or not name.strip():
            raise InvalidRequest(f"{where}.name must be a metadata field name")
        if operator not in OPERATORS:
            raise InvalidRequest(f"{where}.comparison_operator {operator!r} is not supported; kb supports "
                                 + ", ".join(repr(o) for o in OPERATORS))
        raw = {"type": OPERATORS[operator], "key": name.strip(), "value": _value(operator, item.get("value"), where)}
        filters.append(parse_filter(raw, where))
    if not filters:
        return None
    return filters[0] if len(filters) == 1 else Compound(logical, tuple(filters))


class ExternalKnowledge:
    """Retrieval in Dify's terms."""

    def __init__(self, retriever: Retriever, documents: Documents, folders: Folders, citations: Citations):
        self.retriever = retriever
        self.documents = documents
        self.folders = folders
        self.citations = citations

    def scope(self, workspace: Workspace, knowledge_id: str) -> list[str] | None:
        """The documents a knowledge id stands for: None for the whole workspace, else a folder's."""
        if knowledge_id == workspace.id:
            return None
        try:
            folder = self.documents.get(workspace, knowledge_id)
        except NotFound:
            folder = None
        if folder is None or not folder.is_folder:
            raise KnowledgeNotFound(f"knowledge {knowledge_id!r} does not exist: use this workspace's id "
                                    f"({workspace.id}) or one of its folder ids")
        return self.folders.descendant_ids(workspace, knowledge_id)

    def retrieve(self, workspace: Workspace, knowledge_id: str, query: str, top_k: int, score_threshold: float,
                 metadata_condition: dict[str, Any] | None = None) -> list[KnowledgeRecord]:
        if not 1 <= top_k <= MAX_TOP_K:
            raise InvalidRequest(f"retrieval_setting.top_k must be between 1 and {MAX_TOP_K}")
        if not 0.0 <= score_threshold <= 1.0:
            raise InvalidRequest("retrieval_setting.score_threshold must be between 0 and 1")
        filters = translate_metadata_condition(metadata_condition)
        scope = self.scope(workspace, knowledge_id)
        if scope == []:
            return []
        extra = {"filters": filters} if filters is not None else {}
        if filters is not None and not self.retriever_supports_filters():
            raise InvalidRequest("metadata_condition: metadata filters are not available in this kb version")
        result = self.retriever.retrieve(
            workspace, query, document_ids=scope,
            limits=RetrievalLimits(max_vector_distance=max_distance_for(score_threshold),
                                   max_documents_length=10_000_000, max_retrieved_rag_chunks_count=top_k),
            **extra,
        )
        # kb's cut spares complete lexical matches whatever their distance; Dify's threshold spares none
        kept = [c for c in result.chunks if score_threshold <= 0 or score_of(c.vector_distance) >= score_threshold]
        hits = self.citations.attach(workspace.id, kept)
        docs = self.documents.get_many(workspace, list({h.document_id for h in hits}))
        records = []
        for hit in hits:
            doc = docs.get(hit.document_id)
            metadata = {
                "document_id": hit.document_id, "chunk_id": hit.chunk_id, "vector_distance": hit.vector_distance,
                "page_start": hit.page_start, "page_end": hit.page_end, "heading_path": hit.heading_path,
                "url": doc.url if doc else None, "citation": hit.citation,
            }
            records.append(KnowledgeRecord(hit.text, score_of(hit.vector_distance), hit.document_name, metadata))
        return records

    def retriever_supports_filters(self) -> bool:
        import inspect

        return "filters" in inspect.signature(self.retriever.retrieve).parameters
