"""Bodies of the knowledge-gap endpoints (`/v1/kb/gaps`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from .schemas import Flag


class KnowledgeGapResponse(BaseModel):
    id: str
    query: str = Field(description="The first query of the group, as asked")
    count: int = Field(description="Retrievals in the group (within the retention)")
    empty_count: int = Field(description="Of them, those whose response held no chunk")
    first_seen_unix_secs: int
    last_seen_unix_secs: int
    best_distance: float | None = Field(description="The nearest any of them came (cosine distance, before the cut); "
                                        "null when no chunk was a candidate at all")
    examples: list[str] = Field(description="Distinct queries of the group, most recent first (up to 5)")
    agent_ids: list[str] = Field(description="Agents whose retrievals are in the group")
    search_modes: list[str]


class KnowledgeGapsPageResponse(BaseModel):
    gaps: list[KnowledgeGapResponse]
    has_more: bool
    next_cursor: str | None
    enabled: bool = Field(description="Whether this workspace's retrievals are being recorded")
    weak_above: float = Field(description="A retrieval whose nearest chunk is farther than this (default model) is a gap")


class GapSettingsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: Flag


class GapSettingsResponse(BaseModel):
    enabled: bool


class ClearedGapsResponse(BaseModel):
    removed: int
