"""Where documents' bytes live: the local blob store writes whole files, syncs folders, keeps keys inside its root."""

from __future__ import annotations

from pathlib import Path

import pytest

from kb.storage.blobs import LocalBlobStore


def test_a_new_documents_files_are_written_together(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")  # not there yet: made on the first write
    store.put_many("ws_1", "doc_1", {"original": b"\x00raw", "text": "Grüße".encode(), "structure": b"{}"})
    assert store.get("ws_1", "doc_1", "text").decode() == "Grüße"
    assert sorted(p.name for p in (tmp_path / "blobs" / "ws_1" / "doc_1").iterdir()) == ["original", "structure", "text"]


def test_files_are_replaced_whole_and_no_temporary_file_is_left(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    store.put_many("ws_1", "doc_1", {"text": b"old " * 1000, "structure": b"[1]"})
    store.put_many("ws_1", "doc_1", {"text": b"new", "structure": b"[2]"})
    store.put("ws_1", "doc_1", "original", b"bytes")
    assert (store.get("ws_1", "doc_1", "text"), store.get("ws_1", "doc_1", "structure")) == (b"new", b"[2]")
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".")]


@pytest.mark.parametrize("workspace, document, name", [("..", "d", "text"), ("ws", "a/b", "text"), ("ws", "d", "../x"), ("ws", ".", "text")])
def test_keys_cannot_leave_the_store(tmp_path: Path, workspace: str, document: str, name: str) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    with pytest.raises(ValueError, match="invalid blob key"):
        store.put_many(workspace, document, {name: b"x"})
    assert not (tmp_path / "x").exists() and not (tmp_path / "blobs").exists()


def test_deleting_a_document_removes_its_folder_only(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    store.put_many("ws_1", "doc_1", {"text": b"one"})
    store.put_many("ws_1", "doc_2", {"text": b"two"})
    store.delete_document("ws_1", "doc_1")
    assert not (tmp_path / "ws_1" / "doc_1").exists()
    assert store.get("ws_1", "doc_2", "text") == b"two"
