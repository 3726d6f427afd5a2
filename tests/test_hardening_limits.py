"""Issue 11, groups 4 and 5, through the real HTTP API: bounded bodies, fields, arrays and queries; agents in
the storage quota; bounded search cost; idempotent uploads; orphaned files cleaned at start-up; DOCX text
after an unresolved entity kept."""

from __future__ import annotations

import io
import logging
import os
import threading
import time
import zipfile

import httpx
import pytest

from helpers import LiveServer, add_text, make_kb
from test_hardening import AGENTS, KB, KEEP, refused, send, state


@pytest.fixture
def small(tmp_path):
    """A server with small body limits, and a workspace holding one document."""
    kb = make_kb(tmp_path / "data", max_request_bytes=2_000, max_agent_bytes=5_000, max_upload_bytes=10_000, workers=0)
    server = LiveServer(kb).start()
    workspace, key = kb.workspaces.create("small")
    with server.client(key) as client:
        add_text(client, KEEP, "penguins", wait=False)
        yield kb, client, workspace, server
    server.stop()
    kb.close()


def test_bodies_over_their_limit_are_413_before_parsing(small):
    kb, client, workspace, _ = small
    before = state(kb, client, workspace)
    big = '{"query": "' + "x" * 3_000 + '"}'
    refused(send(client, "POST", f"{KB}/rag/retrieve", big), 413, "request_too_large", "2,000 bytes", "KB_MAX_REQUEST_BYTES")
    # no Content-Length (chunked): counted while it streams
    chunks = (part.encode() for part in ['{"name": "', "y" * 3_000, '"}'])
    response = client.post(f"{KB}/folder", content=chunks, headers={"content-type": "application/json"})
    refused(response, 413, "request_too_large", "KB_MAX_REQUEST_BYTES")
    agent = {"conversation_config": {"agent": {"prompt": {"prompt": "z" * 6_000}}}}
    refused(client.post(f"{AGENTS}/create", json=agent), 413, "request_too_large", "KB_MAX_AGENT_BYTES")
    assert client.post(f"{AGENTS}/create", json={"conversation_config": {"agent": {"prompt": {"prompt": "z" * 3_000}}}}
                       ).status_code == 200  # over the default limit, within the agents' one
    assert client.post(f"{KB}/text", json={"text": KEEP * 40}).status_code == 200  # 4 KB text: its own limit
    refused(client.post(f"{KB}/text", json={"text": "w" * 25_000}), 413, "request_too_large", "twice KB_MAX_UPLOAD_BYTES")
    refused(client.post(f"{KB}/file", files={"file": ("a.txt", b"v " * 600_000, "text/plain")}), 413,
            "request_too_large", "KB_MAX_UPLOAD_BYTES")

    def multipart_chunks():
        yield b"--b0undary\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\r\n"
        for _ in range(200):
            yield b"u " * 10_000
        yield b"\r\n--b0undary--\r\n"

    response = client.post(f"{KB}/file", content=multipart_chunks(),
                           headers={"content-type": "multipart/form-data; boundary=b0undary"})
    refused(response, 413, "request_too_large", "KB_MAX_UPLOAD_BYTES")
    after = state(kb, client, workspace)
    assert len(after[0]) == len(before[0]) + 1 and len(after[1]) == len(before[1]) + 1


def test_arrays_fields_and_queries_have_limits(kb, server):
    workspace, key = kb.workspaces.create("arrays")
    with server.client(key) as client:
        doc = add_text(client, KEEP, "penguins", wait=False)
        agent = client.post(f"{AGENTS}/create", json={"conversation_config": {}}).json()["agent_id"]
        before = state(kb, client, workspace)
        locators = [{"type": "text", "name": "n", "id": f"d{n}"} for n in range(5_001)]
        cases = [
            (f"{AGENTS}/create", {"conversation_config": {"agent": {"prompt": {"knowledge_base": locators}}}}, "knowledge_base"),
            (f"{AGENTS}/create", {"conversation_config": {}, "tags": [f"t{n}" for n in range(101)]}, "tags"),
            (f"{AGENTS}/create", {"conversation_config": {}, "tags": ["x" * 256]}, "tags"),
            (f"{KB}/rag/retrieve", {"query": "penguins", "document_ids": [doc] * 1_001}, "document_ids"),
            (f"{KB}/rag/retrieve", {"query": "q" * 10_001}, "query"),
            (f"{AGENTS}/{agent}/rag/retrieve", {"query": "q" * 10_001}, "query"),  # rag disabled: the same limit
            (f"{KB}/text", {"text": KEEP, "name": "n" * 1_001}, "name"),
            (f"{KB}/text", {"text": KEEP, "parent_folder_id": "f" * 129}, "parent_folder_id"),
            (f"{KB}/url", {"url": "http://127.0.0.1/" + "p" * 8_200}, "url"),
            (f"{KB}/bulk-delete", {"document_ids": ["i" * 129]}, "document_ids"),
        ]
        for path, body, field in cases:
            response = client.post(path, json=body)
            assert response.status_code == 422, (path, field, response.text[:300])
            assert field in response.json()["detail"][0]["loc"], response.json()["detail"][0]
            assert len(response.text) < 5_000  # the input is not echoed
        assert client.get(f"{KB}/search", params={"query": "q" * 10_001}).status_code == 422
        assert client.get(f"{KB}/summaries", params=[("document_ids", doc)] * 101).status_code == 422
        # a 1 MB query (rag disabled) is refused by the body limit, never echoed
        big = client.post(f"{AGENTS}/{agent}/rag/retrieve", json={"query": "q" * 1_000_000})
        refused(big, 413, "request_too_large")
        assert state(kb, client, workspace) == before
    with pytest.raises(Exception, match="over the limit of 10,000"):
        kb.agents.retrieve(workspace, agent, "q" * 10_001)


