"""Auth on every endpoint, and workspaces that cannot see, count, retrieve or change each other's data."""

from __future__ import annotations

from helpers import add_text, retrieve, wait_indexed

KB = "/v1/convai/knowledge-base"


def test_missing_or_unknown_key_is_401_json(server, api_key):
    endpoints = [
        ("GET", KB, None),
        ("POST", f"{KB}/text", {"text": "hello", "name": "x"}),
        ("POST", f"{KB}/url", {"url": "http://127.0.0.1/"}),
        ("GET", f"{KB}/some-id", None),
        ("PATCH", f"{KB}/some-id", {"name": "y"}),
        ("DELETE", f"{KB}/some-id", None),
        ("GET", f"{KB}/some-id/content", None),
        ("GET", f"{KB}/some-id/chunk/c", None),
        ("GET", f"{KB}/some-id/rag-index", None),
        ("POST", f"{KB}/some-id/rag-index", {"model": "all-MiniLM-L6-v2"}),
        ("POST", f"{KB}/rag/retrieve", {"query": "hello"}),
    ]
    for key in (None, "kb_not-a-real-key"):
        with server.client(key) as anonymous:
            for method, path, body in endpoints:
                response = anonymous.request(method, path, json=body)
                assert response.status_code == 401, (method, path, response.text)
                assert "API key" in response.json()["detail"]["message"]
    with server.client(api_key) as authed:
        assert authed.get(KB).status_code == 200


def test_workspaces_are_isolated(server, kb):
    _, key_a = kb.workspaces.create("alpha")
    _, key_b = kb.workspaces.create("beta")
    with server.client(key_a) as a, server.client(key_b) as b:
        secret = add_text(a, "The launch code for project Nightingale is 7-4-1-9.", "alpha secret")
        mine = add_text(b, "Beta workspace notes about gardening tomatoes.", "beta notes")
        chunk_id = retrieve(a, "launch code Nightingale")["chunks"][0]["chunk_id"]

        # B cannot read, list, count, retrieve or change A's document.
        assert [d["id"] for d in b.get(KB).json()["documents"]] == [mine]
        assert b.get(KB, params={"search": "alpha"}).json()["documents"] == []
        for method, path, body in [
            ("GET", f"{KB}/{secret}", None),
            ("GET", f"{KB}/{secret}/content", None),
            ("GET", f"{KB}/{secret}/chunk/{chunk_id}", None),
            ("GET", f"{KB}/{mine}/chunk/{chunk_id}", None),
            ("PATCH", f"{KB}/{secret}", {"name": "stolen"}),
            ("DELETE", f"{KB}/{secret}", None),
            ("GET", f"{KB}/{secret}/rag-index", None),
            ("POST", f"{KB}/{secret}/rag-index", {"model": "all-MiniLM-L6-v2"}),
            ("POST", f"{KB}/{secret}/rag-index", {"model": "e5_mistral_7b_instruct"}),
            ("GET", f"{KB}/{secret}/chunks?embedding_model=e5_mistral_7b_instruct", None),
            ("PATCH", f"{KB}/{secret}", {"content": "overwritten"}),
            ("GET", f"{KB}/{secret}/dependent-agents?dependent_type=all", None),
        ]:
            response = b.request(method, path, json=body)
            assert response.status_code == 404, (method, path, response.text)

        # Agents: B cannot see, copy or count A's, nor learn which of them use A's documents.
        agent = a.post("/v1/convai/agents/create", json={"name": "alpha agent", "tags": ["shared-tag"], "conversation_config": {
            "agent": {"prompt": {"knowledge_base": [{"type": "text", "name": "s", "id": secret}]}}}}).json()["agent_id"]
        assert b.post(f"/v1/convai/agents/{agent}/duplicate", json={}).status_code == 404
        assert b.get("/v1/convai/agents", params={"tags": "shared-tag"}).json()["agents"] == []
        bulk = b.post(f"{KB}/dependent-agents", json={"document_ids": [secret, mine]}).json()
        assert bulk["agents"] == [] and set(bulk["errors"]) == {secret}
        assert [x["id"] for x in a.get(f"{KB}/{secret}/dependent-agents").json()["agents"]] == [agent]

        hits = retrieve(b, "launch code for project Nightingale", max_vector_distance=2.0)["chunks"]
        assert {h["document_id"] for h in hits} == {mine}
        assert "Nightingale" not in str(hits)
        scoped = b.post(f"{KB}/rag/retrieve", json={"query": "launch code", "document_ids": [secret]})
        assert scoped.status_code == 404

        # A's document is untouched by B's attempts.
        assert a.get(f"{KB}/{secret}").json()["name"] == "alpha secret"
        assert retrieve(a, "launch code Nightingale")["chunks"][0]["document_id"] == secret
        assert wait_indexed(a, secret)["status"] == "succeeded"
