"""Dify's external knowledge API (`POST /retrieval`) over real HTTP, with the real model, FAISS and BM25.

Request and response as Dify publishes them: `knowledge_id`, `query`, `retrieval_setting` (`top_k`,
`score_threshold`), `metadata_condition` (`logical_operator`, `conditions` of `name`,
`comparison_operator`, `value`) → `records` of `content`, `score`, `title`, `metadata`; errors as
`{error_code, error_msg}`: 1001 malformed Authorization header and 1002 authorization failed (403),
2001 unknown knowledge (404).

One server for the module; two tenants built once and only read by the tests.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from helpers import LiveServer, add_text, make_kb, wait_indexed

KB = "/v1/convai/knowledge-base"
HOURS = ("Opening hours. The shop opens at 9 am on weekdays and at 10 am on Saturdays. It is closed on Sundays "
         "and on public holidays. During the summer sale the shop stays open until 8 pm. ") * 4
RETURNS = ("# Returns policy\n\n## Refunds\n\nItems can be returned within 30 days of purchase for a full refund "
           "to the original payment method. Refunds are issued within five business days.\n\n## Exchanges\n\n"
           "Exchanges for another size are free of charge in every store. ") * 3
DELIVERY = ("Delivery. Parcels are shipped by courier within two working days. Delivery is free for orders above "
            "fifty euros; otherwise shipping costs four euros. Tracking numbers are sent by email. ") * 4
LOYALTY = ("Loyalty card. Every purchase earns one point per euro spent. One hundred points give a ten euro "
           "voucher, valid for a year in every store. ") * 4
CAKE = ("Secret recipe of the other tenant: the lemon cake takes three eggs, two lemons and one cup of sugar, "
        "baked for forty minutes. Refunds of cakes are never possible. ") * 5

# name -> (text, attributes); "in_folder": below the "Policies" folder
SHOP = {
    "Opening hours": (HOURS, {"topic": "hours", "year": 2023, "released": "2023-05-01"}),
    "Returns policy": (RETURNS, {"topic": "returns", "year": 2024, "released": "2024-02-01"}),
    "Delivery": (DELIVERY, {"topic": "delivery", "year": 2025, "released": "2025-01-15"}),
    "Loyalty card": (LOYALTY, {"topic": "loyalty", "year": 2022, "released": "2022-09-30"}),
}
IN_FOLDER = {"Returns policy", "Delivery"}
WIDE = {"top_k": 20, "score_threshold": 0.0}


@pytest.fixture(scope="module")
def dkb(tmp_path_factory):
    instance = make_kb(tmp_path_factory.mktemp("dify") / "data")
    yield instance
    instance.close()


@pytest.fixture(scope="module")
def server(dkb) -> Iterator[LiveServer]:
    live = LiveServer(dkb).start()
    yield live
    live.stop()


@pytest.fixture(scope="module")
def tenants(dkb, server) -> dict:
    """The shop (four documents with attributes, two of them in the Policies folder; a Markdown file) and
    the bakery (one document, one folder), each with its key."""
    shop, shop_key = dkb.workspaces.create("shop")
    bakery, bakery_key = dkb.workspaces.create("bakery")
    ids: dict[str, str] = {}
    with server.client(shop_key) as client:
        folder = client.post(f"{KB}/folder", json={"name": "Policies"}).json()["id"]
        for name, (text, attributes) in SHOP.items():
            parent = folder if name in IN_FOLDER else None
            if name == "Returns policy":  # a Markdown file: headings
                response = client.post(f"{KB}/file", files={"file": ("returns.md", text.encode())},
                                       data={"name": name, "parent_folder_id": parent,
                                             "attributes": json.dumps(attributes)})
            else:
                response = client.post(f"{KB}/text", json={"text": text, "name": name, "parent_folder_id": parent,
                                                           "attributes": attributes})
            assert response.status_code == 200, response.text
            ids[name] = response.json()["id"]
        for doc_id in ids.values():
            assert wait_indexed(client, doc_id)["status"] == "succeeded"
    with server.client(bakery_key) as client:
        bakery_folder = client.post(f"{KB}/folder", json={"name": "Recipes"}).json()["id"]
        cake = add_text(client, CAKE, "Lemon cake")
    return {"shop": shop, "shop_key": shop_key, "bakery": bakery, "bakery_key": bakery_key, "folder": folder,
            "ids": ids, "names": {v: k for k, v in ids.items()}, "bakery_folder": bakery_folder, "cake": cake}


def dify(server: LiveServer, key: str | None, body: dict, authorization: str | None = None) -> httpx.Response:
    headers = {}
    if authorization is not None:
        headers["Authorization"] = authorization
    elif key is not None:
        headers["Authorization"] = f"Bearer {key}"
    return httpx.post(server.url + "/retrieval", json=body, headers=headers, timeout=60)


def records(server: LiveServer, t: dict, query: str, knowledge_id: str | None = None, setting: dict | None = None,
            condition: dict | None = None) -> list[dict]:
    body = {"knowledge_id": knowledge_id or t["shop"].id, "query": query, "retrieval_setting": setting or WIDE}
    if condition is not None:
        body["metadata_condition"] = condition
    response = dify(server, t["shop_key"], body)
    assert response.status_code == 200, response.text
    assert set(response.json()) == {"records"}
    return response.json()["records"]


def titles(found: list[dict]) -> set[str]:
    return {r["title"] for r in found}


def assert_dify_error(response: httpx.Response, status: int, code: int, *words: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["error_code"] == code and isinstance(body["error_msg"], str)
    for word in words:
        assert word in body["error_msg"], body
    assert body["detail"]["message"] == body["error_msg"]
    assert "records" not in body
    return body


# --- retrieval ------------------------------------------------------------------------------------


def test_records_in_difys_format_best_first(server, tenants):
    t = tenants
    found = records(server, t, "Can I get my money back for an item I bought?", setting={"top_k": 5, "score_threshold": 0})
    assert 1 <= len(found) <= 5
    for record in found:
        assert set(record) == {"content", "score", "title", "metadata"}
        assert isinstance(record["content"], str) and record["content"].strip()
        assert 0.0 <= record["score"] <= 1.0
        meta = record["metadata"]
        assert meta["document_id"] == t["ids"][record["title"]]
        assert record["score"] == pytest.approx(max(0.0, 1.0 - meta["vector_distance"]), abs=1e-6)
        assert isinstance(meta["chunk_id"], str) and meta["chunk_id"]
        assert meta["citation"].startswith("from ")
    scores = [r["score"] for r in found]
    assert scores == sorted(scores, reverse=True)
    best = found[0]
    assert best["title"] == "Returns policy" and "refund" in best["content"].lower()
    assert best["metadata"]["heading_path"][-1] in ("Refunds", "Exchanges")
    assert best["metadata"]["citation"].startswith("from the Returns policy, section ")
    assert best["score"] > 0.4

    # the same chunks, in the same order, as kb's own retrieval with no cut
    with server.client(t["shop_key"]) as client:
        plain = client.post(f"{KB}/rag/retrieve", json={"query": "Can I get my money back for an item I bought?",
                                                       "max_vector_distance": 2.0,
                                                       "max_retrieved_rag_chunks_count": 5}).json()
    assert [r["metadata"]["chunk_id"] for r in found] == [c["chunk_id"] for c in plain["chunks"]]


def test_other_questions_find_their_documents(server, tenants):
    for query, title in [("When does the shop open on Saturdays?", "Opening hours"),
                         ("How much does shipping cost?", "Delivery"),
                         ("How many points do I earn per euro?", "Loyalty card")]:
        assert records(server, tenants, query, setting={"top_k": 3, "score_threshold": 0})[0]["title"] == title


def test_top_k_is_honoured(server, tenants):
    query = "Tell me about the shop"
    everything = records(server, tenants, query, setting={"top_k": 20, "score_threshold": 0})
    assert len(everything) >= 4
    for k in (1, 2, 3):
        found = records(server, tenants, query, setting={"top_k": k, "score_threshold": 0})
        assert len(found) == k
        assert [r["metadata"]["chunk_id"] for r in found] == [r["metadata"]["chunk_id"] for r in everything[:k]]


def test_score_threshold_filters(server, tenants):
    query = "When is the shop closed?"
    everything = records(server, tenants, query, setting={"top_k": 20, "score_threshold": 0})
    scores = [r["score"] for r in everything]
    assert len(everything) >= 4 and scores[0] > scores[-1]
    # a threshold between the best and the worst score keeps exactly the records at or above it
    middle = round((scores[0] + scores[-1]) / 2, 3)
    kept = records(server, tenants, query, setting={"top_k": 20, "score_threshold": middle})
    assert 1 <= len(kept) < len(everything)
    assert all(r["score"] >= middle for r in kept)
    assert [r["metadata"]["chunk_id"] for r in kept] == [r["metadata"]["chunk_id"] for r in everything
                                                         if r["score"] >= middle]
    assert kept[0]["title"] == "Opening hours"
    # above the best score: nothing
    assert records(server, tenants, query, setting={"top_k": 20, "score_threshold": min(1.0, scores[0] + 0.01)}) == []
    assert records(server, tenants, query, setting={"top_k": 20, "score_threshold": 1.0}) == []


def test_score_threshold_holds_for_complete_lexical_matches(server, tenants):
    """A chunk holding every query word is spared kb's distance cut; Dify's threshold still applies."""
    query = "parcels courier tracking"  # every word in Delivery, as words rather than a question
    everything = records(server, tenants, query, setting={"top_k": 20, "score_threshold": 0})
    assert everything[0]["title"] == "Delivery"
    threshold = round(everything[0]["score"] + 0.05, 3)
    assert threshold <= 1.0
    assert records(server, tenants, query, setting={"top_k": 20, "score_threshold": threshold}) == []


def test_knowledge_id_as_a_folder(server, tenants):
    t = tenants
    # a question answered by a document outside the folder finds only the folder's documents
    found = records(server, t, "When does the shop open on Saturdays?", knowledge_id=t["folder"])
    assert found and titles(found) <= IN_FOLDER
    assert titles(records(server, t, "Tell me about the shop", knowledge_id=t["folder"])) == IN_FOLDER
    assert records(server, t, "Can I get a refund?", knowledge_id=t["folder"])[0]["title"] == "Returns policy"
    # the whole workspace finds the opening hours
    assert records(server, t, "When does the shop open on Saturdays?")[0]["title"] == "Opening hours"


@pytest.mark.parametrize(("conditions", "logical", "expected"), [
    ([("topic", "is", "hours")], "and", {"Opening hours"}),
    ([("year", "=", 2025)], "and", {"Delivery"}),  # Dify's number operators: =, ≠, >, <, ≥, ≤
    ([("year", "=", "2024")], "and", {"Returns policy"}),
    ([("topic", "is not", "hours")], "and", {"Returns policy", "Delivery", "Loyalty card"}),
    ([("year", "≠", 2022)], "and", {"Opening hours", "Returns policy", "Delivery"}),
    ([("year", ">", 2023)], "and", {"Returns policy", "Delivery"}),
    ([("year", ">", "2023")], "and", {"Returns policy", "Delivery"}),  # Dify sends numbers as strings too
    ([("year", "≥", 2023)], "and", {"Opening hours", "Returns policy", "Delivery"}),
    ([("year", "<", 2024)], "and", {"Opening hours", "Loyalty card"}),
    ([("year", "≤", "2022")], "and", {"Loyalty card"}),
    ([("topic", "in", ["hours", "loyalty"])], "and", {"Opening hours", "Loyalty card"}),
    ([("topic", "in", "hours, delivery")], "and", {"Opening hours", "Delivery"}),
    ([("topic", "not in", ["hours", "loyalty"])], "and", {"Returns policy", "Delivery"}),
    ([("released", "before", "2024-01-01")], "and", {"Opening hours", "Loyalty card"}),
    ([("released", "after", "2024-06-01")], "and", {"Delivery"}),
    ([("topic", "is", "hours"), ("topic", "is", "delivery")], "or", {"Opening hours", "Delivery"}),
    ([("year", "≥", 2023), ("released", "before", "2025-01-01")], "and", {"Opening hours", "Returns policy"}),
    ([("topic", "is", "hours"), ("year", ">", 2023)], "and", set()),
    ([("topic", "is", "Hours")], "and", set()),  # strings compare exactly
    ([("no_such_field", "is", "x")], "and", set()),
])
def test_metadata_condition(server, tenants, conditions, logical, expected):
    condition = {"logical_operator": logical,
                 "conditions": [{"name": n, "comparison_operator": op, "value": v} for n, op, v in conditions]}
    found = records(server, tenants, "Tell me about the shop", condition=condition)
    assert titles(found) == expected


def test_metadata_condition_within_a_folder_and_empty(server, tenants):
    t = tenants
    condition = {"logical_operator": "or", "conditions": [
        {"name": "topic", "comparison_operator": "is", "value": "hours"},
        {"name": "topic", "comparison_operator": "is", "value": "delivery"}]}
    assert titles(records(server, t, "Tell me about the shop", knowledge_id=t["folder"], condition=condition)) == {"Delivery"}
    # no conditions, or no metadata_condition at all: no filter
    everything = titles(records(server, t, "Tell me about the shop"))
    assert everything == set(SHOP)
    assert titles(records(server, t, "Tell me about the shop", condition={"logical_operator": "and", "conditions": []})) == everything
    body = {"knowledge_id": t["shop"].id, "query": "Tell me about the shop", "retrieval_setting": WIDE,
            "metadata_condition": None}
    assert titles(dify(server, t["shop_key"], body).json()["records"]) == everything


# --- errors ---------------------------------------------------------------------------------------


def body_for(t: dict, knowledge_id: str | None = None, query: str = "Can I get a refund?") -> dict:
    return {"knowledge_id": knowledge_id or t["shop"].id, "query": query, "retrieval_setting": WIDE}


def test_authorization_failures(server, tenants):
    t = tenants
    body = body_for(t)
    malformed = [dify(server, None, body), dify(server, None, body, authorization="Basic x"),
                 dify(server, None, body, authorization=f"Basic {t['shop_key']}"),
                 dify(server, None, body, authorization="Bearer"), dify(server, None, body, authorization="Token x"),
                 dify(server, None, body, authorization=t["shop_key"])]
    for response in malformed:
        error = assert_dify_error(response, 403, 1001, "Authorization", "Bearer")
        assert error["detail"]["status"] == "invalid_api_key"
    # xi-api-key is kb's header, not Dify's: without Authorization the header is missing
    xi = httpx.post(server.url + "/retrieval", json=body, headers={"xi-api-key": t["shop_key"]}, timeout=60)
    assert_dify_error(xi, 403, 1001)
    for key in ("not-a-key", t["shop_key"] + "x", "sk_" + "0" * 40):
        error = assert_dify_error(dify(server, key, body), 403, 1002, "Authorization failed")
        assert error["detail"]["status"] == "invalid_api_key"
    # the scheme is case-insensitive
    response = dify(server, None, body, authorization=f"bearer {t['shop_key']}")
    assert response.status_code == 200 and response.json()["records"][0]["title"] == "Returns policy"


def test_unknown_knowledge_and_tenant_isolation(server, tenants):
    t = tenants
    foreign = [t["bakery"].id, t["bakery_folder"], t["cake"]]
    for knowledge_id in ["no-such-knowledge", t["ids"]["Delivery"], *foreign]:  # a document is not a knowledge base
        response = dify(server, t["shop_key"], body_for(t, knowledge_id, "lemon cake recipe eggs sugar"))
        error = assert_dify_error(response, 404, 2001, knowledge_id, t["shop"].id)
        assert error["detail"]["status"] == "knowledge_not_found"
        assert "lemon" not in response.text.lower() and "eggs" not in response.text
    # the bakery's key does not reach the shop either
    for knowledge_id in (t["shop"].id, t["folder"]):
        response = dify(server, t["bakery_key"], body_for(t, knowledge_id))
        assert_dify_error(response, 404, 2001, knowledge_id, t["bakery"].id)
        assert "refund" not in response.text.lower()
    # each key's own workspace holds only its own documents, whatever the query
    shop = records(server, t, "lemon cake recipe with eggs and sugar")
    assert shop and titles(shop) <= set(SHOP) and all("eggs" not in r["content"] for r in shop)
    response = dify(server, t["bakery_key"], body_for(t, t["bakery"].id, "Can I get a refund?"))
    assert response.status_code == 200
    assert titles(response.json()["records"]) == {"Lemon cake"}
    assert response.json()["records"][0]["metadata"]["document_id"] == t["cake"]
    # an empty folder of the workspace exists, and holds nothing
    empty = dify(server, t["bakery_key"], body_for(t, t["bakery_folder"], "lemon cake"))
    assert empty.status_code == 200 and empty.json() == {"records": []}


@pytest.mark.parametrize(("change", "field"), [
    (lambda b: b.pop("query"), "query"),
    (lambda b: b.update(query=""), "query"),
    (lambda b: b.pop("knowledge_id"), "knowledge_id"),
    (lambda b: b.pop("retrieval_setting"), "retrieval_setting"),
    (lambda b: b["retrieval_setting"].update(top_k=0), "top_k"),
    (lambda b: b["retrieval_setting"].update(top_k=101), "top_k"),
    (lambda b: b["retrieval_setting"].pop("top_k"), "top_k"),
    (lambda b: b["retrieval_setting"].update(score_threshold=1.5), "score_threshold"),
    (lambda b: b["retrieval_setting"].update(score_threshold=-0.1), "score_threshold"),
    (lambda b: b.update(metadata_condition={"logical_operator": "and"}), "conditions"),
    (lambda b: b.update(metadata_condition={"conditions": ["topic is hours"]}), "conditions"),
])
def test_malformed_bodies_are_422(server, tenants, change, field):
    body = body_for(tenants)
    body["retrieval_setting"] = dict(WIDE)
    change(body)
    response = dify(server, tenants["shop_key"], body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert any(field in [str(part) for part in error["loc"]] for error in response.json()["detail"]), response.text


@pytest.mark.parametrize(("condition", "words"), [
    ({"logical_operator": "xor", "conditions": [{"name": "topic", "comparison_operator": "is", "value": "hours"}]},
     ["logical_operator"]),
    ({"conditions": [{"name": "topic", "comparison_operator": "contains", "value": "h"}]},
     ["conditions[0].comparison_operator", "'contains'", "not supported"]),
    ({"conditions": [{"name": "topic", "comparison_operator": "is", "value": "hours"},
                     {"name": "year", "comparison_operator": ">", "value": "recent"}]},
     ["conditions[1].value", "must be a number", "'recent'"]),
    ({"conditions": [{"name": "topic", "comparison_operator": "in", "value": []}]},
     ["conditions[0].value", "non-empty list"]),
    ({"conditions": [{"name": "", "comparison_operator": "is", "value": "x"}]}, ["conditions[0].name"]),
    ({"conditions": [{"name": "released", "comparison_operator": "before", "value": None}]},
     ["conditions[0].value"]),
    ({"conditions": [{"name": "topic", "comparison_operator": "=", "value": "hours"}]},
     ["conditions[0].value", "must be a number for '='"]),
    ({"conditions": [{"name": "created_at", "comparison_operator": "is", "value": 5}]}, ["conditions[0]"]),
])
def test_bad_metadata_conditions_are_400(server, tenants, condition, words):
    body = {**body_for(tenants), "metadata_condition": condition}
    response = dify(server, tenants["shop_key"], body)
    assert response.status_code == 400, response.text
    detail = response.json()["detail"]
    assert detail["status"] in ("invalid_request", "invalid_filter")
    for word in words:
        assert word in detail["message"], detail


def test_post_only_and_described_in_openapi(server, tenants):
    assert httpx.get(server.url + "/retrieval", timeout=30).status_code == 405
    spec = httpx.get(server.url + "/openapi.json", timeout=30).json()
    operation = spec["paths"]["/retrieval"]["post"]
    assert {"403", "404"} <= set(operation["responses"])
