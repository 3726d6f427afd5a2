"""Document attributes and metadata filters, over real HTTP with the real model, FAISS and BM25.

One kb server for the module; a "catalogue" workspace of five documents with attributes (and two
folders) is built once and only read by the operator tests; tests that change things make their
own workspace.
"""

from __future__ import annotations

import calendar
import http.server
import json
import threading
import time
import uuid
from collections.abc import Iterator

import httpx
import pydantic
import pytest
from elevenlabs import ElevenLabs, GetAgentResponseModel, GetKnowledgeBaseListResponseModel
from elevenlabs.conversational_ai.knowledge_base.documents import DocumentsGetResponse

from helpers import CORPUS, LiveServer, make_kb, wait_indexed
from kb.attributes import to_value
from kb.filters import matches, parse_filter

KB = "/v1/convai/knowledge-base"
WIDE = {"max_vector_distance": 2.0, "max_retrieved_rag_chunks_count": 100}
QUERY = "how to use this guide"

CATALOGUE = {
    "kettle": ("This guide explains how to descale the kettle with vinegar and water every month.",
               {"product": "kettle", "year": 2022, "public": True, "released": "2022-03-01", "rating": 4.5}),
    "toaster": ("This guide explains how to empty the crumb tray of the toaster and clean its slots.",
                {"product": "toaster", "year": 2023, "public": False, "released": "2023-06-15"}),
    "blender": ("This guide explains how to take the blender jar apart and sharpen its blades safely.",
                {"product": "blender", "year": 2024, "public": True, "released": "2024-01-10T09:00:00Z"}),
    "shop": ("This guide explains the refund policy of the shop: refunds are paid within fourteen days.",
             {"product": "shop", "public": True}),
    "volcano": ("This guide explains how a volcano erupts when magma rises through the crust as lava.", None),
}
ALL = set(CATALOGUE)


# --- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fkb(tmp_path_factory):
    instance = make_kb(tmp_path_factory.mktemp("filters") / "data", url_allow_hosts=("127.0.0.1",))
    yield instance
    instance.close()


@pytest.fixture(scope="module")
def server(fkb) -> Iterator[LiveServer]:
    live = LiveServer(fkb).start()
    yield live
    live.stop()


def new_client(server: LiveServer, kb) -> httpx.Client:
    return server.client(kb.workspaces.create(f"filters-{uuid.uuid4().hex[:8]}")[1])


@pytest.fixture
def client(server, fkb) -> Iterator[httpx.Client]:
    """A fresh workspace of its own."""
    with new_client(server, fkb) as http:
        yield http


@pytest.fixture(scope="module")
def catalogue(server, fkb) -> Iterator[tuple[httpx.Client, dict[str, str], dict[str, str]]]:
    """(client, name -> document id, folder name -> id): five documents, toaster in folder F,
    blender in F/Sub, the others at the root."""
    with new_client(server, fkb) as http:
        outer = post(http, "/folder", {"name": "F"})["id"]
        inner = post(http, "/folder", {"name": "Sub", "parent_folder_id": outer})["id"]
        where = {"toaster": outer, "blender": inner}
        ids = {}
        for name, (text, attributes) in CATALOGUE.items():
            body = {"text": text, "name": name, "parent_folder_id": where.get(name)}
            if attributes is not None:
                body["attributes"] = attributes
            ids[name] = post(http, "/text", body)["id"]
        for document_id in ids.values():
            assert wait_indexed(http, document_id)["status"] == "succeeded"
        yield http, ids, {"F": outer, "Sub": inner}


def post(http: httpx.Client, path: str, body: dict) -> dict:
    response = http.post(KB + path, json=body)
    assert response.status_code == 200, response.text
    return response.json()


def names(http: httpx.Client, ids: dict[str, str], **body) -> set[str]:
    """Names of the documents retrieval returns for QUERY with these restrictions."""
    found = post(http, "/rag/retrieve", {"query": QUERY, **WIDE, **body})
    by_id = {v: k for k, v in ids.items()}
    return {by_id[c["document_id"]] for c in found["chunks"]}


