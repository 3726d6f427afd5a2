"""ElevenLabs' embedding model names: resolved through KB_MODEL_ALIASES to a model kb can run.

The bundled MiniLM serves `e5_mistral_7b_instruct` and `multilingual_e5_large_instruct` while their
own models are not on the machine; a second real model (the bundled files under another name)
shows that the model of a name is used as soon as it is there.
"""

from __future__ import annotations

import pytest

from helpers import LiveServer, add_text, make_kb
from kb.errors import ModelNotInstalled, UnknownModel
from kb.settings import bundled_model_path, load_settings
from kb.settings.sections import default_models

KB = "/v1/convai/knowledge-base"
MINILM = "all-MiniLM-L6-v2"
E5 = "e5_mistral_7b_instruct"
MULTILINGUAL = "multilingual_e5_large_instruct"
TEXT = (
    "Lighthouses guide ships at night with a rotating lamp and a distinctive pattern of flashes. "
    "The keeper trimmed the wicks at dusk and wound the clockwork that turned the lens."
)


def _indexes(client, document_id: str) -> list[dict]:
    response = client.get(f"{KB}/{document_id}/rag-index")
    assert response.status_code == 200, response.text
    return response.json()["indexes"]


def test_elevenlabs_names_share_the_index_of_the_model_serving_them(client):
    document_id = add_text(client, TEXT, "lighthouse")
    [own] = _indexes(client, document_id)
    assert own["model"] == MINILM and own["served_model"] == MINILM

    for name in (E5, MULTILINGUAL):
        answer = client.post(f"{KB}/{document_id}/rag-index", json={"model": name})
        assert answer.status_code == 200, answer.text
        index = answer.json()
        assert index["model"] == name and index["served_model"] == MINILM
        assert index["id"] == own["id"] and index["status"] == "succeeded"  # the same index, not a second one

    listed = _indexes(client, document_id)
    assert [(i["model"], i["served_model"], i["id"]) for i in listed] == [
        (MINILM, MINILM, own["id"]), (E5, MINILM, own["id"]), (MULTILINGUAL, MINILM, own["id"])
    ]
    overview = client.get(f"{KB}/rag-index").json()
    assert overview["total_used_bytes"] == len(TEXT.encode())  # counted once
    assert overview["models"] == [{"model": MINILM, "used_bytes": len(TEXT.encode())}]

    batch = client.post(f"{KB}/rag-index", json={"items": [{"document_id": document_id, "create_if_missing": False,
                                                           "model": E5}]}).json()
    assert batch[document_id]["data"]["model"] == E5 and batch[document_id]["data"]["id"] == own["id"]

    chunks = client.get(f"{KB}/{document_id}/chunks", params={"embedding_model": E5}).json()["chunks"]
    assert chunks and chunks == client.get(f"{KB}/{document_id}/chunks").json()["chunks"]  # no model: the default
    one = client.get(f"{KB}/{document_id}/chunk/{chunks[0]['id']}", params={"embedding_model": MULTILINGUAL})
    assert one.status_code == 200 and one.json()["content"] == chunks[0]["content"]

    question = {"query": "Who trimmed the lamp wicks?", "max_vector_distance": 2.0}
    by_alias = client.post(f"{KB}/rag/retrieve", json={**question, "embedding_model": E5}).json()
    by_model = client.post(f"{KB}/rag/retrieve", json=question).json()
    assert by_alias["embedding_model"] == E5 and by_alias["served_model"] == MINILM
    assert by_model["embedding_model"] == MINILM and by_model["served_model"] == MINILM
    assert [c["chunk_id"] for c in by_alias["chunks"]] == [c["chunk_id"] for c in by_model["chunks"]] != []


def test_a_configured_model_that_is_not_on_the_machine_is_a_clear_400(tmp_path):
    models = {**default_models(), "absent": str(tmp_path / "no-such-model")}
    kb = make_kb(tmp_path / "data", models=models)
    live = LiveServer(kb).start()
    try:
        key = kb.workspaces.create("absent")[1]
        with live.client(key) as client:
            document_id = add_text(client, TEXT, "lighthouse")
            for response in (
                client.post(f"{KB}/{document_id}/rag-index", json={"model": "absent"}),
                client.post(f"{KB}/rag/retrieve", json={"query": "ships", "embedding_model": "absent"}),
                client.get(f"{KB}/{document_id}/chunks", params={"embedding_model": "absent"}),
            ):
                assert response.status_code == 400, response.text
                detail = response.json()["detail"]
                assert detail["status"] == "model_not_installed"
                assert "'absent'" in detail["message"] and "no-such-model" in detail["message"]
                assert "KB_MODEL_ALIASES=absent=" in detail["message"] and MINILM in detail["message"]
            assert [i["model"] for i in _indexes(client, document_id)] == [MINILM]  # nothing was created
    finally:
        live.stop()
        kb.close()


