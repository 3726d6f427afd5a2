"""Agents over a live server: the official ElevenLabs SDK where it has the call, raw HTTP for agent retrieval."""

from __future__ import annotations

import pytest
from elevenlabs import ElevenLabs
from elevenlabs.core.api_error import ApiError
from elevenlabs.errors import UnprocessableEntityError
from elevenlabs.types import (
    GetAgentKnowledgebaseSizeResponseModel,
    GetAgentResponseModel,
    GetAgentsPageResponseModel,
)
from starlette.routing import NoMatchFound

from api.routes import agents as agent_routes
from helpers import LiveServer, add_text

AGENTS = "/v1/convai/agents"
HOURS = "Our shop in Lyon is open Monday to Friday from 9am to 6pm, and on Saturday mornings until noon."
OTHER_HOURS = "Our shop in Paris is open Monday to Friday from 10am to 7pm, and on Saturdays until 5pm."
REFUNDS = "Refund policy: items can be returned within 30 days with the receipt for a full refund."
FACTS = [
    "Mars is the fourth planet from the Sun and has two small moons, Phobos and Deimos.",
    "Saturn is a gas giant planet famous for its bright rings of ice and rock.",
    "Boil the pasta in salted water for nine minutes, then drain and add the sauce.",
]


@pytest.fixture
def server(kb):
    """The live server with the agents router attached (until it is wired into the app)."""
    live = LiveServer(kb)
    app = live.server.config.app
    try:
        app.url_path_for("create_agent")
    except NoMatchFound:
        app.include_router(agent_routes.router)
    live.start()
    yield live
    live.stop()


@pytest.fixture
def sdk(server, api_key) -> ElevenLabs:
    return ElevenLabs(api_key=api_key, base_url=server.url)


@pytest.fixture
def docs(client) -> dict[str, str]:
    ids = {"hours": add_text(client, HOURS, "Lyon hours"), "paris": add_text(client, OTHER_HOURS, "Paris hours")}
    ids["refunds"] = add_text(client, REFUNDS, "Refunds")
    for n, text in enumerate(FACTS):
        ids[f"fact{n}"] = add_text(client, text, f"fact {n}")
    return ids


def config(docs: dict[str, str], **rag) -> dict:
    """Lyon hours and the facts as auto documents (one without usage_mode), refunds as a prompt document."""
    locators = [{"type": "text", "name": "Lyon hours", "id": docs["hours"], "usage_mode": "auto"}]
    locators += [{"type": "text", "name": f"fact {n}", "id": docs[f"fact{n}"]} for n in range(len(FACTS))]
    locators.append({"type": "text", "name": "Refunds", "id": docs["refunds"], "usage_mode": "prompt"})
    return {
        "agent": {
            "first_message": "Hello!",
            "prompt": {
                "prompt": "You answer questions about our shops.",
                "knowledge_base": locators,
                "rag": {"enabled": True, "max_vector_distance": 0.9, "max_retrieved_rag_chunks_count": 3,
                        "max_documents_length": 5000, **rag},
            },
        },
        "tts": {"voice_id": "voice_123"},
        "conversation": {"max_duration_seconds": 600},
    }


def read_back(sent: dict) -> dict:
    """`sent` as an agent reads back: ElevenLabs' knowledge-base defaults filled in, given values kept."""
    prompt = sent.get("agent", {}).get("prompt", {})
    rag = {"enabled": False, "embedding_model": "e5_mistral_7b_instruct", "max_vector_distance": 0.6,
           "max_documents_length": 50_000, "max_retrieved_rag_chunks_count": 20, **prompt.get("rag", {})}
    locators = [{**loc, "usage_mode": loc.get("usage_mode", "auto")} for loc in prompt.get("knowledge_base", [])]
    agent = sent.get("agent", {})
    return {**sent, "agent": {**agent, "prompt": {**prompt, "knowledge_base": locators, "rag": rag}}}


def agent_retrieve(client, agent_id: str, query: str, **overrides) -> dict:
    response = client.post(f"{AGENTS}/{agent_id}/rag/retrieve", json={"query": query, **overrides})
    assert response.status_code == 200, response.text
    return response.json()