def attributes_of(http: httpx.Client, document_id: str) -> dict:
    response = http.get(f"{KB}/{document_id}")
    assert response.status_code == 200, response.text
    return response.json()["attributes"]


def error_of(response: httpx.Response, status: int = 400) -> dict:
    assert response.status_code == status, (response.status_code, response.text)
    return response.json()["detail"]


# --- every operator, nesting, dates ---------------------------------------------------------------

CASES = [
    ({"type": "eq", "key": "product", "value": "kettle"}, {"kettle"}),
    ({"type": "ne", "key": "product", "value": "kettle"}, ALL - {"kettle"}),  # volcano has no product: ne matches it
    ({"type": "gt", "key": "year", "value": 2022}, {"toaster", "blender"}),
    ({"type": "gte", "key": "year", "value": 2023}, {"toaster", "blender"}),
    ({"type": "lt", "key": "year", "value": 2023}, {"kettle"}),
    ({"type": "lte", "key": "year", "value": 2023}, {"kettle", "toaster"}),
    ({"type": "in", "key": "product", "value": ["kettle", "blender", "fridge"]}, {"kettle", "blender"}),
    ({"type": "nin", "key": "product", "value": ["kettle", "blender"]}, {"toaster", "shop", "volcano"}),
    ({"type": "eq", "key": "public", "value": True}, {"kettle", "blender", "shop"}),
    ({"type": "eq", "key": "public", "value": False}, {"toaster"}),
    ({"type": "eq", "key": "rating", "value": 4.5}, {"kettle"}),
    ({"type": "eq", "key": "year", "value": "2022"}, set()),  # a string never equals a number
    ({"type": "in", "key": "year", "value": [2024, "kettle"]}, {"blender"}),
    # dates compare as instants, whatever the zone they are written in
    ({"type": "gt", "key": "released", "value": "2023-01-01"}, {"toaster", "blender"}),
    ({"type": "lt", "key": "released", "value": "2024-01-10T10:00:00+02:00"}, {"kettle", "toaster"}),
    ({"type": "eq", "key": "released", "value": "2024-01-10T11:00:00+02:00"}, {"blender"}),
    ({"type": "lte", "key": "released", "value": "2022-03-01"}, {"kettle"}),
    # compounds, nested
    ({"type": "and", "filters": [{"type": "eq", "key": "public", "value": True},
                                 {"type": "gte", "key": "year", "value": 2022}]}, {"kettle", "blender"}),
    ({"type": "or", "filters": [{"type": "eq", "key": "product", "value": "shop"},
                                {"type": "lt", "key": "year", "value": 2023}]}, {"shop", "kettle"}),
    ({"type": "or", "filters": [
        {"type": "and", "filters": [{"type": "eq", "key": "public", "value": True},
                                    {"type": "gt", "key": "year", "value": 2023}]},
        {"type": "eq", "key": "product", "value": "toaster"}]}, {"blender", "toaster"}),
    ({"type": "and", "filters": [
        {"type": "ne", "key": "public", "value": False},
        {"type": "or", "filters": [{"type": "nin", "key": "product", "value": ["shop"]},
                                   {"type": "and", "filters": [{"type": "eq", "key": "rating", "value": 1}]}]}]},
     {"kettle", "blender", "volcano"}),
    # kb's automatic attributes
    ({"type": "eq", "key": "source_type", "value": "text"}, ALL),
    ({"type": "eq", "key": "format", "value": "pdf"}, set()),
    ({"type": "eq", "key": "language", "value": "en"}, ALL),
    ({"type": "gte", "key": "created_at", "value": "2020-01-01"}, ALL),
    ({"type": "lt", "key": "created_at", "value": "2020-01-01T00:00:00Z"}, set()),
    # unknown keys
    ({"type": "eq", "key": "colour", "value": "red"}, set()),
    ({"type": "ne", "key": "colour", "value": "red"}, ALL),
]


