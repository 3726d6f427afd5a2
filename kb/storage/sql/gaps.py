"""The knowledge-gap log: groups of similar unanswered queries, their events, each workspace's switch."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import case, delete, desc, exists, func, select, update

from ...records import GapGroup, KnowledgeGap
from ..interfaces import Tx
from ..schema import gap_events, gap_settings, knowledge_gaps

EXAMPLES = 5  # distinct example queries given per group


class GapRepository:
    # --- groups and events ----------------------------------------------------------------------

    def find_group(self, tx: Tx, workspace_id: str, normalized: str) -> str | None:
        return tx.execute(
            select(knowledge_gaps.c.id)
            .where(knowledge_gaps.c.workspace_id == workspace_id, knowledge_gaps.c.normalized == normalized)
            .order_by(knowledge_gaps.c.created_at).limit(1)
        ).scalar()

    def groups_since(self, tx: Tx, workspace_id: str, model: str, since: float) -> list[GapGroup]:
        """Groups of the workspace and model created at or after `since`, with their vectors."""
        g = knowledge_gaps.c
        rows = tx.execute(
            select(g.id, g.normalized, g.embedding, g.created_at)
            .where(g.workspace_id == workspace_id, g.model == model, g.created_at >= since)
            .order_by(g.created_at, g.id)
        ).fetchall()
        return [GapGroup(r.id, r.normalized, r.embedding, r.created_at) for r in rows]

    def insert_group(self, tx: Tx, workspace_id: str, group: GapGroup, model: str, query: str) -> None:
        tx.execute(knowledge_gaps.insert().values(
            id=group.id, workspace_id=workspace_id, model=model, normalized=group.normalized, query=query,
            embedding=group.embedding, created_at=group.created_at,
        ))

    def insert_events(self, tx: Tx, rows: Sequence[dict]) -> None:
        """Rows of `gap_events` (gap_id, workspace_id, query, agent_id, mode, best_distance, returned, created_at)."""
        if rows:
            tx.execute(gap_events.insert(), list(rows))

    def page(self, tx: Tx, workspace_id: str, *, limit: int, offset: int, agent_id: str | None = None,
             since: float | None = None) -> list[KnowledgeGap]:
        """Up to `limit` groups from `offset`, the most frequent first (then the most recent): three queries."""
        e = gap_events.c
        conditions = [e.workspace_id == workspace_id]
        if agent_id is not None:
            conditions.append(e.agent_id == agent_id)
        if since is not None:
            conditions.append(e.created_at >= since)
        counts = (
            select(
                e.gap_id,
                func.count().label("count"),
                func.sum(case((e.returned == 0, 1), else_=0)).label("empty"),
                func.min(e.created_at).label("first_seen"),
                func.max(e.created_at).label("last_seen"),
                func.min(e.best_distance).label("best_distance"),
            )
            .where(*conditions)
            .group_by(e.gap_id)
            .order_by(desc("count"), desc("last_seen"), e.gap_id)
            .limit(limit)
            .offset(offset)
        ).subquery()
        rows = tx.execute(
            select(counts, knowledge_gaps.c.query)
            .join(knowledge_gaps, knowledge_gaps.c.id == counts.c.gap_id)
            .order_by(desc(counts.c.count), desc(counts.c.last_seen), counts.c.gap_id)
        ).fetchall()
        if not rows:
            return []
        ids = [r.gap_id for r in rows]
        details = tx.execute(
            select(e.gap_id, e.query, e.agent_id, e.mode, func.max(e.created_at).label("last"))
            .where(e.gap_id.in_(ids), *conditions)
            .group_by(e.gap_id, e.query, e.agent_id, e.mode)
            .order_by(desc("last"))
        ).fetchall()
        examples: dict[str, list[str]] = {i: [] for i in ids}
        agents: dict[str, set[str]] = {i: set() for i in ids}
        modes: dict[str, set[str]] = {i: set() for i in ids}
        for d in details:
            if d.query not in examples[d.gap_id] and len(examples[d.gap_id]) < EXAMPLES:
                examples[d.gap_id].append(d.query)
            if d.agent_id:
                agents[d.gap_id].add(d.agent_id)
            modes[d.gap_id].add(d.mode)
        return [
            KnowledgeGap(r.gap_id, r.query, r.count, int(r.empty or 0), r.first_seen, r.last_seen, r.best_distance,
                         examples[r.gap_id], sorted(agents[r.gap_id]), sorted(modes[r.gap_id]))
            for r in rows
        ]

    def event_count(self, tx: Tx, workspace_id: str) -> int:
        return tx.execute(select(func.count()).select_from(gap_events).where(gap_events.c.workspace_id == workspace_id)).scalar_one()

    def delete_group(self, tx: Tx, workspace_id: str, gap_id: str) -> bool:
        g = knowledge_gaps.c
        return tx.execute(delete(knowledge_gaps).where(g.workspace_id == workspace_id, g.id == gap_id)).rowcount > 0

    def clear(self, tx: Tx, workspace_id: str) -> int:
        tx.execute(delete(gap_events).where(gap_events.c.workspace_id == workspace_id))
        return tx.execute(delete(knowledge_gaps).where(knowledge_gaps.c.workspace_id == workspace_id)).rowcount

    # --- retention ------------------------------------------------------------------------------

    def delete_older(self, tx: Tx, cutoff: float) -> int:
        return tx.execute(delete(gap_events).where(gap_events.c.created_at < cutoff)).rowcount

    def trim(self, tx: Tx, max_rows: int) -> int:
        """Keep the newest `max_rows` events of each workspace; returns how many went."""
        e = gap_events.c
        over = tx.execute(
            select(e.workspace_id).group_by(e.workspace_id).having(func.count() > max_rows)
        ).scalars().all()
        removed = 0
        for workspace_id in over:
            keep = select(e.id).where(e.workspace_id == workspace_id).order_by(desc(e.created_at), desc(e.id)).limit(max_rows)
            removed += tx.execute(
                delete(gap_events).where(e.workspace_id == workspace_id, e.id.not_in(keep.scalar_subquery()))
            ).rowcount
        return removed

    def delete_empty_groups(self, tx: Tx) -> int:
        g = knowledge_gaps.c
        return tx.execute(
            delete(knowledge_gaps).where(~exists().where(gap_events.c.gap_id == g.id))
        ).rowcount

    # --- the switch -----------------------------------------------------------------------------

    def switches(self, tx: Tx, workspace_ids: Sequence[str]) -> dict[str, bool]:
        """The workspaces' own switches (absent: none set)."""
        rows = tx.execute(
            select(gap_settings.c.workspace_id, gap_settings.c.enabled).where(gap_settings.c.workspace_id.in_(list(workspace_ids)))
        ).fetchall()
        return {r.workspace_id: bool(r.enabled) for r in rows}

    def set_switch(self, tx: Tx, workspace_id: str, enabled: bool, now: float) -> None:
        s = gap_settings.c
        changed = tx.execute(
            update(gap_settings).where(s.workspace_id == workspace_id).values(enabled=enabled, updated_at=now)
        ).rowcount
        if not changed:
            tx.execute(gap_settings.insert().values(workspace_id=workspace_id, enabled=enabled, updated_at=now))

