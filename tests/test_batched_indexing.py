"""Queued documents are indexed together: one embedding call and one published generation per batch,
each document's own failure stays its own, and a stopping service hands unfinished jobs back."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from helpers import make_kb
from index.retrieval import RetrievalLimits
from kb.settings import bundled_model_path
from kb.settings.sections import default_models

MODEL = "all-MiniLM-L6-v2"
NOTES = [f"Note {n}: the spare part number {1000 + n} fits pump model {chr(65 + n % 26)}." for n in range(30)]


def statuses(kb, workspace, documents) -> list[str]:
    return [kb.rag_indexes.list(workspace, d.id)[0].status for d in documents]


def test_queued_documents_are_embedded_and_published_together(tmp_path):
    kb = make_kb(tmp_path / "data")
    try:
        workspace, _ = kb.workspaces.create("batch")
        added = [kb.documents.add_text(workspace, text, f"note {n}") for n, text in enumerate(NOTES)]
        calls: list[int] = []
        embedder = kb.models.get(MODEL)
        original = embedder.embed_documents

        def counting(texts, **options):
            calls.append(len(texts))
            return original(texts, **options)

        embedder.embed_documents = counting  # observe the real embedder; it still does the work
        try:
            assert kb.run_queued_jobs() == len(NOTES)  # one worker turn takes every queued job
        finally:
            del embedder.embed_documents
        assert calls == [len(NOTES)]
        assert statuses(kb, workspace, added) == ["succeeded"] * len(NOTES)
        assert kb.vectors.current_generation(workspace.id, MODEL) == 1  # one publication for all
        loaded = kb.vectors.get_loaded(workspace.id, MODEL, embedder.dimension)
        assert len(loaded.store) == len(loaded.lexical.index) == len(NOTES)
        # Each stored vector is the vector of its own chunk, as if embedded alone.
        hit = kb.retrieval.retrieve(workspace, "spare part number 1017", limits=RetrievalLimits(max_vector_distance=2)).chunks[0]
        assert hit.text == NOTES[17]
        alone = embedder.embed_documents([NOTES[17]])[0]
        query = embedder.embed_query("spare part number 1017")
        assert 1 - float(np.dot(query, alone)) == pytest.approx(hit.vector_distance, abs=1e-5)
    finally:
        kb.close()


def test_one_bad_document_fails_alone(tmp_path):
    kb = make_kb(tmp_path / "data")
    try:
        workspace, _ = kb.workspaces.create("batch")
        good = [kb.documents.add_text(workspace, text, f"note {n}") for n, text in enumerate(NOTES[:3])]
        bad = kb.documents.add_text(workspace, "Short but fine text.", "to be broken")
        (kb.settings.storage.data_dir / "blobs" / workspace.id / bad.id).rename(tmp_path / "gone")  # its stored text is lost
        kb.run_queued_jobs()
        assert statuses(kb, workspace, good) == ["succeeded"] * 3
        [index] = kb.rag_indexes.list(workspace, bad.id)
        assert index.status == "failed" and index.error
    finally:
        kb.close()


def test_stopping_service_hands_unfinished_jobs_back(tmp_path):
    kb = make_kb(tmp_path / "data", embed_batch_size=1)
    workspace, _ = kb.workspaces.create("batch")
    long_text = "\n\n".join(f"Paragraph {n} about a different pump, valve and gasket." * 8 for n in range(200))
    document = kb.documents.add_text(workspace, long_text, "long")
    stop = threading.Event()
    kb.indexer.stopping = stop
    embedder = kb.models.get(MODEL)
    original = embedder.embed_documents

    def stop_after_first_batch(texts, **options):
        def progress(done):
            stop.set()  # the service starts stopping while the document is being embedded
            options["on_progress"](done)

        return original(texts, **{**options, "on_progress": progress})

    embedder.embed_documents = stop_after_first_batch
    try:
        kb.run_queued_jobs()
    finally:
        del embedder.embed_documents
    assert kb.rag_indexes.list(workspace, document.id)[0].status == "processing"
    kb.indexer.stopping = None
    assert kb.run_queued_jobs() == 1  # queued again, and this time it finishes
    assert kb.rag_indexes.list(workspace, document.id)[0].status == "succeeded"
    kb.close()


def test_server_without_workers_stores_and_queues_and_the_next_server_indexes(tmp_path):
    """`KB_WORKERS=0`: uploads are stored and acknowledged, their indexing waits for a server with workers."""
    from helpers import LiveServer, add_text, retrieve, wait_indexed

    kb = make_kb(tmp_path / "data", workers=0)
    workspace, key = kb.workspaces.create("stored first")
    server = LiveServer(kb).start()
    try:
        with server.client(key) as client:
            ids = [add_text(client, text, f"note {n}", wait=False) for n, text in enumerate(NOTES[:12])]
            time.sleep(1.5)  # a worker, if there were one, would have taken them by now
            response = client.post("/v1/convai/knowledge-base/rag-index", json={"items": [
                {"document_id": d, "model": MODEL, "create_if_missing": False} for d in ids]})
            assert {r["data"]["status"] for r in response.json().values()} == {"created"}
            assert retrieve(client, "spare part number 1005")["chunks"] == []
    finally:
        server.stop()
        kb.close()
    kb = make_kb(tmp_path / "data")  # the default: one worker
    server = LiveServer(kb).start()
    try:
        with server.client(key) as client:
            assert {wait_indexed(client, d)["status"] for d in ids} == {"succeeded"}
            assert retrieve(client, "spare part number 1005")["chunks"][0]["text"] == NOTES[5]
    finally:
        server.stop()
        kb.close()


def test_negative_worker_count_is_refused(tmp_path):
    with pytest.raises(ValueError, match="KB_WORKERS"):
        make_kb(tmp_path / "data", workers=-1)


def test_first_index_statuses_reads_many_documents_at_once(tmp_path):
    """What `kb ingest` polls: the status of the index each upload created, not of later ones."""
    kb = make_kb(tmp_path / "data", models={**default_models(), "second": bundled_model_path()})
    try:
        workspace, _ = kb.workspaces.create("statuses")
        other, _ = kb.workspaces.create("other")
        added = [kb.documents.add_text(workspace, text, f"note {n}") for n, text in enumerate(NOTES[:3])]
        elsewhere = kb.documents.add_text(other, NOTES[3], "not this workspace's")
        ids = [d.id for d in added]
        assert kb.rag_indexes.first_statuses(workspace, ids) == dict.fromkeys(ids, "created")
        kb.run_queued_jobs()
        kb.rag_indexes.ensure(workspace, ids[0], "second")  # a second model's index, queued
        assert kb.rag_indexes.first_statuses(workspace, ids + [elsewhere.id]) == dict.fromkeys(ids, "succeeded")
    finally:
        kb.close()