@pytest.mark.parametrize(("flt", "expected"), CASES, ids=[json.dumps(c[0])[:70] for c in CASES])
def test_each_operator_and_nesting_selects_exactly_the_matching_documents(catalogue, flt, expected):
    http, ids, _ = catalogue
    assert names(http, ids, filters=flt) == expected
    # the pure rule (kb.filters.matches) on the attributes read back agrees with the SQL
    rule = parse_filter(flt)
    by_rule = {n for n, i in ids.items() if matches(rule, {k: to_value(v) for k, v in attributes_of(http, i).items()})}
    assert by_rule == expected
    # every search mode is restricted alike
    for mode in ("dense", "lexical"):
        assert names(http, ids, filters=flt, search_mode=mode) <= expected


def test_no_filter_and_null_filter_search_everything(catalogue):
    http, ids, _ = catalogue
    assert names(http, ids) == ALL
    assert names(http, ids, filters=None) == ALL


def test_filters_and_document_ids_apply_together(catalogue):
    http, ids, _ = catalogue
    public = {"type": "eq", "key": "public", "value": True}
    assert names(http, ids, filters=public, document_ids=[ids["kettle"], ids["toaster"]]) == {"kettle"}


# --- folder scoping -------------------------------------------------------------------------------


def test_folder_ids_include_sub_folders_and_combine_with_filters(catalogue):
    http, ids, folders = catalogue
    assert names(http, ids, folder_ids=[folders["F"]]) == {"toaster", "blender"}
    assert names(http, ids, folder_ids=[folders["Sub"]]) == {"blender"}
    assert names(http, ids, folder_ids=[folders["F"]], filters={"type": "eq", "key": "year", "value": 2023}) == {"toaster"}
    assert names(http, ids, folder_ids=[folders["Sub"]], document_ids=[ids["toaster"], ids["blender"]]) == {"blender"}


def test_folder_ids_that_are_not_folders_of_the_workspace_are_refused(catalogue):
    http, ids, _ = catalogue
    missing = error_of(http.post(f"{KB}/rag/retrieve", json={"query": QUERY, "folder_ids": ["fo_nope"]}), 404)
    assert "fo_nope" in missing["message"] and "folder_ids" in missing["message"]
    document = error_of(http.post(f"{KB}/rag/retrieve", json={"query": QUERY, "folder_ids": [ids["kettle"]]}))
    assert ids["kettle"] in document["message"] and "not folders" in document["message"]


# --- /search --------------------------------------------------------------------------------------


def test_full_text_search_takes_filters_and_folder_ids(catalogue):
    http, ids, folders = catalogue
    by_id = {v: k for k, v in ids.items()}

    def search(**params) -> set[str]:
        response = http.get(f"{KB}/search", params={"query": "guide", **params})
        assert response.status_code == 200, response.text
        return {by_id[r["document"]["id"]] for r in response.json()["results"]}

    assert search() == ALL
    assert search(filters=json.dumps({"type": "gte", "key": "year", "value": 2023})) == {"toaster", "blender"}
    assert search(folder_ids=[folders["F"]]) == {"toaster", "blender"}
    assert search(folder_ids=[folders["F"]], filters=json.dumps({"type": "eq", "key": "public", "value": True})) == {"blender"}
    bad = error_of(http.get(f"{KB}/search", params={"query": "guide", "filters": "{not json"}))
    assert bad["status"] == "invalid_filter" and "JSON" in bad["message"]


# --- bad filters ----------------------------------------------------------------------------------


def nested(depth: int) -> dict:
    f: dict = {"type": "eq", "key": "a", "value": 1}
    for _ in range(depth):
        f = {"type": "and", "filters": [f]}
    return f


