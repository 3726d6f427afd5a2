"""Files left by uploads that never committed (the process was killed between writing an upload's
files and committing its row): found and removed at start-up.

Only folders with no document row and untouched for `KB_ORPHAN_GRACE_SECS` are removed, so the
files of an upload in flight in another process on the same data directory are left alone.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict

from ..storage import Database
from ..storage.interfaces import BlobStore
from ..storage.repositories import DocumentStore

log = logging.getLogger(__name__)
BATCH = 500


def remove_orphaned_files(db: Database, documents: DocumentStore, blobs: BlobStore, grace_secs: float) -> list[str]:
    """Remove the orphaned document folders; return '<workspace>/<document>' of each removed (logged)."""
    cutoff = time.time() - grace_secs
    candidates: dict[str, list[str]] = defaultdict(list)
    for workspace_id, document_id, changed in blobs.document_folders():
        if changed < cutoff:
            candidates[workspace_id].append(document_id)
    removed: list[str] = []
    for workspace_id, ids in candidates.items():
        for start in range(0, len(ids), BATCH):
            batch = ids[start: start + BATCH]
            with db.read() as tx:
                known = {d.id for d in documents.get_many(tx, workspace_id, batch)}
            for document_id in batch:
                if document_id not in known:
                    blobs.delete_document(workspace_id, document_id)
                    removed.append(f"{workspace_id}/{document_id}")
    if removed:
        log.warning("removed %d orphaned upload folder(s) with no document (left by an interrupted upload, older "
                    "than %g s): %s", len(removed), grace_secs, ", ".join(removed))
    return removed