def test_create_get_list_update_round_trip(sdk, client, docs):
    sent = config(docs)
    agent_id = sdk.conversational_ai.agents.create(
        conversation_config=sent, name="Shop helper", tags=["shops"], platform_settings={"widget": {"variant": "full"}}
    ).agent_id

    raw = client.get(f"{AGENTS}/{agent_id}").json()
    GetAgentResponseModel.model_validate(raw, strict=True)
    assert raw["conversation_config"] == read_back(sent)
    assert raw["platform_settings"] == {"widget": {"variant": "full"}}
    assert (raw["name"], raw["tags"], raw["access_info"]["role"]) == ("Shop helper", ["shops"], "admin")
    assert raw["metadata"]["created_at_unix_secs"] == raw["metadata"]["updated_at_unix_secs"] > 0

    agent = sdk.conversational_ai.agents.get(agent_id)
    prompt = agent.conversation_config.agent.prompt
    assert [loc.id for loc in prompt.knowledge_base] == [loc["id"] for loc in sent["agent"]["prompt"]["knowledge_base"]]
    assert prompt.knowledge_base[-1].usage_mode == "prompt" and prompt.rag.max_retrieved_rag_chunks_count == 3

    updated = sdk.conversational_ai.agents.update(agent_id, name="Lyon helper", tags=["shops", "lyon"])
    assert (updated.name, updated.tags) == ("Lyon helper", ["shops", "lyon"])
    assert client.get(f"{AGENTS}/{agent_id}").json()["conversation_config"] == read_back(sent)  # untouched by the rename

    # A partial conversation_config is deep-merged; a knowledge_base given replaces the old one whole.
    sdk.conversational_ai.agents.update(
        agent_id,
        conversation_config={"agent": {"prompt": {"rag": {"max_vector_distance": 0.5},
                                                  "knowledge_base": sent["agent"]["prompt"]["knowledge_base"][:1]}}},
    )
    merged = client.get(f"{AGENTS}/{agent_id}").json()["conversation_config"]
    assert merged["agent"]["prompt"]["rag"] == {**read_back(sent)["agent"]["prompt"]["rag"], "max_vector_distance": 0.5}
    assert merged["agent"]["prompt"]["knowledge_base"] == sent["agent"]["prompt"]["knowledge_base"][:1]
    assert merged["agent"]["first_message"] == "Hello!" and merged["tts"] == {"voice_id": "voice_123"}

    page = sdk.conversational_ai.agents.list()
    GetAgentsPageResponseModel.model_validate(client.get(AGENTS).json(), strict=True)
    assert [(a.agent_id, a.name, a.voice_id, a.tags) for a in page.agents] == [
        (agent_id, "Lyon helper", "voice_123", ["shops", "lyon"])
    ]
    assert page.has_more is False


def test_list_pages_searches_and_sorts(sdk):
    agents = sdk.conversational_ai.agents
    ids = {name: agents.create(conversation_config={}, name=name).agent_id for name in ("beta", "alpha", "Gamma", "delta")}
    seen, cursor = [], None
    while True:
        page = agents.list(page_size=3, sort_by="name", sort_direction="asc", cursor=cursor)
        seen += [a.name for a in page.agents]
        if not page.has_more:
            break
        cursor = page.next_cursor
    assert seen == sorted(ids)  # byte order: "Gamma" first
    newest_first = [a.agent_id for a in agents.list().agents]
    assert newest_first == list(ids.values())[::-1]
    assert [a.name for a in agents.list(search="AMM").agents] == ["Gamma"]
    assert [a.name for a in agents.list(search="%").agents] == []
    with pytest.raises(ApiError) as bad:
        agents.list(page_size=2, sort_by="name", cursor=agents.list(page_size=2).next_cursor)
    assert bad.value.status_code == 400


def test_knowledge_base_size(sdk, client, docs):
    agent_id = sdk.conversational_ai.agents.create(conversation_config=config(docs)).agent_id
    attached = ["hours", "refunds", *(f"fact{n}" for n in range(len(FACTS)))]
    chars = sum(len(client.get(f"/v1/convai/knowledge-base/{docs[k]}/content").text) for k in attached)
    size = sdk.conversational_ai.agents.knowledge_base.size(agent_id)
    GetAgentKnowledgebaseSizeResponseModel.model_validate(
        client.get(f"/v1/convai/agent/{agent_id}/knowledge-base/size").json(), strict=True
    )
    assert size.number_of_pages == pytest.approx(chars / 2000)
    empty = sdk.conversational_ai.agents.create(conversation_config={"agent": {"prompt": {"prompt": "hi"}}}).agent_id
    assert sdk.conversational_ai.agents.knowledge_base.size(empty).number_of_pages == 0.0


