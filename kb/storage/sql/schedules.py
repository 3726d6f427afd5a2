"""Periodic schedules: which job to enqueue, how often, and when next."""

from __future__ import annotations

import json

from sqlalchemy import delete, select, update

from ...records import Schedule
from ..interfaces import Tx
from ..schema import schedules


def _schedule(row) -> Schedule:
    return Schedule(row.id, row.kind, json.loads(row.payload), row.interval_secs, row.next_run_at, row.last_job_id)


class ScheduleRepository:
    def put(self, tx: Tx, schedule: Schedule, now: float) -> None:
        """Create the schedule, or change its kind, payload, interval and next run."""
        values = {"kind": schedule.kind, "payload": json.dumps(schedule.payload), "interval_secs": schedule.interval_secs,
                  "next_run_at": schedule.next_run_at, "updated_at": now}
        changed = tx.execute(update(schedules).where(schedules.c.id == schedule.id).values(**values)).rowcount
        if not changed:
            tx.execute(schedules.insert().values(id=schedule.id, created_at=now, **values))

    def get(self, tx: Tx, schedule_id: str) -> Schedule | None:
        row = tx.execute(select(schedules).where(schedules.c.id == schedule_id)).first()
        return _schedule(row) if row else None

    def remove(self, tx: Tx, schedule_ids: list[str]) -> None:
        tx.execute(delete(schedules).where(schedules.c.id.in_(schedule_ids)))

    def due(self, tx: Tx, now: float, limit: int = 100) -> list[Schedule]:
        rows = tx.execute(
            select(schedules).where(schedules.c.next_run_at <= now).order_by(schedules.c.next_run_at).limit(limit)
        ).fetchall()
        return [_schedule(row) for row in rows]

    def advance(self, tx: Tx, schedule: Schedule, next_run_at: float, last_job_id: int | None, now: float) -> bool:
        """Move a due schedule on, only if no other process did since it was read (compare and set)."""
        return tx.execute(
            update(schedules)
            .where(schedules.c.id == schedule.id, schedules.c.next_run_at == schedule.next_run_at)
            .values(next_run_at=next_run_at, last_job_id=last_job_id, updated_at=now)
        ).rowcount == 1

    def set_last_job(self, tx: Tx, schedule_id: str, job_id: int) -> None:
        tx.execute(update(schedules).where(schedules.c.id == schedule_id).values(last_job_id=job_id))