def test_agents_count_against_the_storage_quota(kb, server):
    workspace, key = kb.workspaces.create("quota", kb_max_bytes=60_000)
    with server.client(key) as client:
        prompt = {"conversation_config": {"agent": {"prompt": {"prompt": "p" * 40_000}}}}
        first = client.post(f"{AGENTS}/create", json=prompt)
        assert first.status_code == 200
        usage = kb.quotas.limits_and_usage(workspace.id)[1]
        assert usage.agent_bytes > 40_000 and usage.kb_bytes == usage.agent_bytes  # the usage shown counts agents
        before = state(kb, client, workspace)
        refused(client.post(f"{AGENTS}/create", json=prompt), 413, "quota_exceeded", "this agent")
        refused(client.post(f"{KB}/text", json={"text": "t " * 15_000}), 413, "quota_exceeded", "this document")
        refused(client.post(f"{AGENTS}/{first.json()['agent_id']}/duplicate"), 413, "quota_exceeded")
        # rewriting the agent counts its new size, not old + new
        smaller = {"conversation_config": {"agent": {"prompt": {"prompt": "p" * 30_000}}}}
        assert client.patch(f"{AGENTS}/{first.json()['agent_id']}", json=smaller).status_code == 200
        refused(client.patch(f"{AGENTS}/{first.json()['agent_id']}",
                             json={"conversation_config": {"agent": {"prompt": {"prompt": "p" * 70_000}}}}),
                413, "quota_exceeded")
        assert state(kb, client, workspace)[:2] == before[:2]
        assert client.post(f"{KB}/text", json={"text": "t " * 10_000}).status_code == 200  # what the agent left


def test_search_in_a_huge_document_reads_only_its_start_for_snippets(tmp_path):
    kb = make_kb(tmp_path / "data", workers=0)  # stored, not indexed: this is full-text search
    server = LiveServer(kb).start()
    try:
        _, key = kb.workspaces.create("huge")
        with server.client(key) as client:
            text = "albatross " + "filler words about nothing in particular " * 500_000 + " zeppelin"
            assert len(text) > 20_000_000
            huge = client.post(f"{KB}/text", json={"text": text, "name": "huge"}, timeout=300).json()["id"]
            started = time.perf_counter()
            hits = client.get(f"{KB}/search", params={"query": "albatross"}).json()["results"]
            early = time.perf_counter() - started
            assert [h["document"]["id"] for h in hits] == [huge]
            assert any(part["is_hit"] and part["value"] == "albatross" for part in hits[0]["search_snippet"])
            late = client.get(f"{KB}/search", params={"query": "zeppelin"}).json()["results"]
            assert [h["document"]["id"] for h in late] == [huge]  # found by the index, anywhere
            assert not any(part["is_hit"] for part in late[0]["search_snippet"])  # snippet from the start only
            assert sum(len(p["value"]) for p in late[0]["search_snippet"]) <= 400
            print(f"search in a {len(text):,}-character document: {early * 1000:.0f} ms")
    finally:
        server.stop()
        kb.close()


# --- 5. idempotency, orphans, DOCX entities ------------------------------------------------------


def test_a_retried_upload_with_the_same_key_returns_the_first_document(kb, server):
    workspace, key = kb.workspaces.create("idem")
    other, other_key = kb.workspaces.create("idem-other")
    with server.client(key) as client, server.client(other_key) as stranger:
        headers = {"Idempotency-Key": "upload-0001"}
        first = client.post(f"{KB}/text", json={"text": KEEP, "name": "once"}, headers=headers)
        again = client.post(f"{KB}/text", json={"text": KEEP, "name": "once"}, headers=headers)
        assert first.status_code == again.status_code == 200 and first.json() == again.json()
        files = {"file": ("notes.txt", KEEP.encode(), "text/plain")}
        file_first = client.post(f"{KB}/file", files=files, headers={"Idempotency-Key": "file-1"})
        file_again = client.post(f"{KB}/file", files=files, headers={"Idempotency-Key": "file-1"})
        assert file_first.json()["id"] == file_again.json()["id"]
        before = state(kb, client, workspace)
        assert len(before[0]) == 2
        # the same key with another request: refused, nothing stored
        refused(client.post(f"{KB}/text", json={"text": KEEP, "name": "twice"}, headers=headers), 422,
                "idempotency_key_reused", "upload-0001", "different request")
        refused(client.post(f"{KB}/file", files={"file": ("notes.txt", b"other bytes here", "text/plain")},
                            headers={"Idempotency-Key": "file-1"}), 422, "idempotency_key_reused")
        refused(client.post(f"{KB}/url", json={"url": "http://127.0.0.1:9/x"}, headers=headers), 422,
                "idempotency_key_reused")
        for bad in ["k" * 256, "caf\u00e9"]:
            refused(client.post(f"{KB}/text", json={"text": KEEP}, headers={"Idempotency-Key": bad.encode("latin-1")}),
                    400, "invalid_request", "Idempotency-Key")
        assert state(kb, client, workspace) == before
        # keys are per workspace
        theirs = stranger.post(f"{KB}/text", json={"text": KEEP, "name": "once"}, headers=headers)
        assert theirs.status_code == 200 and theirs.json()["id"] != first.json()["id"]
        # a deleted first document: the key cannot bring it back
        client.delete(f"{KB}/{first.json()['id']}")
        refused(client.post(f"{KB}/text", json={"text": KEEP, "name": "once"}, headers=headers), 409, "conflict",
                "deleted since")