BAD = [
    ({"type": "like", "key": "product", "value": "k%"}, "filters.type", "must be one of"),
    ({"key": "product", "value": "kettle"}, "filters.type", "must be one of"),
    ({"type": "eq", "value": "kettle"}, "filters.key", "attribute name"),
    ({"type": "eq", "key": "product"}, "filters.value", "missing"),
    ({"type": "eq", "key": "product", "value": None}, "filters.value", "must be a string"),
    ({"type": "eq", "key": "product", "value": {"a": 1}}, "filters.value", "must be a string"),
    ({"type": "gt", "key": "year", "value": "soon"}, "filters.value", "number or an ISO 8601 date for gt"),
    ({"type": "lte", "key": "public", "value": True}, "filters.value", "number or an ISO 8601 date for lte"),
    ({"type": "in", "key": "product", "value": "kettle"}, "filters.value", "non-empty list"),
    ({"type": "nin", "key": "product", "value": []}, "filters.value", "non-empty list"),
    ({"type": "in", "key": "product", "value": list(range(101))}, "filters.value", "at most 100"),
    ({"type": "eq", "key": "product", "value": "kettle", "extra": 1}, "filters", "unknown fields"),
    ({"type": "eq", "key": "created_at", "value": 5}, "filters.value", "must be a date"),
    ({"type": "eq", "key": "page_count", "value": "two"}, "filters.value", "must be a number"),
    ({"type": "and", "filters": []}, "filters.filters", "non-empty list"),
    ({"type": "or", "filters": [{"type": "eq", "key": "a", "value": 1}, {"type": "gt", "key": "b", "value": "x"}]},
     "filters.filters[1].value", "number or an ISO 8601 date"),
    (nested(6), "filters" + ".filters[0]" * 5, "deeper than 5"),
    ({"type": "or", "filters": [{"type": "eq", "key": "a", "value": n} for n in range(65)]},
     "filters.filters[64]", "at most 64"),
    ([{"type": "eq", "key": "a", "value": 1}], "filters", "must be an object"),
    ("product = kettle", "filters", "must be an object"),
]


@pytest.mark.parametrize(("flt", "field", "problem"), BAD, ids=[f"{b[1]}:{b[2]}" for b in BAD])
def test_a_bad_filter_is_a_400_naming_the_field_and_the_problem(catalogue, flt, field, problem):
    http, _, _ = catalogue
    detail = error_of(http.post(f"{KB}/rag/retrieve", json={"query": QUERY, "filters": flt}))
    assert detail["status"] == "invalid_filter"
    assert detail["field"] == field, detail
    assert detail["message"].startswith(field + " ") and problem in detail["message"], detail


def test_five_levels_of_nesting_are_accepted(catalogue):
    http, ids, _ = catalogue
    assert names(http, ids, filters=nested(5)) == set()  # five compounds inside each other; no key "a"


# --- agents: default filter and request filters ---------------------------------------------------


def agent_config(ids: dict[str, str], rag: dict) -> dict:
    return {"name": "Support", "conversation_config": {"agent": {"prompt": {
        "prompt": "Help",
        "knowledge_base": [{"type": "text", "name": n, "id": i, "usage_mode": "auto"} for n, i in ids.items()],
        "rag": {"enabled": True, "max_vector_distance": 2.0, "max_retrieved_rag_chunks_count": 100, **rag},
    }}}}


def test_agent_default_filter_applies_with_the_request_filter_and_folders(catalogue, server):
    http, ids, folders = catalogue
    public = {"type": "eq", "key": "public", "value": True}
    agent_id = post_agent(http, agent_config(ids, {"filters": public}))
    by_id = {v: k for k, v in ids.items()}

    def agent_names(**body) -> set[str]:
        response = http.post(f"/v1/convai/agents/{agent_id}/rag/retrieve", json={"query": QUERY, **body})
        assert response.status_code == 200, response.text
        return {by_id[c["document_id"]] for c in response.json()["chunks"]}

    assert agent_names() == {"kettle", "blender", "shop"}
    assert agent_names(filters={"type": "gte", "key": "year", "value": 2023}) == {"blender"}
    assert agent_names(folder_ids=[folders["F"]]) == {"blender"}  # toaster is in F but not public
    # a request filter cannot widen the agent's: the agent's still applies
    assert agent_names(filters={"type": "eq", "key": "product", "value": "toaster"}) == set()
    bad = error_of(http.post(f"/v1/convai/agents/{agent_id}/rag/retrieve",
                             json={"query": QUERY, "filters": {"type": "gt", "key": "year", "value": True}}))
    assert bad["field"] == "filters.value"

    # the stored filter reads back as given, and the official SDK's model still validates the agent
    got = http.get(f"/v1/convai/agents/{agent_id}")
    assert got.json()["conversation_config"]["agent"]["prompt"]["rag"]["filters"] == public
    pydantic.TypeAdapter(GetAgentResponseModel).validate_python(got.json(), strict=True)
    el = ElevenLabs(api_key=http.headers["xi-api-key"], base_url=server.url, timeout=60)
    assert el.conversational_ai.agents.get(agent_id).agent_id == agent_id

    # PATCH replaces the filter whole (no key-by-key merge of a compound into a comparison)
    compound = {"type": "or", "filters": [{"type": "eq", "key": "product", "value": "toaster"},
                                          {"type": "eq", "key": "product", "value": "shop"}]}
    for new, expected in ((compound, {"toaster", "shop"}),
                          ({"type": "eq", "key": "product", "value": "toaster"}, {"toaster"})):
        patched = http.patch(f"/v1/convai/agents/{agent_id}", json={"conversation_config": {"agent": {"prompt": {
            "rag": {"filters": new}}}}})
        assert patched.status_code == 200, patched.text
        assert patched.json()["conversation_config"]["agent"]["prompt"]["rag"]["filters"] == new
        assert agent_names() == expected