def test_agent_retrieve_searches_only_its_auto_documents(sdk, client, docs):
    agent_id = sdk.conversational_ai.agents.create(conversation_config=config(docs)).agent_id
    query = "When is the shop open on Saturday?"
    # Across the whole workspace the Paris document matches too...
    everywhere = client.post("/v1/convai/knowledge-base/rag/retrieve", json={"query": query, "max_vector_distance": 0.9})
    assert docs["paris"] in {c["document_id"] for c in everywhere.json()["chunks"]}
    # ...but the agent searches only its own auto documents.
    result = agent_retrieve(client, agent_id, query)
    auto = {docs["hours"], *(docs[f"fact{n}"] for n in range(len(FACTS)))}
    assert result["chunks"][0]["document_id"] == docs["hours"] and HOURS in result["chunks"][0]["text"]
    assert {c["document_id"] for c in result["chunks"]} <= auto
    assert all(c["vector_distance"] <= 0.9 for c in result["chunks"])
    assert {"chunk_id", "document_name", "text", "start", "end", "heading_path"} <= set(result["chunks"][0])
    assert result["prompt_documents"] == [
        {"document_id": docs["refunds"], "document_name": "Refunds",
         "text": client.get(f"/v1/convai/knowledge-base/{docs['refunds']}/content").text}
    ]
    # no model named: the ElevenLabs name the workspace's default model serves, as the agent reads back
    assert result["embedding_model"] == "e5_mistral_7b_instruct" and result["served_model"] == "all-MiniLM-L6-v2"
    assert result["retrieval_query"] == query
    assert result["rag_enabled"] is True and result["rag_latency_secs"] >= 0
    refunds = agent_retrieve(client, agent_id, "Can I return an item for a refund?")
    assert docs["refunds"] not in {c["document_id"] for c in refunds["chunks"]}  # prompt documents are not searched


def test_agent_limits_and_overrides_apply(sdk, client, docs):
    agents = sdk.conversational_ai.agents
    agent_id = agents.create(conversation_config=config(docs, max_vector_distance=2.0)).agent_id
    query = "planets, pasta and opening hours"
    three = agent_retrieve(client, agent_id, query)["chunks"]
    assert len(three) == 3  # max_retrieved_rag_chunks_count of the agent, out of four auto documents
    assert [c["chunk_id"] for c in agent_retrieve(client, agent_id, query, max_retrieved_rag_chunks_count=1)["chunks"]] == [
        three[0]["chunk_id"]
    ]
    four = agent_retrieve(client, agent_id, query, max_retrieved_rag_chunks_count=10)["chunks"]
    assert len(four) == 4 and docs["paris"] not in {c["document_id"] for c in four}
    # The agent's max_documents_length keeps a prefix of the ranking within the budget.
    budget = len(three[0]["text"]) + len(three[1]["text"]) // 2
    agents.update(agent_id, conversation_config={"agent": {"prompt": {"rag": {"max_documents_length": budget}}}})
    assert [c["chunk_id"] for c in agent_retrieve(client, agent_id, query)["chunks"]] == [three[0]["chunk_id"]]
    assert agent_retrieve(client, agent_id, query, max_documents_length=1)["chunks"] == []
    # Without the agent's defaults, kb's apply (distance 0.6 drops the loosely related facts).
    loose = agent_retrieve(client, agent_id, query, use_agent_defaults=False)["chunks"]
    assert all(c["vector_distance"] <= 0.6 for c in loose)
    # A near distance limit of the agent drops every chunk of this vague query.
    agents.update(agent_id, conversation_config={"agent": {"prompt": {"rag": {"max_vector_distance": 0.0}}}})
    assert agent_retrieve(client, agent_id, query)["chunks"] == []