def _index_now(kb, workspace, document_id: str, model: str) -> str:
    """Run the queued indexing jobs here (no workers run) and return the model's index status."""
    while kb.run_queued_jobs():
        pass
    [index] = [i for i in kb.rag_indexes.list(workspace, document_id) if i.model == model]
    return index.status


def test_the_real_model_serves_its_name_once_it_is_on_the_machine(tmp_path):
    """The operator installs e5 (here: real model files under that name) and restarts: no code changes.
    Indexes built by the fallback stay under it; the name's own model indexes the documents again."""
    data = tmp_path / "data"
    kb = make_kb(data)
    try:
        workspace, _ = kb.workspaces.create("installs-later")
        doc = kb.documents.add_text(workspace, TEXT, "lighthouse")
        fallback = kb.rag_indexes.ensure(workspace, doc.id, E5)
        assert fallback.name == E5 and fallback.index.model == MINILM
        assert _index_now(kb, workspace, doc.id, MINILM) == "succeeded"
        before = kb.retrieval.retrieve(workspace, "Who trimmed the lamp wicks?", embedding_model=E5)
        assert before.served_model == MINILM and before.chunks
    finally:
        kb.close()

    kb = make_kb(data, models={**default_models(), E5: bundled_model_path()})
    try:
        workspace = kb.workspaces.get(workspace.id)
        assert kb.models.resolve(E5).served == E5
        assert [(n.name, n.index.model) for n in kb.rag_indexes.list_named(workspace, doc.id)] == [(MINILM, MINILM)]
        unindexed = kb.retrieval.retrieve(workspace, "Who trimmed the lamp wicks?", embedding_model=E5)
        assert unindexed.served_model == E5 and unindexed.chunks == []  # until the documents are indexed again

        reindexed = kb.rag_indexes.ensure(workspace, doc.id, E5)
        assert reindexed.name == E5 and reindexed.index.model == E5 and reindexed.index.id != fallback.index.id
        assert _index_now(kb, workspace, doc.id, E5) == "succeeded"
        after = kb.retrieval.retrieve(workspace, "Who trimmed the lamp wicks?", embedding_model=E5)
        assert after.embedding_model == E5 and after.served_model == E5
        assert [c.text for c in after.chunks] == [c.text for c in before.chunks]
        minilm = kb.retrieval.retrieve(workspace, "Who trimmed the lamp wicks?")
        assert minilm.served_model == MINILM and minilm.chunks  # the fallback's index is untouched
    finally:
        kb.close()


def test_aliases_are_read_from_the_environment_and_checked():
    settings = load_settings(environ={"KB_MODEL_ALIASES": f"{E5}=,qwen3_embedding_4b={MINILM}"})
    assert settings.embedding.model_aliases == {MULTILINGUAL: MINILM, "qwen3_embedding_4b": MINILM}
    assert load_settings(environ={}).embedding.model_aliases == {E5: MINILM, MULTILINGUAL: MINILM}
    with pytest.raises(ValueError, match="KB_MODEL_ALIASES.*not a configured model"):
        load_settings(environ={"KB_MODEL_ALIASES": f"{E5}=no-such-model"})
    with pytest.raises(ValueError, match="KB_MODEL_ALIASES.*itself"):
        load_settings(environ={"KB_MODEL_ALIASES": f"{MINILM}={MINILM}"})
    with pytest.raises(ValueError, match="KB_MODEL_ALIASES"):
        load_settings(environ={"KB_MODEL_ALIASES": "just-a-name"})


def test_resolution_without_a_fallback_and_of_unknown_names(tmp_path):
    kb = make_kb(tmp_path / "data", model_aliases={"qwen3_embedding_4b": MINILM, MULTILINGUAL: MINILM}, workers=0)
    try:
        assert kb.models.resolve("qwen3_embedding_4b").served == MINILM  # an alias of no configured model
        with pytest.raises(ModelNotInstalled, match=f"{E5}.*not on this machine"):
            kb.models.resolve(E5)  # configured by default, absent, and its fallback removed
        with pytest.raises(UnknownModel, match="no-such-model.*available models"):
            kb.models.resolve("no-such-model")
        assert kb.models.client_name(MINILM) == MULTILINGUAL  # the ElevenLabs name MiniLM still serves
    finally:
        kb.close()
