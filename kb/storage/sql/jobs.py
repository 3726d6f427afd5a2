"""The job queue's rows: enqueue, claim (exactly the rows claimed), heartbeat, finish, cancel, reap."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import case, func, select, update

from ...records import Job, RunningJob
from ..interfaces import JobClaims, Tx
from ..repositories import ACTIVE_JOB_STATUSES
from ..schema import jobs

# A tenant's next job is placed this far after its previous pending one in the claim order.
FAIR_STEP_SECS = 1.0

ACTIVE = ACTIVE_JOB_STATUSES


class SqlJobClaims(JobClaims):
    """`UPDATE … WHERE id IN (oldest queued …) RETURNING`: the rows returned are the rows this
    statement changed. With `skip_locked` (PostgreSQL) concurrent claimers pass over each other's
    candidates instead of waiting for them.

    On PostgreSQL the candidates are a materialized CTE, chosen once: as an `IN (subquery)` the
    planner may run the subquery again for each row it scans, and each run, skipping the rows
    this very statement has just locked and changed, picks the next job, so a claim of one job
    marked every queued job running (and returned them all, of which the caller kept one)."""

    def __init__(self, skip_locked: bool):
        self.skip_locked = skip_locked

    def claim(self, tx: Tx, conditions: Sequence[Any], limit: int, values: Mapping[str, Any]) -> list[Job]:
        candidates = (select(jobs.c.id).where(jobs.c.status == "queued", *conditions)
                      .order_by(jobs.c.fair_at, jobs.c.id).limit(limit))
        if self.skip_locked:
            chosen = candidates.with_for_update(skip_locked=True).cte("claim_candidates").prefix_with("MATERIALIZED")
            statement = update(jobs).where(jobs.c.id == chosen.c.id, jobs.c.status == "queued")
        else:
            statement = update(jobs).where(jobs.c.id.in_(candidates), jobs.c.status == "queued")
        rows = tx.execute(
            statement.values(**values)
            .returning(jobs.c.id, jobs.c.kind, jobs.c.payload, jobs.c.attempts, jobs.c.tenant)
        ).fetchall()
        if len(rows) > limit:
            raise RuntimeError(f"a claim of {limit} job(s) marked {len(rows)}: refusing it")  # rolls the claim back
        return sorted((Job(r.id, r.kind, json.loads(r.payload), r.attempts, r.tenant) for r in rows),
                      key=lambda job: job.id)


def _running_here(job_ids: Iterable[int], owner: str) -> tuple:
    """The conditions of jobs among `job_ids` that `owner` is running."""
    return (jobs.c.id.in_(list(job_ids)), jobs.c.status == "running", jobs.c.owner == owner)


class JobRepository:
    def __init__(self, claims: JobClaims):
        self.claims = claims

    def enqueue(
        self, tx: Tx, kind: str, payload: dict, now: float, *, run_at: float | None = None, subject: str | None = None,
        tenant: str | None = None,
    ) -> int:
        """A queued job. Jobs are claimed in `fair_at` order: a tenant's job is placed FAIR_STEP_SECS
        after its previous pending one (or now, if later), so a workspace that queues a thousand jobs
        delays another's next job by about one of its own, not by all of them."""
        fair_at = now
        if tenant is not None:
            last = tx.execute(select(func.max(jobs.c.fair_at)).where(
                jobs.c.tenant == tenant, jobs.c.status.in_(ACTIVE_JOB_STATUSES))).scalar_one()
            if last is not None:
                fair_at = max(now, float(last) + FAIR_STEP_SECS)
        result = tx.execute(
            jobs.insert().values(
                kind=kind, payload=json.dumps(payload), status="queued", attempts=0, created_at=now, updated_at=now,
                run_at=run_at, subject=subject, tenant=tenant, fair_at=fair_at,
            )
        )
        return int(result.inserted_primary_key[0])

    def claim(
        self, tx: Tx, owner: str, now: float, *, limit: int = 1, job_id: int | None = None, kind: str | None = None,
        kinds: Sequence[str] | None = None, tenant_of: Job | None = None,
    ) -> list[Job]:
        """Queued jobs that are due, first in the fair order (or the given one), marked running for
        `owner`; only jobs of `tenant_of`'s tenant when given."""
        conditions: list[Any] = [(jobs.c.run_at.is_(None)) | (jobs.c.run_at <= now)]
        if tenant_of is not None:
            conditions.append(jobs.c.tenant.is_(None) if tenant_of.tenant is None else jobs.c.tenant == tenant_of.tenant)
        if job_id is not None:
            conditions.append(jobs.c.id == job_id)
        if kind is not None:
            conditions.append(jobs.c.kind == kind)
        if kinds is not None:
            conditions.append(jobs.c.kind.in_(list(kinds)))
        values = {"status": "running", "attempts": jobs.c.attempts + 1, "owner": owner, "heartbeat_at": now,
                  "updated_at": now}
        return self.claims.claim(tx, conditions, limit, values)

    def heartbeat(self, tx: Tx, job_ids: Sequence[int], owner: str, now: float) -> dict[int, bool]:
        """Refresh the jobs `owner` still runs: {job id: whether its cancellation was asked}."""
        rows = tx.execute(
            update(jobs).where(*_running_here(job_ids, owner)).values(heartbeat_at=now)
            .returning(jobs.c.id, jobs.c.cancel_requested_at)
        ).fetchall()
        return {row.id: row.cancel_requested_at is not None for row in rows}

    def cancel_requested(self, tx: Tx, job_ids: Sequence[int]) -> set[int]:
        return set(tx.execute(
            select(jobs.c.id).where(jobs.c.id.in_(list(job_ids)), jobs.c.cancel_requested_at.is_not(None))
        ).scalars())

    def running_for(self, tx: Tx, job_ids: Sequence[int], owner: str) -> set[int]:
        """Those of the jobs `owner` still runs (not taken over, not ended)."""
        return set(tx.execute(select(jobs.c.id).where(*_running_here(job_ids, owner))).scalars())

    def finish(self, tx: Tx, job_ids: Sequence[int], owner: str, now: float, error: str | None = None) -> set[int]:
        """End jobs `owner` runs: done (or failed with `error`), or cancelled when that was asked meanwhile."""
        ended = "failed" if error else "done"
        status = case((jobs.c.cancel_requested_at.is_not(None), "cancelled"), else_=ended)
        return set(tx.execute(
            update(jobs).where(*_running_here(job_ids, owner)).values(status=status, error=error, updated_at=now)
            .returning(jobs.c.id)
        ).scalars())

    def mark_cancelled(self, tx: Tx, job_ids: Sequence[int], owner: str, now: float) -> set[int]:
        return set(tx.execute(
            update(jobs).where(*_running_here(job_ids, owner)).values(status="cancelled", updated_at=now)
            .returning(jobs.c.id)
        ).scalars())

    def release(self, tx: Tx, job_ids: Sequence[int], owner: str, now: float) -> int:
        """Queued again without counting the attempt (the owner is stopping politely)."""
        return tx.execute(
            update(jobs).where(*_running_here(job_ids, owner))
            .values(status="queued", owner=None, heartbeat_at=None, attempts=jobs.c.attempts - 1, updated_at=now)
        ).rowcount

    def retry_later(self, tx: Tx, job_ids: Sequence[int], owner: str, now: float, run_at: float, error: str) -> set[int]:
        """Queued again, not before `run_at`, with the error of the failed attempt (the attempt counts)."""
        return set(tx.execute(
            update(jobs).where(*_running_here(job_ids, owner), jobs.c.cancel_requested_at.is_(None))
            .values(status="queued", owner=None, heartbeat_at=None, run_at=run_at, error=error, updated_at=now)
            .returning(jobs.c.id)
        ).scalars())

    def status(self, tx: Tx, job_id: int) -> str | None:
        return tx.execute(select(jobs.c.status).where(jobs.c.id == job_id)).scalar()

    def statuses(self, tx: Tx, job_ids: Sequence[int]) -> dict[int, str]:
        return dict(tx.execute(select(jobs.c.id, jobs.c.status).where(jobs.c.id.in_(list(job_ids)))).fetchall())

    def running(self, tx: Tx) -> list[RunningJob]:
        rows = tx.execute(
            select(jobs.c.id, jobs.c.kind, jobs.c.payload, jobs.c.attempts, jobs.c.owner, jobs.c.heartbeat_at)
            .where(jobs.c.status == "running")
        ).fetchall()
        return [RunningJob(r.id, r.kind, json.loads(r.payload), r.attempts, r.owner, r.heartbeat_at) for r in rows]

    def requeue_abandoned(self, tx: Tx, job_id: int, now: float) -> bool:
        return tx.execute(
            update(jobs).where(jobs.c.id == job_id, jobs.c.status == "running")
            .values(status="queued", owner=None, heartbeat_at=None, updated_at=now)
        ).rowcount == 1

    def fail_abandoned(self, tx: Tx, job_id: int, error: str, now: float) -> bool:
        return tx.execute(
            update(jobs).where(jobs.c.id == job_id, jobs.c.status == "running")
            .values(status="failed", error=error, updated_at=now)
        ).rowcount == 1

    def cancel(self, tx: Tx, job_ids: Sequence[int], now: float) -> dict[int, str]:
        """Queued jobs end `cancelled` at once; running ones are asked to stop. {job id: status now}."""
        ids = list(job_ids)
        tx.execute(
            update(jobs).where(jobs.c.id.in_(ids), jobs.c.status == "queued")
            .values(status="cancelled", cancel_requested_at=now, updated_at=now)
        )
        tx.execute(
            update(jobs).where(jobs.c.id.in_(ids), jobs.c.status == "running", jobs.c.cancel_requested_at.is_(None))
            .values(cancel_requested_at=now, updated_at=now)
        )
        return self.statuses(tx, ids)

    def active_of_subject(self, tx: Tx, subjects: Sequence[str]) -> list[int]:
        return list(tx.execute(
            select(jobs.c.id).where(jobs.c.subject.in_(list(subjects)), jobs.c.status.in_(ACTIVE))
        ).scalars())