def test_rag_disabled_no_auto_documents_and_unknown_model(sdk, client, docs):
    agents = sdk.conversational_ai.agents
    agent_id = agents.create(conversation_config=config(docs)).agent_id
    agents.update(agent_id, conversation_config={"agent": {"prompt": {"rag": {"enabled": False}}}})
    off = agent_retrieve(client, agent_id, "When is the shop open?")
    assert off["chunks"] == [] and off["rag_enabled"] is False
    assert [d["document_id"] for d in off["prompt_documents"]] == [docs["refunds"]]

    with pytest.raises(ApiError) as unknown:
        agents.update(agent_id, conversation_config={"agent": {"prompt": {"rag": {"enabled": True, "embedding_model": "no_such_model"}}}})
    assert unknown.value.status_code == 400 and "all-MiniLM-L6-v2" in unknown.value.body["detail"]["message"]
    # ElevenLabs' model names are served by the bundled model while theirs are not on the machine
    for name in ("e5_mistral_7b_instruct", "multilingual_e5_large_instruct"):
        agents.update(agent_id, conversation_config={"agent": {"prompt": {"rag": {"enabled": True, "embedding_model": name}}}})
        served = agent_retrieve(client, agent_id, "When is the shop open?")
        assert served["embedding_model"] == name and served["served_model"] == "all-MiniLM-L6-v2"
        assert docs["hours"] in [c["document_id"] for c in served["chunks"]]

    prompt_only = {"agent": {"prompt": {"knowledge_base": [
        {"type": "text", "name": "Refunds", "id": docs["refunds"], "usage_mode": "prompt"}], "rag": {"enabled": True}}}}
    lonely = agents.create(conversation_config=prompt_only).agent_id
    result = agent_retrieve(client, lonely, "When is the shop open?")
    assert result["chunks"] == [] and len(result["prompt_documents"]) == 1  # never the rest of the workspace


def test_invalid_configs_are_refused(sdk, client, docs):
    agents = sdk.conversational_ai.agents
    with pytest.raises(ApiError) as unknown:
        agents.create(conversation_config={"agent": {"prompt": {"knowledge_base": [
            {"type": "text", "name": "x", "id": "doc_nope"}]}}})
    assert unknown.value.status_code == 400 and "doc_nope" in unknown.value.body["detail"]["message"]
    with pytest.raises(UnprocessableEntityError):
        agents.create(conversation_config={"agent": {"prompt": {"knowledge_base": [{"type": "text", "name": "x"}]}}})
    with pytest.raises(UnprocessableEntityError):
        agents.create(conversation_config={"agent": {"prompt": {"rag": {"max_vector_distance": 5}}}})
    twice = [{"type": "text", "name": "x", "id": docs["hours"]}] * 2
    assert client.post(f"{AGENTS}/create", json={"conversation_config": {"agent": {"prompt": {"knowledge_base": twice}}}}).status_code == 400
    assert client.post(f"{AGENTS}/create", json={"name": "no config"}).status_code == 422
    agent_id = agents.create(conversation_config=config(docs)).agent_id
    with pytest.raises(ApiError) as bad_update:
        agents.update(agent_id, conversation_config={"agent": {"prompt": {"knowledge_base": [
            {"type": "text", "name": "x", "id": "doc_gone"}]}}})
    assert bad_update.value.status_code == 400 and "doc_gone" in str(bad_update.value.body)
    assert client.get(f"{AGENTS}/{agent_id}").json()["conversation_config"] == read_back(config(docs))  # unchanged
    assert client.post(f"{AGENTS}/{agent_id}/rag/retrieve", json={"query": "   "}).status_code == 400
    assert client.post(f"{AGENTS}/{agent_id}/rag/retrieve", json={"query": "x", "max_retrieved_rag_chunks_count": 0}).status_code == 422


def test_workspaces_are_isolated(server, kb, sdk, client, docs):
    agent_id = sdk.conversational_ai.agents.create(conversation_config=config(docs), name="Mine").agent_id
    other_key = kb.workspaces.create("other")[1]
    other = ElevenLabs(api_key=other_key, base_url=server.url)
    calls = [
        lambda: other.conversational_ai.agents.get(agent_id),
        lambda: other.conversational_ai.agents.update(agent_id, name="stolen"),
        lambda: other.conversational_ai.agents.delete(agent_id),
        lambda: other.conversational_ai.agents.knowledge_base.size(agent_id),
    ]
    for call in calls:
        with pytest.raises(ApiError) as missing:
            call()
        assert missing.value.status_code == 404 and missing.value.body["detail"]["status"] == "not_found"
    assert other.conversational_ai.agents.list().agents == []
    with server.client(other_key) as foreign:
        assert foreign.post(f"{AGENTS}/{agent_id}/rag/retrieve", json={"query": "hours"}).status_code == 404
    with pytest.raises(ApiError) as foreign_doc:
        other.conversational_ai.agents.create(conversation_config=config(docs))
    assert foreign_doc.value.status_code == 400 and docs["hours"] in foreign_doc.value.body["detail"]["message"]
    assert sdk.conversational_ai.agents.get(agent_id).name == "Mine"
    with server.client(None) as anonymous:
        assert anonymous.get(f"{AGENTS}/{agent_id}").status_code == 401


