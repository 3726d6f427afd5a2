"""The knowledge-gap log: the queries a workspace's knowledge base could not answer."""

from __future__ import annotations

from fastapi import APIRouter

from kb.records import KnowledgeGap

from ..deps import KB, CurrentWorkspace
from ..gap_schemas import (
    ClearedGapsResponse,
    GapSettingsRequest,
    GapSettingsResponse,
    KnowledgeGapResponse,
    KnowledgeGapsPageResponse,
)

router = APIRouter(prefix="/v1/kb/gaps", tags=["Knowledge gaps"])


def _gap(gap: KnowledgeGap) -> KnowledgeGapResponse:
    return KnowledgeGapResponse(
        id=gap.id, query=gap.query, count=gap.count, empty_count=gap.empty_count,
        first_seen_unix_secs=int(gap.first_seen), last_seen_unix_secs=int(gap.last_seen),
        best_distance=None if gap.best_distance is None else round(max(0.0, gap.best_distance), 6),
        examples=gap.examples, agent_ids=gap.agent_ids, search_modes=gap.modes,
    )


@router.get("", response_model=KnowledgeGapsPageResponse, summary="Queries the knowledge base could not answer")
def list_gaps(
    kb: KB,
    workspace: CurrentWorkspace,
    page_size: int = 30,
    cursor: str | None = None,
    agent_id: str | None = None,
    since_unix_secs: float | None = None,
) -> KnowledgeGapsPageResponse:
    """Groups of similar retrievals (knowledge-base and agent endpoints) that returned no chunk or only
    weak matches, the most frequent first. `page_size` 1–100; `agent_id`: only that agent's retrievals;
    `since_unix_secs`: only retrievals since then."""
    served = kb.models.resolve(workspace.default_model).served
    page = kb.gaps.page(workspace, served, page_size=page_size, cursor=cursor, agent_id=agent_id, since=since_unix_secs)
    return KnowledgeGapsPageResponse(gaps=[_gap(g) for g in page.gaps], has_more=page.has_more,
                                     next_cursor=page.next_cursor, enabled=page.enabled, weak_above=page.weak_above)


@router.get("/settings", response_model=GapSettingsResponse, summary="Whether the workspace's gaps are recorded")
def gap_settings(kb: KB, workspace: CurrentWorkspace) -> GapSettingsResponse:
    return GapSettingsResponse(enabled=kb.gaps.enabled(workspace))


@router.patch("/settings", response_model=GapSettingsResponse, summary="Turn the workspace's gap log on or off")
def set_gap_settings(body: GapSettingsRequest, kb: KB, workspace: CurrentWorkspace) -> GapSettingsResponse:
    """Off: this workspace's retrievals are no longer recorded (what was recorded stays until pruned or
    deleted). `enabled` in the answer stays false while the server runs with `KB_GAP_LOG=false`."""
    return GapSettingsResponse(enabled=kb.gaps.set_enabled(workspace, body.enabled))


@router.delete("", response_model=ClearedGapsResponse, summary="Delete every recorded gap of the workspace")
def clear_gaps(kb: KB, workspace: CurrentWorkspace) -> ClearedGapsResponse:
    return ClearedGapsResponse(removed=kb.gaps.clear(workspace))


@router.delete("/{gap_id}", response_model=ClearedGapsResponse, summary="Delete one gap (once it is answered)")
def delete_gap(gap_id: str, kb: KB, workspace: CurrentWorkspace) -> ClearedGapsResponse:
    kb.gaps.forget(workspace, gap_id)
    return ClearedGapsResponse(removed=1)