def test_concurrent_retries_with_one_key_store_one_document(kb, server):
    workspace, key = kb.workspaces.create("race")
    answers: list[httpx.Response] = []

    def upload():
        with server.client(key) as client:
            answers.append(client.post(f"{KB}/text", json={"text": KEEP, "name": "race"},
                                       headers={"Idempotency-Key": "same-key"}))

    threads = [threading.Thread(target=upload) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    assert len({a.json()["id"] for a in answers}) == 1
    assert kb.quotas.limits_and_usage(workspace.id)[1].documents == 1
    assert sorted(os.listdir(kb.settings.storage.data_dir / "blobs" / workspace.id)) == [answers[0].json()["id"]]


def test_idempotency_keys_expire(tmp_path):
    kb = make_kb(tmp_path / "data", idempotency_ttl_secs=1.0, workers=0)
    server = LiveServer(kb).start()
    try:
        _, key = kb.workspaces.create("ttl")
        with server.client(key) as client:
            body, headers = {"text": KEEP}, {"Idempotency-Key": "k"}
            first = client.post(f"{KB}/text", json=body, headers=headers).json()["id"]
            time.sleep(1.5)
            second = client.post(f"{KB}/text", json=body, headers=headers).json()["id"]
            assert first != second and len(client.get(KB).json()["documents"]) == 2
    finally:
        server.stop()
        kb.close()


def test_orphaned_upload_folders_are_removed_at_start_up_and_logged(tmp_path, caplog):
    data = tmp_path / "data"
    kb = make_kb(data, workers=0)
    workspace, _ = kb.workspaces.create("orphans")
    kept = kb.documents.add_text(workspace, KEEP, "kept")
    blobs = data / "blobs" / workspace.id
    old, young = blobs / "orphanOld000000000001", blobs / "orphanYoung00000000001"
    for folder in (old, young):
        folder.mkdir()
        (folder / "original").write_bytes(b"left by a killed upload")
    hour_ago = time.time() - 7_200
    for path in (old / "original", old, blobs / kept.id / "original", blobs / kept.id / "text.txt",
                 blobs / kept.id / "structure.json", blobs / kept.id):
        os.utime(path, (hour_ago, hour_ago))
    kb.close()
    with caplog.at_level(logging.WARNING, logger="kb.services.orphans"):
        kb = make_kb(data, workers=0)
    try:
        assert not old.exists()
        assert young.exists()  # may be an upload in flight: within the grace period
        assert (blobs / kept.id / "original").exists() and kb.documents.text(workspace, kept.id) == KEEP
        assert kb.orphans_removed == [f"{workspace.id}/{old.name}"]
        assert any("orphaned upload folder" in r.getMessage() and old.name in r.getMessage() for r in caplog.records)
    finally:
        kb.close()


def _docx_with_entity() -> bytes:
    import docx

    buffer = io.BytesIO()
    document = docx.Document()
    document.add_paragraph("MARKER")
    document.save(buffer)
    source = zipfile.ZipFile(io.BytesIO(buffer.getvalue()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "word/document.xml":
                xml = data.decode()
                declaration, rest = xml.split("?>", 1)
                xml = (declaration + '?><!DOCTYPE w:document [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>' + rest)
                xml = xml.replace("MARKER", "Start &xxe; middle of the sentence, and the end")
                data = xml.encode()
            target.writestr(item, data)
    return out.getvalue()


def test_docx_text_after_an_unresolved_entity_is_kept(kb, server):
    workspace, key = kb.workspaces.create("docx")
    with server.client(key) as client:
        response = client.post(f"{KB}/file", files={"file": ("entity.docx", _docx_with_entity(), "application/octet-stream")})
        assert response.status_code == 200, response.text
        content = client.get(f"{KB}/{response.json()['id']}/content").text
        assert "Start" in content and "middle of the sentence, and the end" in content
        assert "root:" not in content  # the entity is never expanded