def post_agent(http: httpx.Client, body: dict) -> str:
    response = http.post("/v1/convai/agents/create", json=body)
    assert response.status_code == 200, response.text
    return response.json()["agent_id"]


def test_an_agent_with_a_bad_default_filter_is_refused(catalogue):
    http, ids, _ = catalogue
    response = http.post("/v1/convai/agents/create",
                         json=agent_config(ids, {"filters": {"type": "between", "key": "year", "value": [1, 2]}}))
    detail = error_of(response)
    assert detail["field"] == "conversation_config.agent.prompt.rag.filters.type", detail


# --- a selective filter still returns the best matches -------------------------------------------


def test_a_filter_selecting_one_percent_returns_its_best_matches_not_a_post_filter(client):
    passages = [json.loads(line) for line in (CORPUS / "retrieval" / "msmarco-5k" / "corpus.jsonl").open()][:200]
    ids = [post(client, "/text", {"text": p["text"], "name": p["_id"]})["id"] for p in passages]
    for document_id in ids:
        assert wait_indexed(client, document_id)["status"] == "succeeded"
    query = "who invented the mercury thermometer"
    top = post(client, "/rag/retrieve", {"query": query, "max_vector_distance": 2.0, "max_retrieved_rag_chunks_count": 20})
    in_top = {c["document_id"] for c in top["chunks"]}
    assert len(in_top) >= 10
    dense_in_top = {c["document_id"] for c in post(client, "/rag/retrieve", {
        "query": query, "max_vector_distance": 2.0, "max_retrieved_rag_chunks_count": 20, "search_mode": "dense"})["chunks"]}
    # 1 % of the workspace, none among the unfiltered top 20: a post-filter of the top would return nothing
    rare = [d for d in ids if d not in in_top | dense_in_top][-2:]
    for document_id in rare:
        response = client.patch(f"{KB}/{document_id}", json={"attributes": {"group": "rare"}})
        assert response.status_code == 200, response.text
    flt = {"type": "eq", "key": "group", "value": "rare"}
    for mode in ("hybrid", "dense", "lexical"):
        body = {"query": query, "max_vector_distance": 2.0, "max_retrieved_rag_chunks_count": 5, "search_mode": mode}
        filtered = post(client, "/rag/retrieve", {**body, "filters": flt})["chunks"]
        restricted = post(client, "/rag/retrieve", {**body, "document_ids": rare})["chunks"]
        assert [(c["chunk_id"], c["vector_distance"]) for c in filtered] == \
            [(c["chunk_id"], c["vector_distance"]) for c in restricted], mode
        assert {c["document_id"] for c in filtered} <= set(rare)
        if mode != "lexical":  # lexical search returns only chunks sharing a word with the query
            assert {c["document_id"] for c in filtered} == set(rare), mode
    # dense ranking is by distance alone: leaving out documents outside its top 20 changes nothing
    wide = {"query": query, "max_vector_distance": 2.0, "max_retrieved_rag_chunks_count": 20, "search_mode": "dense"}
    dense_top = post(client, "/rag/retrieve", wide)["chunks"]
    negated = post(client, "/rag/retrieve", {**wide, "filters": {"type": "ne", "key": "group", "value": "rare"}})
    assert [c["chunk_id"] for c in negated["chunks"]] == [c["chunk_id"] for c in dense_top]
    assert negated["timings_ms"]["filter"] >= 0


