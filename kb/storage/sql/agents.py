"""Agents (their whole config as one JSON body) and the documents their knowledge bases name."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import json

from sqlalchemy import and_, delete, func, or_, select, update

from ...records import Agent, DependentAgent, Locator
from ..interfaces import Tx
from ..schema import agent_documents, agents
from .documents import escape_like

SORTABLE = ("name", "created_at", "updated_at")


def _agent(row) -> Agent:
    return Agent(row.id, row.workspace_id, row.name, list(row.tags), dict(row.body), row.created_at, row.updated_at)


def stored_size(agent: Agent) -> int:
    """Bytes the agent takes in the database: the JSON of its body, name and tags."""
    return sum(len(json.dumps(part, ensure_ascii=False).encode()) for part in (agent.body, agent.name, agent.tags))


class AgentRepository:
    def insert(self, tx: Tx, agent: Agent) -> None:
        tx.execute(agents.insert().values(
            id=agent.id, workspace_id=agent.workspace_id, name=agent.name, tags=agent.tags, body=agent.body,
            created_at=agent.created_at, updated_at=agent.updated_at, size_bytes=stored_size(agent),
        ))

    def storage_bytes(self, tx: Tx, workspace_id: str, excluding: str | None = None) -> int:
        """Bytes of the workspace's agents (all, or all but `excluding`)."""
        query = select(func.coalesce(func.sum(agents.c.size_bytes), 0)).where(agents.c.workspace_id == workspace_id)
        if excluding is not None:
            query = query.where(agents.c.id != excluding)
        return int(tx.execute(query).scalar_one())

    def get(self, tx: Tx, workspace_id: str, agent_id: str) -> Agent | None:
        row = tx.execute(select(agents).where(agents.c.id == agent_id, agents.c.workspace_id == workspace_id)).first()
        return _agent(row) if row else None

    def get_many(self, tx: Tx, workspace_id: str, agent_ids: Sequence[str]) -> list[Agent]:
        rows = tx.execute(
            select(agents).where(agents.c.workspace_id == workspace_id, agents.c.id.in_(list(agent_ids)))
        ).fetchall()
        return [_agent(r) for r in rows]

    def update(self, tx: Tx, agent: Agent) -> None:
        tx.execute(
            update(agents).where(agents.c.id == agent.id, agents.c.workspace_id == agent.workspace_id)
            .values(name=agent.name, tags=agent.tags, body=agent.body, updated_at=agent.updated_at,
                    size_bytes=stored_size(agent))
        )

    def delete(self, tx: Tx, workspace_id: str, agent_id: str) -> None:
        tx.execute(delete(agent_documents).where(agent_documents.c.agent_id == agent_id))
        tx.execute(delete(agents).where(agents.c.id == agent_id, agents.c.workspace_id == workspace_id))

    def page(
        self, tx: Tx, workspace_id: str, *, limit: int, sort_by: str, ascending: bool, search: str | None = None,
        after: tuple[Any, str] | None = None, tags: Sequence[str] = (),
    ) -> list[Agent]:
        """Up to `limit` agents sorted by `sort_by` (then id), after the (value, id) of a previous page;
        with `tags`, only agents that have any of them (read in batches of the sorted agents: tags are
        a JSON list, which databases search each their own way)."""
        column = agents.c[sort_by]
        query = select(agents).where(agents.c.workspace_id == workspace_id)
        if search:
            query = query.where(agents.c.name.ilike(f"%{escape_like(search)}%", escape="\\"))
        if after is not None:
            value, last_id = after
            beyond = (column > value, agents.c.id > last_id) if ascending else (column < value, agents.c.id < last_id)
            query = query.where(or_(beyond[0], and_(column == value, beyond[1])))
        order = (column.asc(), agents.c.id.asc()) if ascending else (column.desc(), agents.c.id.desc())
        query = query.order_by(*order)
        if not tags:
            return [_agent(r) for r in tx.execute(query.limit(limit)).fetchall()]
        wanted, found, batch, offset = set(tags), [], max(4 * limit, 200), 0
        while len(found) < limit:
            rows = tx.execute(query.limit(batch).offset(offset)).fetchall()
            found += [agent for agent in map(_agent, rows) if wanted.intersection(agent.tags)]
            if len(rows) < batch:
                break
            offset += batch
        return found[:limit]

    def replace_locators(self, tx: Tx, workspace_id: str, agent_id: str, locators: Sequence[Locator]) -> None:
        tx.execute(delete(agent_documents).where(agent_documents.c.agent_id == agent_id))
        if locators:
            tx.execute(agent_documents.insert(), [
                {"agent_id": agent_id, "workspace_id": workspace_id, "document_id": loc.id, "usage_mode": loc.usage_mode,
                 "name": loc.name, "type": loc.type}
                for loc in locators
            ])

    def agents_naming(self, tx: Tx, workspace_id: str, document_ids: Sequence[str]) -> list[str]:
        """Ids of the agents whose knowledge base names any of the documents, sorted."""
        return sorted(set(tx.execute(
            select(agent_documents.c.agent_id).where(
                agent_documents.c.workspace_id == workspace_id, agent_documents.c.document_id.in_(list(document_ids))
            )
        ).scalars()))

    def remove_locators_of_documents(self, tx: Tx, workspace_id: str, document_ids: Sequence[str]) -> None:
        tx.execute(delete(agent_documents).where(
            agent_documents.c.workspace_id == workspace_id, agent_documents.c.document_id.in_(list(document_ids))
        ))

    def dependents(self, tx: Tx, workspace_id: str, document_ids: Sequence[str]) -> list[DependentAgent]:
        """Agents naming any of the documents directly, newest first, each with the ids it names among them."""
        ids = list(dict.fromkeys(document_ids))
        if not ids:
            return []
        rows = tx.execute(
            select(agents.c.id, agents.c.name, agents.c.created_at, agent_documents.c.document_id)
            .join(agent_documents, agent_documents.c.agent_id == agents.c.id)
            .where(agent_documents.c.workspace_id == workspace_id, agent_documents.c.document_id.in_(ids))
            .order_by(agents.c.created_at.desc(), agents.c.id.desc(), agent_documents.c.document_id)
        ).fetchall()
        found: dict[str, DependentAgent] = {}
        for row in rows:
            found.setdefault(row.id, DependentAgent(row.id, row.name, row.created_at, []))
            found[row.id].referenced_resource_ids.append(row.document_id)
        return list(found.values())
