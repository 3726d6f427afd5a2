"""Background jobs: the queue, the registry of kinds and their handlers, workers and the scheduler.

Adding a kind of job: a handler `(jobs, context) -> None`, a `JobKind` with its policies, and one
`kinds.register(...)` (the knowledge base registers its kinds in `kb/knowledge_base.py`).
"""

from .kinds import MAX_ATTEMPTS, Cancelled, Interrupted, JobContext, JobKind, JobKinds
from .owners import HOST, pid_alive, process_owner
from .queue import HEARTBEAT_SECS, STALE_SECS, JobQueue
from .scheduler import Scheduler
from .workers import REAP_SECS, WorkerPool, lower_thread_priority, run_batch
from ..records import Job

__all__ = [
    "HEARTBEAT_SECS", "HOST", "MAX_ATTEMPTS", "REAP_SECS", "STALE_SECS", "Cancelled", "Interrupted", "Job", "JobContext",
    "JobKind", "JobKinds", "JobQueue", "Scheduler", "WorkerPool", "lower_thread_priority", "pid_alive",
    "process_owner", "run_batch",
]
