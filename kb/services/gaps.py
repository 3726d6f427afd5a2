"""The knowledge-gap log: which questions a workspace's knowledge base cannot answer.

Retrieval hands every result to `GapLog.observe`. A retrieval is a gap when its response is empty,
or when its nearest candidate (before the distance cut) is farther than the weak threshold: the
model's default cut minus `KB_GAP_MARGIN`, or `KB_GAP_MAX_DISTANCE` when set. `observe` only
compares two numbers and puts a tuple in a bounded in-memory queue; a background thread writes
the queue in batches (so a retrieval waits for no write), and `flush()` writes it at once (reads
of the log flush first, so they see every retrieval made before them).

Each event joins a group of similar queries: the group whose first query has the same normalised
text (case, accents of compatibility forms, punctuation and spaces folded), else the nearest group
of the same model whose first query's embedding is within `KB_GAP_CLUSTER_DISTANCE` (the query
vector retrieval computed anyway), else a new group. Counts and times are aggregated from the
events at read time, so retention (a periodic `prune_gaps` job: `KB_GAP_RETENTION_DAYS`,
`KB_GAP_MAX_ROWS` events per workspace) keeps them right. A process killed between a retrieval
and the next write loses the events in its queue (at most about a second's worth).
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import InvalidRequest, NotFound
from ..jobs import JobContext, JobKind, Scheduler
from ..records import GapGroup, GapObservation, GapPrune, Job, KnowledgeGap, Workspace, new_id
from ..settings import GapSettings
from ..storage import Database, now
from ..storage.repositories import GapStore
from .cursors import decode_cursor, encode_cursor

log = logging.getLogger(__name__)

PRUNE_KIND = "prune_gaps"
PRUNE_SCHEDULE = "gaps:prune"
FLUSH_SECS = 1.0  # the writer thread wakes at least this often while events wait
BATCH = 500  # events written per transaction
CACHED_WORKSPACES = 32  # (workspace, model) group vectors kept in memory for clustering
MAX_PAGE_SIZE = 100

_PUNCTUATION = re.compile(r"[^\w\s]+")
_SPACES = re.compile(r"\s+")


def normalize(query: str) -> str:
    """The text two queries share when they differ only in case, punctuation or spacing."""
    text = unicodedata.normalize("NFKC", query).casefold()
    return _SPACES.sub(" ", _PUNCTUATION.sub(" ", text)).strip()


@dataclass(frozen=True)
class GapPage:
    gaps: list[KnowledgeGap]
    has_more: bool
    next_cursor: str | None
    enabled: bool  # whether the workspace's retrievals are being recorded now
    weak_above: float  # the default model's weak threshold


class _GroupVectors:
    """The group vectors of one workspace and model, for clustering (refreshed with newer groups)."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.matrix = np.zeros((0, 0), dtype=np.float32)
        self.loaded_until = 0.0

    def add(self, group_id: str, vector: np.ndarray) -> None:
        if group_id in self.ids:
            return
        self.ids.append(group_id)
        self.matrix = vector[None, :] if self.matrix.size == 0 else np.vstack([self.matrix, vector[None, :]])

    def nearest(self, vector: np.ndarray) -> tuple[str | None, float]:
        if not self.ids or self.matrix.shape[1] != vector.shape[0]:
            return None, 2.0
        similarities = self.matrix @ vector
        best = int(np.argmax(similarities))
        return self.ids[best], 1.0 - float(similarities[best])


