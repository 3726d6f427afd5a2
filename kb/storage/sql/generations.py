"""Vector generations: a counter per workspace and model, bumped with every change of its vectors."""

from __future__ import annotations

from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import IntegrityError

from ..interfaces import Tx
from ..schema import vector_generations


# Built once: read on every retrieval, where building the statement cost more than running it.
_CURRENT = select(vector_generations.c.generation).where(
    vector_generations.c.workspace_id == bindparam("workspace_id"), vector_generations.c.model == bindparam("model")
)


class GenerationRepository:
    def bump(self, tx: Tx, workspace_id: str, model: str) -> int:
        """Call in the transaction that changes the vectors; returns the new generation."""
        where = (vector_generations.c.workspace_id == workspace_id, vector_generations.c.model == model)
        bump = update(vector_generations).where(*where).values(generation=vector_generations.c.generation + 1)
        if tx.execute(bump).rowcount == 0:
            try:
                with tx.begin_nested():  # a concurrent first bump (PostgreSQL) inserts it too: then bump that row
                    tx.execute(vector_generations.insert().values(workspace_id=workspace_id, model=model, generation=1))
            except IntegrityError:
                tx.execute(bump)
        return int(tx.execute(select(vector_generations.c.generation).where(*where)).scalar_one())

    def current(self, tx: Tx, workspace_id: str, model: str) -> int:
        value = tx.execute(_CURRENT, {"workspace_id": workspace_id, "model": model}).scalar()
        return int(value or 0)