# --- attributes: upload, PATCH, automatic ---------------------------------------------------------


class Site:
    """A local web server with one page."""

    def __init__(self, body: bytes) -> None:
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/guide.html"


def test_attributes_at_upload_of_text_file_and_url_with_automatic_ones(client):
    t0 = time.time()
    text_id = post(client, "/text", {"text": "Le guide de la bouilloire: détartrer chaque mois avec du vinaigre blanc "
                                             "et de l'eau, puis rincer la bouilloire deux fois.",
                                     "attributes": {"product": "kettle", "since": "2024-05-01"}})["id"]
    pdf = CORPUS / "pdf" / "pdflatex-4-pages.pdf"
    with pdf.open("rb") as handle:
        uploaded = client.post(f"{KB}/file", files={"file": (pdf.name, handle, "application/pdf")},
                               data={"attributes": json.dumps({"team": "docs", "version": 3, "draft": False})})
    assert uploaded.status_code == 200, uploaded.text
    file_id = uploaded.json()["id"]
    site = Site(b"<html><head><title>Guide</title></head><body><article><h1>Guide</h1><p>"
                + b"The guide to descaling kettles in hard water areas, with vinegar or citric acid. " * 5
                + b"</p></article></body></html>")
    try:
        url_id = post(client, "/url", {"url": site.url, "attributes": {"team": "web"}})["id"]
    finally:
        site.httpd.shutdown()

    text = attributes_of(client, text_id)
    assert {k: text[k] for k in ("product", "since", "source_type", "format", "language")} == {
        "product": "kettle", "since": "2024-05-01", "source_type": "text", "format": "txt", "language": "fr"}
    assert "file_name" not in text and "url" not in text and "page_count" not in text
    created = calendar.timegm(time.strptime(text["created_at"], "%Y-%m-%dT%H:%M:%SZ"))
    assert t0 - 2 <= created <= time.time() + 2 and text["updated_at"] >= text["created_at"]

    pdf_attributes = attributes_of(client, file_id)
    assert {k: pdf_attributes[k] for k in ("team", "version", "draft", "source_type", "format", "file_name",
                                           "page_count")} == {
        "team": "docs", "version": 3, "draft": False, "source_type": "file", "format": "pdf",
        "file_name": pdf.name, "page_count": 4}

    web = attributes_of(client, url_id)
    assert web["team"] == "web" and web["source_type"] == "url" and web["format"] == "html"
    assert web["url"] == site.url and web["site"] == "127.0.0.1" and web["language"] == "en"

    # automatic attributes are filterable like the client's
    ids = {"text": text_id, "file": file_id, "url": url_id}
    for document_id in ids.values():
        assert wait_indexed(client, document_id)["status"] == "succeeded"
    assert names(client, ids, filters={"type": "eq", "key": "site", "value": "127.0.0.1"}) == {"url"}
    assert names(client, ids, filters={"type": "gte", "key": "page_count", "value": 2}) == {"file"}
    assert names(client, ids, filters={"type": "eq", "key": "language", "value": "fr"}) == {"text"}
    assert names(client, ids, filters={"type": "eq", "key": "file_name", "value": pdf.name}) == {"file"}
    assert names(client, ids, filters={"type": "in", "key": "team", "value": ["docs", "web"]}) == {"file", "url"}
    assert names(client, ids, filters={"type": "gt", "key": "since", "value": "2024-04-30T23:59:59Z"}) == {"text"}


