"""Dify's external knowledge API: `POST /retrieval` (Dify appends `/retrieval` to the endpoint you
register, so register kb's base URL). Bearer authentication with a workspace API key; Dify's error
codes (1001 malformed Authorization header, 1002 authorization failed: 403; 2001 unknown knowledge: 404)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from kb.errors import KBError, KnowledgeNotFound
from kb.services.external_knowledge import MAX_TOP_K
from kb.services.retrieval import MAX_QUERY_CHARS

from ..deps import KB
from ..schemas import MAX_ID_CHARS

router = APIRouter(tags=["Dify"])


class RetrievalSetting(BaseModel):
    top_k: int = Field(ge=1, le=MAX_TOP_K, description="Most records returned.")
    score_threshold: float = Field(
        ge=0.0, le=1.0, description="Least score (cosine similarity) a record needs; 0: no threshold."
    )


class MetadataCondition(BaseModel):
    logical_operator: str | None = Field(default="and", description="and | or")
    conditions: list[dict[str, Any]] = Field(description='[{"name", "comparison_operator", "value"}]')


class DifyRetrievalRequest(BaseModel):
    knowledge_id: str = Field(min_length=1, max_length=MAX_ID_CHARS, description="This workspace's id (all of it) or one of its folder ids.")
    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS)
    retrieval_setting: RetrievalSetting
    metadata_condition: MetadataCondition | None = None


class DifyRecord(BaseModel):
    content: str
    score: float = Field(description="max(0, 1 - cosine distance): the cosine similarity, clipped at 0.")
    title: str = Field(description="The document's name.")
    metadata: dict[str, Any] = Field(description="document_id, chunk_id, vector_distance, pages, headings, url, citation.")


class DifyRetrievalResponse(BaseModel):
    records: list[DifyRecord]


def dify_error(code: int, message: str, status: int, kb_code: str) -> JSONResponse:
    """Dify's error body (`error_code`, `error_msg`) with kb's `detail` beside it."""
    return JSONResponse({"error_code": code, "error_msg": message, "detail": {"status": kb_code, "message": message}},
                        status_code=status)


@router.post("/retrieval", response_model=DifyRetrievalResponse,
             responses={403: {"description": "1001 / 1002"}, 404: {"description": "2001"}},
             summary="Dify external knowledge retrieval")
def retrieval(body: DifyRetrievalRequest, request: Request, kb: KB) -> Any:
    scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return dify_error(1001, "Invalid Authorization header format. Expected 'Bearer <api-key>' format.", 403,
                          "invalid_api_key")
    try:
        workspace = kb.workspaces.authenticate(token.strip())
    except KBError:
        return dify_error(1002, "Authorization failed: the API key is not a kb workspace key.", 403, "invalid_api_key")
    try:
        records = kb.external_knowledge.retrieve(
            workspace, body.knowledge_id, body.query, body.retrieval_setting.top_k,
            body.retrieval_setting.score_threshold,
            body.metadata_condition.model_dump() if body.metadata_condition else None,
        )
    except KnowledgeNotFound as exc:
        return dify_error(2001, exc.message, 404, exc.code)
    return DifyRetrievalResponse(records=[DifyRecord(**r.__dict__) for r in records])
