"""RAG indexes: listing, status and progress fields, unknown models (model names: test_model_names.py)."""

from __future__ import annotations

from helpers import add_text, wait_indexed

KB = "/v1/convai/knowledge-base"
TEXT = "Lighthouses guide ships at night with a rotating lamp and a distinctive pattern of flashes."


def test_new_document_gets_an_index_for_the_default_model(client):
    document_id = add_text(client, TEXT, "lighthouse", wait=False)
    first = client.get(f"{KB}/{document_id}/rag-index").json()["indexes"]
    assert len(first) == 1 and first[0]["model"] == "all-MiniLM-L6-v2"
    assert first[0]["status"] in ("created", "processing", "succeeded")
    done = wait_indexed(client, document_id)
    assert done["status"] == "succeeded"
    assert done["progress_percentage"] == 100.0
    assert done["document_model_index_usage"]["used_bytes"] == len(TEXT.encode())
    assert done["id"] == first[0]["id"]


def test_post_reports_the_existing_index(client):
    document_id = add_text(client, TEXT, "lighthouse")
    again = client.post(f"{KB}/{document_id}/rag-index", json={"model": "all-MiniLM-L6-v2"})
    assert again.status_code == 200
    assert again.json()["status"] == "succeeded"
    assert len(client.get(f"{KB}/{document_id}/rag-index").json()["indexes"]) == 1


def test_unknown_model_is_a_clear_error_naming_the_available_ones(client):
    document_id = add_text(client, TEXT, "lighthouse")
    response = client.post(f"{KB}/{document_id}/rag-index", json={"model": "no-such-model"})
    assert response.status_code == 400
    message = response.json()["detail"]["message"]
    assert "no-such-model" in message and "all-MiniLM-L6-v2" in message
    retrieval = client.post(f"{KB}/rag/retrieve", json={"query": "ships", "embedding_model": "no-such-model"})
    assert retrieval.status_code == 400 and "all-MiniLM-L6-v2" in retrieval.json()["detail"]["message"]