def test_patch_replaces_the_client_attributes_and_keeps_the_automatic_ones(client):
    doc = post(client, "/text", {"text": "A short guide to kettles and how to descale them with vinegar.",
                                 "attributes": {"product": "kettle", "year": 2022}})["id"]
    before = attributes_of(client, doc)
    time.sleep(1.1)  # updated_at has a resolution of seconds
    patched = client.patch(f"{KB}/{doc}", json={"attributes": {"product": "toaster", "public": True}})
    assert patched.status_code == 200, patched.text
    after = patched.json()["attributes"]
    assert after["product"] == "toaster" and after["public"] is True and "year" not in after
    assert after["created_at"] == before["created_at"] and after["updated_at"] > before["updated_at"]
    assert attributes_of(client, doc) == after
    renamed = client.patch(f"{KB}/{doc}", json={"name": "Kettles"})  # no attributes given: unchanged
    assert renamed.status_code == 200 and renamed.json()["attributes"]["product"] == "toaster"
    cleared = client.patch(f"{KB}/{doc}", json={"attributes": {}}).json()["attributes"]
    assert set(cleared) == {"source_type", "format", "language", "created_at", "updated_at"}
    folder = post(client, "/folder", {"name": "F"})["id"]
    assert error_of(client.patch(f"{KB}/{folder}", json={"attributes": {"a": 1}}))["field"] == "attributes"
    assert attributes_of(client, folder) == {}


BAD_ATTRIBUTES = [
    ({f"k{n}": n for n in range(17)}, "attributes", "at most 16"),
    ({"k" * 65: 1}, "attributes." + "k" * 65, "1 to 64"),
    ({"bad key": 1}, "attributes.bad key", "letters, digits"),
    ({"note": "x" * 513}, "attributes.note", "at most 512"),
    ({"format": "pdf"}, "attributes.format", "set by kb"),
    ({"tags": ["a", "b"]}, "attributes.tags", "must be a string"),
    ({"owner": None}, "attributes.owner", "must be a string"),
    ({"owner": {"name": "x"}}, "attributes.owner", "must be a string"),
    (["product", "kettle"], "attributes", "must be an object"),
]


@pytest.mark.parametrize(("attributes", "field", "problem"), BAD_ATTRIBUTES, ids=[b[2] for b in BAD_ATTRIBUTES])
def test_bad_attributes_are_a_400_and_store_nothing(client, attributes, field, problem):
    detail = error_of(client.post(f"{KB}/text", json={"text": "A guide to kettles.", "attributes": attributes}))
    assert detail["status"] == "invalid_attributes" and detail["field"] == field and problem in detail["message"], detail
    assert client.get(KB).json()["documents"] == []  # nothing stored
    doc = post(client, "/text", {"text": "A guide to kettles.", "attributes": {"product": "kettle"}})["id"]
    detail = error_of(client.patch(f"{KB}/{doc}", json={"attributes": attributes}))
    assert detail["field"] == field
    assert attributes_of(client, doc)["product"] == "kettle"  # unchanged


def test_a_file_upload_with_attributes_that_are_not_json_is_refused(client):
    pdf = CORPUS / "pdf" / "google-doc-document.pdf"
    with pdf.open("rb") as handle:
        response = client.post(f"{KB}/file", files={"file": (pdf.name, handle, "application/pdf")},
                               data={"attributes": "{team: docs}"})
    detail = error_of(response)
    assert detail["status"] == "invalid_attributes" and "JSON object" in detail["message"]
    assert client.get(KB).json()["documents"] == []


# --- the official SDK still validates -------------------------------------------------------------


def test_documents_with_attributes_read_back_through_the_official_sdk(client, server):
    folder = post(client, "/folder", {"name": "F"})["id"]
    doc = post(client, "/text", {"text": "A guide to kettles and descaling.", "name": "Kettles",
                                 "parent_folder_id": folder, "attributes": {"product": "kettle", "year": 2024}})["id"]
    el = ElevenLabs(api_key=client.headers["xi-api-key"], base_url=server.url, timeout=60)
    got = el.conversational_ai.knowledge_base.documents.get(doc)
    assert type(got).__name__ == "DocumentsGetResponse_Text" and got.name == "Kettles"
    for path, model in ((f"{KB}/{doc}", DocumentsGetResponse), (f"{KB}/{folder}", DocumentsGetResponse),
                        (KB, GetKnowledgeBaseListResponseModel)):
        response = client.get(path)
        assert response.status_code == 200
        pydantic.TypeAdapter(model).validate_python(response.json(), strict=True)
    listed = {d["id"]: d for d in client.get(KB).json()["documents"]}
    assert listed[doc]["attributes"]["product"] == "kettle"


