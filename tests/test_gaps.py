"""The knowledge-gap log: retrievals that found nothing good are recorded, grouped, pruned, served
over HTTP and by `kb gaps`; the switches turn it off; one workspace never sees another's."""

from __future__ import annotations

import json
import time

import pytest

from helpers import add_text, invoke_cli, make_kb, retrieve

GAPS = "/v1/kb/gaps"
REFUNDS = ("Refund policy. Customers may return any product within 30 days of purchase for a full refund, "
           "provided it is unused and in its original packaging. Refunds are paid to the original card. ") * 3
KETTLE = ("Kettle care. Descale your electric kettle every month with white vinegar or citric acid to remove "
          "limescale, then boil fresh water twice and pour it away before use. ") * 3
GOOD = "how many days do customers have to return a product for a refund"
ABSENT = "What is the capital of Mongolia?"


def gaps_of(client, **params) -> dict:
    response = client.get(GAPS, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def queries_logged(client) -> set[str]:
    return {q for gap in gaps_of(client)["gaps"] for q in gap["examples"]}


@pytest.fixture
def docs(client) -> dict[str, str]:
    return {"refunds": add_text(client, REFUNDS, "Refunds"), "kettle": add_text(client, KETTLE, "Kettle care")}


def test_absent_topic_is_logged_and_a_good_retrieval_is_not(client, docs):
    good = retrieve(client, GOOD)
    assert good["chunks"] and good["chunks"][0]["document_name"] == "Refunds"
    assert retrieve(client, ABSENT)["chunks"] == []
    # answered, but only far away: a weak match is a gap too
    weak = retrieve(client, "the history of the Roman empire", max_vector_distance=2.0)
    assert weak["chunks"] and min(c["vector_distance"] for c in weak["chunks"]) > 0.55
    for mode in ("dense", "lexical"):
        retrieve(client, "quantum chromodynamics lecture notes", search_mode=mode)

    page = gaps_of(client)
    by_query = {g["query"]: g for g in page["gaps"]}
    assert GOOD not in queries_logged(client)
    assert set(by_query) == {ABSENT, "the history of the Roman empire", "quantum chromodynamics lecture notes"}
    absent = by_query[ABSENT]
    assert absent["count"] == 1 and absent["empty_count"] == 1 and absent["search_modes"] == ["hybrid"]
    assert absent["best_distance"] > page["weak_above"] and absent["agent_ids"] == []
    assert time.time() - 60 < absent["first_seen_unix_secs"] <= absent["last_seen_unix_secs"] <= time.time()
    roman = by_query["the history of the Roman empire"]
    assert roman["empty_count"] == 0 and roman["best_distance"] > page["weak_above"]
    assert sorted(by_query["quantum chromodynamics lecture notes"]["search_modes"]) == ["dense", "lexical"]
    assert page["enabled"] is True and page["weak_above"] == pytest.approx(0.55)


def test_agent_retrievals_carry_the_agent(client, docs):
    created = client.post("/v1/convai/agents/create", json={"conversation_config": {"agent": {"prompt": {
        "prompt": "Help", "knowledge_base": [{"type": "text", "name": "Refunds", "id": docs["refunds"], "usage_mode": "auto"}],
        "rag": {"enabled": True}}}}})
    assert created.status_code == 200, created.text
    agent_id = created.json()["agent_id"]
    reply = client.post(f"/v1/convai/agents/{agent_id}/rag/retrieve", json={"query": "how do I descale a kettle"})
    assert reply.status_code == 200 and reply.json()["chunks"] == []  # the kettle is not the agent's
    answered = client.post(f"/v1/convai/agents/{agent_id}/rag/retrieve", json={"query": GOOD})
    assert answered.json()["chunks"]
    retrieve(client, ABSENT)
    gaps = gaps_of(client)["gaps"]
    assert [(g["query"], g["agent_ids"]) for g in gaps if g["agent_ids"]] == [("how do I descale a kettle", [agent_id])]
    only_agent = gaps_of(client, agent_id=agent_id)["gaps"]
    assert [g["query"] for g in only_agent] == ["how do I descale a kettle"]


def test_similar_queries_are_aggregated_and_pages_follow(client, docs):
    asked = [ABSENT, "what is the capital of mongolia", "  WHAT is the capital of Mongolia??", "Which city is Mongolia's capital?",
             "Which city is Mongolia's capital?", "best hiking trails in Patagonia"]
    for query in asked:
        retrieve(client, query)
    gaps = gaps_of(client)["gaps"]
    assert [g["count"] for g in gaps] == [5, 1]
    mongolia, patagonia = gaps
    assert mongolia["query"] == ABSENT  # the first one asked names the group
    assert mongolia["examples"][0] == "Which city is Mongolia's capital?"  # the most recent first
    assert set(mongolia["examples"]) == {q.strip() for q in asked[:5]}  # as retrieval saw them
    assert mongolia["first_seen_unix_secs"] <= patagonia["first_seen_unix_secs"]
    assert patagonia["examples"] == ["best hiking trails in Patagonia"]

    first = gaps_of(client, page_size=1)
    assert first["has_more"] and [g["count"] for g in first["gaps"]] == [5]
    second = gaps_of(client, page_size=1, cursor=first["next_cursor"])
    assert not second["has_more"] and second["next_cursor"] is None and [g["count"] for g in second["gaps"]] == [1]
    for params in ({"page_size": 0}, {"page_size": 101}, {"cursor": "not-a-cursor"}):
        bad = client.get(GAPS, params=params)
        assert bad.status_code == 400, params
        assert bad.json()["detail"]["status"] == "invalid_request"
        assert ("page_size" if "page_size" in params else "cursor") in bad.json()["detail"]["message"]

    missing = client.delete(f"{GAPS}/gap_nope")
    assert missing.status_code == 404 and "gap_nope" in missing.json()["detail"]["message"]
    assert client.delete(f"{GAPS}/{patagonia['id']}").json() == {"removed": 1}
    assert [g["id"] for g in gaps_of(client)["gaps"]] == [mongolia["id"]]
    assert client.delete(GAPS).json() == {"removed": 1}
    assert gaps_of(client)["gaps"] == []


def test_retention_by_age_and_rows_and_the_scheduled_job(tmp_path):
    kb = make_kb(tmp_path / "data", gap_max_rows=3, gap_retention_days=1)
    try:
        workspace, _ = kb.workspaces.create("retention")
        for n in range(5):
            kb.retrieval.retrieve(workspace, f"question number {n} about nothing stored")
        kb.gaps.flush()
        model = kb.models.resolve(workspace.default_model).served
        assert sum(g.count for g in kb.gaps.page(workspace, model).gaps) == 5
        # the periodic job keeps the newest rows of the workspace
        kb.gaps.ensure_schedule(kb.scheduler)
        schedule = kb.scheduler.get("gaps:prune")
        assert schedule.kind == "prune_gaps" and schedule.interval_secs == kb.settings.gaps.gap_prune_secs
        assert kb.scheduler.run_due(at=schedule.next_run_at + 1)
        assert kb.run_queued_jobs() == 1
        left = kb.gaps.page(workspace, model).gaps
        assert sorted(q for g in left for q in g.examples) == [f"question number {n} about nothing stored" for n in (2, 3, 4)]
        # past the retention, everything goes, groups included
        pruned = kb.gaps.prune(at=time.time() + 2 * 86400)
        assert (pruned.expired, pruned.groups) == (3, len(left))
        assert kb.gaps.page(workspace, model).gaps == []
    finally:
        kb.close()


def test_the_setting_turns_it_off(tmp_path):
    kb = make_kb(tmp_path / "data", gap_log=False)
    try:
        workspace, _ = kb.workspaces.create("off")
        kb.retrieval.retrieve(workspace, ABSENT)
        page = kb.gaps.page(workspace, kb.models.resolve(workspace.default_model).served)
        assert page.gaps == [] and page.enabled is False
        assert kb.gaps.set_enabled(workspace, True) is False  # the setting wins over the workspace's switch
    finally:
        kb.close()


def test_a_workspace_turns_its_own_off_and_on(client, docs):
    assert client.get(f"{GAPS}/settings").json() == {"enabled": True}
    assert client.patch(f"{GAPS}/settings", json={"enabled": False}).json() == {"enabled": False}
    retrieve(client, ABSENT)
    assert gaps_of(client)["gaps"] == [] and gaps_of(client)["enabled"] is False
    assert client.patch(f"{GAPS}/settings", json={"enabled": True}).json() == {"enabled": True}
    retrieve(client, "best hiking trails in Patagonia")
    assert queries_logged(client) == {"best hiking trails in Patagonia"}
    assert client.patch(f"{GAPS}/settings", json={"enabled": "maybe"}).status_code == 422


def test_workspaces_are_isolated(kb, server, client, docs):
    _, other_key = kb.workspaces.create("other")
    with server.client(other_key) as other:
        retrieve(client, ABSENT)
        retrieve(client, ABSENT)
        retrieve(other, ABSENT)  # the same question in another workspace: its own group
        retrieve(other, "which bread flour is best")
        mine, theirs = gaps_of(client)["gaps"], gaps_of(other)["gaps"]
        assert [(g["query"], g["count"]) for g in mine] == [(ABSENT, 2)]
        assert sorted((g["query"], g["count"]) for g in theirs) == [(ABSENT, 1), ("which bread flour is best", 1)]
        assert not {g["id"] for g in mine} & {g["id"] for g in theirs}
        # neither may delete or switch the other's
        assert other.delete(f"{GAPS}/{mine[0]['id']}").status_code == 404
        other.patch(f"{GAPS}/settings", json={"enabled": False})
        other.delete(GAPS)
        assert [(g["query"], g["count"]) for g in gaps_of(client)["gaps"]] == [(ABSENT, 2)]
        assert gaps_of(client)["enabled"] is True
        assert client.get(GAPS, headers={"xi-api-key": "kb_wrong"}).status_code == 401


def test_kb_gaps_prints_a_table(tmp_path):
    data = tmp_path / "data"
    kb = make_kb(data)
    try:
        workspace, _ = kb.workspaces.create("cli-gaps")
        for query in (ABSENT, "what is the capital of mongolia", "best hiking trails in Patagonia"):
            kb.retrieval.retrieve(workspace, query)
    finally:
        kb.close()  # writes what is queued
    result = invoke_cli(["gaps", "--workspace", "cli-gaps", "--data-dir", str(data)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["COUNT", "EMPTY", "NEAREST", "LAST", "SEEN", "FIRST", "SEEN", "QUERIES"]
    assert lines[2].split()[:2] == ["2", "2"] and "Mongolia" in lines[2]
    assert lines[3].split()[:2] == ["1", "1"] and "Patagonia" in lines[3]
    as_json = invoke_cli(["gaps", "--workspace", "cli-gaps", "--data-dir", str(data), "--json"])
    assert [g["count"] for g in json.loads(as_json.stdout)] == [2, 1]
    off = invoke_cli(["gaps", "--workspace", "cli-gaps", "--data-dir", str(data), "--disable", "--clear"])
    assert off.exit_code == 0 and "no knowledge gaps recorded (the gap log is off" in off.stdout
    unknown = invoke_cli(["gaps", "--workspace", "nope", "--data-dir", str(data)])
    assert unknown.exit_code != 0 and "no workspace" in unknown.output