class GapLog:
    def __init__(self, db: Database, store: GapStore, settings: GapSettings, default_cut: Callable[[str], float]):
        self.db = db
        self.store = store
        self.settings = settings
        self.default_cut = default_cut
        self.dropped = 0  # observations lost because the queue was full
        self._queue: queue.Queue[GapObservation] = queue.Queue(maxsize=settings.gap_queue_size)
        self._write_lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._vectors: OrderedDict[tuple[str, str], _GroupVectors] = OrderedDict()

    # --- the hot path ---------------------------------------------------------------------------

    def weak_above(self, model: str) -> float:
        """Nearest distances above this make a retrieval a gap (for the served `model`)."""
        if self.settings.gap_max_distance > 0:
            return self.settings.gap_max_distance
        return max(0.0, self.default_cut(model) - self.settings.gap_margin)

    def observe(
        self, workspace_id: str, query: str, *, model: str, mode: str, best_distance: float | None, returned: int,
        agent_id: str | None = None, vector: np.ndarray | None = None,
    ) -> bool:
        """Queue the retrieval if it is a gap; returns whether it was. Never blocks, never raises."""
        if not self.settings.gap_log:
            return False
        if returned > 0 and best_distance is not None and best_distance <= self.weak_above(model):
            return False
        observation = GapObservation(workspace_id, query, model, mode, best_distance, returned, agent_id, now(),
                                     None if vector is None else np.asarray(vector, dtype=np.float32).tobytes())
        try:
            self._queue.put_nowait(observation)
        except queue.Full:
            self.dropped += 1
            return True
        if self._thread is None:
            self._start()
        return True

    # --- writing --------------------------------------------------------------------------------

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name="kb-gap-log", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                first = self._queue.get(timeout=FLUSH_SECS)
            except queue.Empty:
                continue
            self._write_taken([first])

    def flush(self) -> None:
        """Write every queued observation now (and wait for those the writer thread holds)."""
        self._write_taken([])
        self._queue.join()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        self._write_taken([])

    def _write_taken(self, taken: list[GapObservation]) -> None:
        """Write `taken` (already out of the queue) and whatever else waits, `BATCH` at a time."""
        with self._write_lock:
            while True:
                while len(taken) < BATCH:
                    try:
                        taken.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                if not taken:
                    return
                try:
                    self._write(taken)
                except Exception:
                    self._vectors.clear()  # a group may have been pruned by another process: retry once
                    try:
                        self._write(taken)
                    except Exception:
                        log.warning("could not write %d knowledge-gap event(s); they are dropped", len(taken), exc_info=True)
                for _ in taken:
                    self._queue.task_done()
                taken = []

    def _write(self, observations: list[GapObservation]) -> None:
        with self.db.write() as tx:
            switches = self.store.switches(tx, sorted({o.workspace_id for o in observations}))
            rows = []
            for o in observations:
                if not switches.get(o.workspace_id, True):
                    continue
                rows.append({
                    "gap_id": self._group_for(tx, o), "workspace_id": o.workspace_id, "query": o.query,
                    "agent_id": o.agent_id, "mode": o.mode, "best_distance": o.best_distance, "returned": o.returned,
                    "created_at": o.at,
                })
            self.store.insert_events(tx, rows)

    def _group_for(self, tx, o: GapObservation) -> str:
        normalized = normalize(o.query)[:1000]
        found = self.store.find_group(tx, o.workspace_id, normalized)
        if found is not None:
            return found
        vector = np.frombuffer(o.vector, dtype=np.float32) if o.vector else None
        vectors = self._group_vectors(tx, o.workspace_id, o.model) if vector is not None else None
        if vectors is not None and self.settings.gap_cluster_distance > 0:
            nearest, distance = vectors.nearest(vector)
            if nearest is not None and distance <= self.settings.gap_cluster_distance:
                return nearest
        group = GapGroup(new_id("gap_"), normalized, o.vector, o.at)
        self.store.insert_group(tx, o.workspace_id, group, o.model, o.query)
        if vectors is not None:
            vectors.add(group.id, vector)
        return group.id

    def _group_vectors(self, tx, workspace_id: str, model: str) -> _GroupVectors:
        key = (workspace_id, model)
        vectors = self._vectors.get(key)
        if vectors is None:
            vectors = self._vectors[key] = _GroupVectors()
            while len(self._vectors) > CACHED_WORKSPACES:
                self._vectors.popitem(last=False)
        self._vectors.move_to_end(key)
        for group in self.store.groups_since(tx, workspace_id, model, vectors.loaded_until):
            if group.embedding:
                vectors.add(group.id, np.frombuffer(group.embedding, dtype=np.float32))
            vectors.loaded_until = max(vectors.loaded_until, group.created_at)
        return vectors

    # --- reading and managing -------------------------------------------------------------------

    def page(self, workspace: Workspace, default_model: str, *, page_size: int = 30, cursor: str | None = None,
             agent_id: str | None = None, since: float | None = None) -> GapPage:
        """The workspace's gaps, the most frequent first; `default_model` is the served default model."""
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise InvalidRequest(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
        offset = decode_cursor(cursor)
        self.flush()
        with self.db.read() as tx:
            gaps = self.store.page(tx, workspace.id, limit=page_size + 1, offset=offset, agent_id=agent_id, since=since)
            enabled = self._enabled(tx, workspace.id)
        more = len(gaps) > page_size
        return GapPage(gaps[:page_size], more, encode_cursor(offset + page_size) if more else None, enabled,
                       round(self.weak_above(default_model), 6))

    def enabled(self, workspace: Workspace) -> bool:
        with self.db.read() as tx:
            return self._enabled(tx, workspace.id)

    def _enabled(self, tx, workspace_id: str) -> bool:
        return self.settings.gap_log and self.store.switches(tx, [workspace_id]).get(workspace_id, True)

    def set_enabled(self, workspace: Workspace, enabled: bool) -> bool:
        """The workspace's own switch; returns whether it records now (KB_GAP_LOG=false turns every one off)."""
        self.flush()  # what was observed while it was on is kept
        with self.db.write() as tx:
            self.store.set_switch(tx, workspace.id, bool(enabled), now())
            return self._enabled(tx, workspace.id)

    def forget(self, workspace: Workspace, gap_id: str) -> None:
        """Remove one group and its events (once the knowledge base answers it)."""
        self.flush()
        with self.db.write() as tx:
            if not self.store.delete_group(tx, workspace.id, gap_id):
                raise NotFound(f"knowledge gap {gap_id!r} not found in this workspace")
        self._vectors.clear()

    def clear(self, workspace: Workspace) -> int:
        """Remove every group and event of the workspace; returns how many groups went."""
        self.flush()
        with self.db.write() as tx:
            removed = self.store.clear(tx, workspace.id)
        self._vectors.clear()
        return removed

    # --- retention ------------------------------------------------------------------------------

    def prune(self, at: float | None = None) -> GapPrune:
        """Drop events past the retention and beyond each workspace's row limit, then empty groups."""
        self.flush()
        t = now() if at is None else at
        with self.db.write() as tx:
            expired = self.store.delete_older(tx, t - self.settings.gap_retention_days * 86400)
            trimmed = self.store.trim(tx, self.settings.gap_max_rows)
            groups = self.store.delete_empty_groups(tx)
        self._vectors.clear()
        return GapPrune(expired, trimmed, groups)

    def prune_job_kind(self) -> JobKind:
        def handler(jobs: list[Job], context: JobContext) -> None:
            pruned = self.prune()
            if pruned.expired or pruned.trimmed:
                log.info("knowledge-gap log: %s", pruned)

        return JobKind(PRUNE_KIND, handler, batch_size=1, retries=1, retry_delay_secs=60)

    def ensure_schedule(self, scheduler: Scheduler) -> None:
        """The periodic pruning, created once (a restart keeps its next run)."""
        existing = scheduler.get(PRUNE_SCHEDULE)
        if existing is None or existing.interval_secs != self.settings.gap_prune_secs:
            scheduler.schedule(PRUNE_SCHEDULE, PRUNE_KIND, {}, self.settings.gap_prune_secs, first_run_at=now() + 60)