# --- isolation ------------------------------------------------------------------------------------


def test_a_filter_cannot_reach_another_workspace(catalogue, server, fkb):
    http, ids, folders = catalogue
    with new_client(server, fkb) as other:
        theirs = post(other, "/text", {"text": CATALOGUE["kettle"][0], "attributes": {"product": "kettle"}})["id"]
        their_folder = post(other, "/folder", {"name": "Theirs"})["id"]
        assert wait_indexed(other, theirs)["status"] == "succeeded"
        kettle = {"type": "eq", "key": "product", "value": "kettle"}
        everything = {"type": "ne", "key": "product", "value": "none"}
        for flt in (kettle, everything, {"type": "eq", "key": "source_type", "value": "text"}):
            mine = post(http, "/rag/retrieve", {"query": QUERY, **WIDE, "filters": flt})["chunks"]
            assert theirs not in {c["document_id"] for c in mine}
            found = post(other, "/rag/retrieve", {"query": QUERY, **WIDE, "filters": flt})["chunks"]
            assert {c["document_id"] for c in found} == {theirs}
        assert error_of(http.post(f"{KB}/rag/retrieve", json={"query": QUERY, "folder_ids": [their_folder]}), 404)
        assert error_of(other.post(f"{KB}/rag/retrieve", json={"query": QUERY, "folder_ids": [folders["F"]]}), 404)
        searched = other.get(f"{KB}/search", params={"query": "guide", "filters": json.dumps(everything)}).json()
        assert [r["document"]["id"] for r in searched["results"]] == [theirs]
        assert other.get(f"{KB}/{ids['kettle']}").status_code == 404
        assert other.patch(f"{KB}/{ids['kettle']}", json={"attributes": {"product": "stolen"}}).status_code == 404
        assert attributes_of(http, ids["kettle"])["product"] == "kettle"


# --- documents stored before attributes existed ---------------------------------------------------


def test_documents_stored_before_attributes_get_their_automatic_ones(tmp_path):
    """Migration 0007 backfills `site` and `language`; `page_count` comes when workers start."""
    from alembic import command

    from kb.storage import open_database
    from kb.storage.migrate import alembic_config, current_revision, head_revision

    data = tmp_path / "data"
    kb = make_kb(data, url_allow_hosts=("127.0.0.1",))
    ws, _ = kb.workspaces.create("old")
    site = Site(b"<html><head><title>Guide</title></head><body><article><p>"
                + b"The guide to descaling kettles in hard water areas, with vinegar or citric acid. " * 5
                + b"</p></article></body></html>")
    try:
        web = kb.documents.add_url(ws, site.url)
    finally:
        site.httpd.shutdown()
    pdf = CORPUS / "pdf" / "pdflatex-4-pages.pdf"
    paper = kb.documents.add_file(ws, pdf.read_bytes(), pdf.name, "application/pdf")
    note = kb.documents.add_text(ws, "Der Wasserkocher wird jeden Monat mit Essig und Wasser entkalkt, "
                                     "und danach wird er zweimal mit klarem Wasser gespült.")
    while kb.run_queued_jobs():
        pass
    url = kb.settings.storage.db_url
    kb.close()

    db = open_database(url)  # back to the schema before attributes, as the previous code left it
    with db.write() as tx:
        command.downgrade(alembic_config(tx), "0003_rag_index_names")
    assert current_revision(db) == "0003_rag_index_names"
    db.dispose()

    kb = make_kb(data, workers=0)
    try:
        assert current_revision(kb.db) == head_revision()
        got = kb.attributes.of_documents(ws.id, [web, paper, note])
        assert got[web.id]["site"] == "127.0.0.1" and got[web.id]["language"] == "en"
        assert got[note.id]["language"] == "de" and got[paper.id]["source_type"] == "file"
        assert "page_count" not in got[paper.id]
        kb.start_workers()
        assert kb.attributes.of_documents(ws.id, [paper])[paper.id]["page_count"] == 4
        assert kb.attributes.backfill_page_counts() == 0  # idempotent
    finally:
        kb.close()
