"""FAISS files are derived data: written atomically, rebuilt when missing or corrupt, shared between processes."""

from __future__ import annotations

from helpers import make_kb

MODEL = "all-MiniLM-L6-v2"
TEXTS = {
    "volcano": "A volcano erupts when magma rises through the crust and escapes as lava and ash.",
    "violin": "The violin has four strings tuned in fifths and is played with a bow.",
}


def _index_all(kb, workspace) -> None:
    for name, text in TEXTS.items():
        kb.documents.add_text(workspace, text, name)
    while (job := kb.queue.claim()) is not None:
        from kb.jobs import run_batch

        run_batch(kb.queue, kb.job_kinds.get(job.kind), [job])


def _top(kb, workspace, query: str) -> list[tuple[str, float]]:
    return [(c.document_name, round(c.vector_distance, 5)) for c in kb.retrieval.retrieve(workspace, query).chunks]


def test_corrupt_or_missing_index_file_is_rebuilt_from_stored_embeddings(tmp_path):
    kb = make_kb(tmp_path)
    workspace, _ = kb.workspaces.create("w")
    _index_all(kb, workspace)
    expected = _top(kb, workspace, "lava and ash")
    assert expected[0][0] == "volcano"
    kb.vectors.flush()  # files are written in the background; make sure they are there
    [index_file] = (tmp_path / "indexes" / workspace.id).glob("*.faiss")
    kb.close()

    index_file.write_bytes(b"this is not a faiss index")
    fresh = make_kb(tmp_path)  # a new process: nothing in memory
    assert _top(fresh, workspace, "lava and ash") == expected
    fresh.vectors.flush()  # the rebuilt index is saved in the background
    assert index_file.read_bytes() != b"this is not a faiss index"  # rewritten
    fresh.close()

    index_file.unlink()
    fresh = make_kb(tmp_path)
    assert _top(fresh, workspace, "lava and ash") == expected
    fresh.vectors.flush()
    assert index_file.exists()
    fresh.close()


def test_two_processes_on_one_data_dir_see_each_others_changes(tmp_path):
    writer, reader = make_kb(tmp_path), make_kb(tmp_path)
    workspace, _ = writer.workspaces.create("w")
    assert reader.retrieval.retrieve(workspace, "strings and a bow").chunks == []
    _index_all(writer, workspace)
    assert _top(reader, workspace, "strings and a bow")[0][0] == "violin"

    violin = next(d for d in writer.documents.list(workspace).documents if d.name == "violin")
    writer.documents.delete(workspace, violin.id)
    assert "violin" not in [name for name, _ in _top(reader, workspace, "strings and a bow")]
    assert not list((tmp_path / "indexes" / workspace.id).glob("*.tmp"))
    writer.close()
    reader.close()


def test_loaded_indexes_stay_within_the_memory_budget(tmp_path):
    """Many workspaces, a budget of about two of their indexes: memory stays under it, answers stay right."""
    kb = make_kb(tmp_path, index_cache_mb=0.01)  # 10,485 bytes; each workspace's index holds 2 vectors of 1,536
    budget = int(0.01 * 2**20)
    workspaces = []
    for i in range(8):
        workspace, _ = kb.workspaces.create(f"w{i}")
        _index_all(kb, workspace)
        workspaces.append(workspace)
    for _ in range(2):
        for workspace in workspaces:
            assert _top(kb, workspace, "lava and ash")[0][0] == "volcano"
            assert kb.vectors.memory_bytes() <= budget
    assert 1 <= len(kb.vectors.loaded_keys()) <= 3
    kb.close()


def test_a_process_that_only_writes_publishes_the_files_of_each_generation(tmp_path):
    """A worker never searches: it still writes the files of every generation it commits, so that
    other processes load them instead of rebuilding from the stored embeddings."""
    writer = make_kb(tmp_path, workers=0)
    workspace, _ = writer.workspaces.create("w")
    for name, text in TEXTS.items():
        writer.documents.add_text(workspace, text, name)
        while (job := writer.queue.claim()) is not None:
            from kb.jobs import run_batch

            run_batch(writer.queue, writer.job_kinds.get(job.kind), [job])
        writer.vectors.flush()
        generation = writer.vectors.current_generation(workspace.id, MODEL)
        assert generation in writer.vectors.files.generations(workspace.id, MODEL)
    writer.close()
    reader = make_kb(tmp_path)
    assert _top(reader, workspace, "strings and a bow")[0][0] == "violin"
    reader.close()