def test_dependents_detach_and_delete(kb, sdk, client, api_key, docs):
    agents = sdk.conversational_ai.agents
    first = agents.create(conversation_config=config(docs), name="first").agent_id
    second = agents.create(conversation_config={"agent": {"prompt": {"knowledge_base": [
        {"type": "text", "name": "Lyon hours", "id": docs["hours"], "usage_mode": "prompt"}]}}}, name="second").agent_id
    workspace = kb.workspaces.authenticate(api_key)
    dependents = kb.agents.dependent_agents(workspace, [docs["hours"], docs["refunds"], docs["paris"]])
    assert [(a.id, a.name, a.referenced_resource_ids) for a in dependents] == [
        (second, "second", [docs["hours"]]),
        (first, "first", sorted([docs["hours"], docs["refunds"]])),
    ]
    assert kb.agents.dependent_agents(kb.workspaces.create("stranger")[0], [docs["hours"]]) == []

    assert sorted(kb.agents.detach_documents(workspace, [docs["hours"]])) == sorted([first, second])
    kept = client.get(f"{AGENTS}/{first}").json()["conversation_config"]["agent"]["prompt"]["knowledge_base"]
    assert docs["hours"] not in [loc["id"] for loc in kept] and len(kept) == len(FACTS) + 1
    assert client.get(f"{AGENTS}/{second}").json()["conversation_config"]["agent"]["prompt"]["knowledge_base"] == []
    assert [a.id for a in kb.agents.dependent_agents(workspace, [docs["hours"], docs["refunds"]])] == [first]
    assert docs["hours"] not in {c["document_id"] for c in agent_retrieve(client, first, "When is the shop open?")["chunks"]}

    assert agents.delete(first) is None
    with pytest.raises(ApiError) as gone:
        agents.get(first)
    assert gone.value.status_code == 404
    assert kb.agents.dependent_agents(workspace, [docs["refunds"]]) == []
    assert [a.agent_id for a in agents.list().agents] == [second]


def test_openapi_describes_every_agent_route(client):
    paths = client.get("/openapi.json").json()["paths"]
    routes = [
        ("post", f"{AGENTS}/create"), ("get", AGENTS), ("get", f"{AGENTS}/{{agent_id}}"),
        ("patch", f"{AGENTS}/{{agent_id}}"), ("delete", f"{AGENTS}/{{agent_id}}"),
        ("get", "/v1/convai/agent/{agent_id}/knowledge-base/size"), ("post", f"{AGENTS}/{{agent_id}}/rag/retrieve"),
    ]
    for method, path in routes:
        operation = paths[path][method]
        assert operation["summary"]
        assert "$ref" in operation["responses"]["200"]["content"]["application/json"]["schema"], (method, path)


def test_a_folder_stands_for_the_documents_below_it(sdk, client, docs):
    kb_docs = sdk.conversational_ai.knowledge_base.documents
    folder = kb_docs.create_folder(name="Shops").id
    kb_docs.move(docs["hours"], move_to=folder)
    agent_id = sdk.conversational_ai.agents.create(conversation_config={"agent": {"prompt": {
        "knowledge_base": [{"type": "folder", "name": "Shops", "id": folder}], "rag": {"enabled": True}}}}).agent_id
    chunks = agent_retrieve(client, agent_id, "When is the shop open on Saturday?")["chunks"]
    assert {c["document_id"] for c in chunks} == {docs["hours"]}
    size = sdk.conversational_ai.agents.knowledge_base.size(agent_id).number_of_pages
    assert size == pytest.approx(len(client.get(f"/v1/convai/knowledge-base/{docs['hours']}/content").text) / 2000)
