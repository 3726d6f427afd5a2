"""kb's MCP server through the official `mcp` client: streamable HTTP against a live kb (uvicorn on
loopback) and stdio against a `kb mcp` subprocess."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

from helpers import REPO, LiveServer, add_text, data_dir_env, make_kb

KB_BIN = Path(sys.executable).parent / "kb"
HOURS = ("Opening hours. The shop opens at 9 am on weekdays and at 10 am on Saturdays. It is closed on Sundays "
         "and on public holidays. During the summer sale the shop stays open until 8 pm. ") * 4
RETURNS = ("# Returns policy\n\n## Refunds\n\nItems can be returned within 30 days of purchase for a full refund "
           "to the original payment method. Refunds are issued within five business days.\n\n## Exchanges\n\n"
           "Exchanges for another size are free of charge in every store. ") * 3
OTHER = ("Secret recipe of the other tenant: the lemon cake takes three eggs, two lemons and one cup of sugar, "
         "baked for forty minutes. ") * 5
READ_ONLY_TOOLS = {"search_knowledge_base", "list_documents", "get_document"}

Session = Callable[[ClientSession], Awaitable[Any]]


async def _over_http(url: str, headers: dict[str, str], use: Session) -> Any:
    async with httpx2.AsyncClient(headers=headers, timeout=120) as http:
        async with streamable_http_client(url + "/mcp", http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                return await use(session)


def over_http(server: LiveServer, api_key: str, use: Session, bearer: bool = True) -> Any:
    headers = {"Authorization": f"Bearer {api_key}"} if bearer else {"xi-api-key": api_key}
    return asyncio.run(_over_http(server.url, headers, use))


def text_of(result) -> str:
    return "\n".join(block.text for block in result.content if block.type == "text")


@pytest.fixture
def tenants(kb, server):
    """Two workspaces: `a` with the shop's documents (one in a folder), `b` with the other tenant's."""
    a, key_a = kb.workspaces.create("shop")
    b, key_b = kb.workspaces.create("bakery")
    with server.client(key_a) as client:
        folder = client.post("/v1/convai/knowledge-base/folder", json={"name": "Policies"}).json()["id"]
        hours = add_text(client, HOURS, "Opening hours")
        response = client.post("/v1/convai/knowledge-base/file", files={"file": ("returns.md", RETURNS.encode())},
                               data={"name": "Returns policy", "parent_folder_id": folder})
        assert response.status_code == 200, response.text
        returns = response.json()["id"]
        from helpers import wait_indexed

        assert wait_indexed(client, returns)["status"] == "succeeded"
    with server.client(key_b) as client:
        other = add_text(client, OTHER, "Lemon cake")
    return {"key_a": key_a, "key_b": key_b, "hours": hours, "returns": returns, "folder": folder, "other": other,
            "a": a, "b": b}


def test_http_tools_listed_called_and_isolated(kb, server, tenants):
    t = tenants

    async def as_shop(session: ClientSession):
        listed = {tool.name: tool for tool in (await session.list_tools()).tools}
        search = await session.call_tool("search_knowledge_base", {"query": "Can I get my money back for an item?"})
        in_folder = await session.call_tool("search_knowledge_base",
                                            {"query": "When does the shop open?", "folder_ids": [t["folder"]],
                                             "max_vector_distance": 2.0})
        only_hours = await session.call_tool("search_knowledge_base", {
            "query": "When does the shop open?", "document_ids": [t["hours"]], "mode": "lexical", "max_results": 1})
        docs = await session.call_tool("list_documents", {})
        first = await session.call_tool("get_document", {"document_id": t["returns"], "max_characters": 100})
        rest = await session.call_tool("get_document", {"document_id": t["returns"], "offset": 100,
                                                        "max_characters": 50_000})
        foreign = await session.call_tool("get_document", {"document_id": t["other"]})
        foreign_search = await session.call_tool("search_knowledge_base",
                                                 {"query": "lemon cake recipe", "document_ids": [t["other"]]})
        cake = await session.call_tool("search_knowledge_base", {"query": "lemon cake eggs sugar recipe",
                                                                 "max_vector_distance": 2.0, "max_results": 50})
        return listed, search, in_folder, only_hours, docs, first, rest, foreign, foreign_search, cake

    listed, search, in_folder, only_hours, docs, first, rest, foreign, foreign_search, cake = over_http(
        server, t["key_a"], as_shop)

    assert set(listed) == READ_ONLY_TOOLS  # write tools absent by default
    description = listed["search_knowledge_base"].description
    assert "Opening hours" in description and "Returns policy" in description and t["returns"] in description
    assert "Lemon cake" not in description
    assert listed["search_knowledge_base"].annotations.read_only_hint is True

    assert not search.is_error
    best = search.structured_content["results"][0]
    assert best["document_id"] == t["returns"] and best["document_name"] == "Returns policy"
    assert best["heading_path"][-1] in ("Refunds", "Exchanges") and "refund" in best["text"].lower()
    assert 0 <= best["vector_distance"] < 0.6
    assert best["citation"].startswith("from the Returns policy, section ")
    assert '[1] "Returns policy"' in text_of(search) and f"document_id: {t['returns']}" in text_of(search)

    assert {r["document_id"] for r in in_folder.structured_content["results"]} == {t["returns"]}
    assert [r["document_id"] for r in only_hours.structured_content["results"]] == [t["hours"]]

    names = [d["name"] for d in docs.structured_content["documents"]]
    assert names == ["Opening hours", "Returns policy"]  # by name; no folder, nothing of the other tenant

    whole = kb.documents.text(t["a"], t["returns"])
    assert first.structured_content["text"] == whole[:100] and first.structured_content["next_offset"] == 100
    assert first.structured_content["text"] + rest.structured_content["text"] == whole
    assert first.structured_content["total_characters"] == len(whole)
    assert rest.structured_content["next_offset"] is None and "[end of document]" in text_of(rest)

    # isolation: the other tenant's document does not exist for this key, in any tool
    assert foreign.is_error and "not found" in text_of(foreign) and "lemon" not in text_of(foreign).lower()
    assert foreign_search.is_error and t["other"] in text_of(foreign_search)
    assert all(r["document_id"] != t["other"] for r in cake.structured_content["results"])
    assert "three eggs" not in text_of(cake) and len(cake.structured_content["results"]) >= 2


def test_http_other_key_sees_only_its_workspace(server, tenants):
    async def as_bakery(session: ClientSession):
        tools = {tool.name: tool for tool in (await session.list_tools()).tools}
        found = await session.call_tool("search_knowledge_base", {"query": "When is the shop closed?",
                                                                  "max_vector_distance": 2.0})
        docs = await session.call_tool("list_documents", {})
        return tools, found, docs

    tools, found, docs = over_http(server, tenants["key_b"], as_bakery, bearer=False)  # xi-api-key header
    assert "Lemon cake" in tools["search_knowledge_base"].description
    assert "Opening hours" not in tools["search_knowledge_base"].description
    assert {r["document_id"] for r in found.structured_content["results"]} <= {tenants["other"]}
    assert [d["id"] for d in docs.structured_content["documents"]] == [tenants["other"]]


def test_bad_arguments_are_tool_errors(server, tenants):
    async def calls(session: ClientSession):
        return [
            await session.call_tool("search_knowledge_base", {"query": ""}),
            await session.call_tool("search_knowledge_base", {"query": "x", "max_results": 0}),
            await session.call_tool("search_knowledge_base", {"query": "x", "mode": "fuzzy"}),
            await session.call_tool("search_knowledge_base", {"query": "x", "folder_ids": [tenants["hours"]]}),
            await session.call_tool("get_document", {"document_id": tenants["folder"]}),
            await session.call_tool("get_document", {}),
            await session.call_tool("list_documents", {"cursor": "not-a-cursor"}),
            await session.call_tool("add_text", {"text": "hello"}),  # not offered
        ]

    empty, zero, mode, not_folder, folder, missing, cursor, absent = over_http(server, tenants["key_a"], calls)
    for result in (empty, zero, mode, not_folder, folder, missing, cursor, absent):
        assert result.is_error
    assert "query" in text_of(empty)
    assert "max_results" in text_of(zero)
    assert "mode" in text_of(mode)
    assert "not a folder" in text_of(not_folder)
    assert "folder" in text_of(folder)
    assert "document_id" in text_of(missing)
    assert "cursor" in text_of(cursor)
    assert "add_text" in text_of(absent)


def test_http_authentication_and_host_guard(server, tenants):
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
    accept = {"Accept": "application/json, text/event-stream"}
    with httpx.Client(base_url=server.url, timeout=30) as http:
        missing = http.post("/mcp", json=initialize, headers=accept)
        wrong = http.post("/mcp", json=initialize, headers={**accept, "Authorization": "Bearer nope"})
        basic = http.post("/mcp", json=initialize, headers={**accept, "Authorization": f"Basic {tenants['key_a']}"})
        good = http.post("/mcp", json=initialize, headers={**accept, "xi-api-key": tenants["key_a"]})
        rebinding = http.post("/mcp", json=initialize,
                              headers={**accept, "xi-api-key": tenants["key_a"], "Host": "evil.example"})
        origin = http.post("/mcp", json=initialize,
                           headers={**accept, "xi-api-key": tenants["key_a"], "Origin": "http://evil.example"})
    for response in (missing, wrong, basic):
        assert response.status_code == 401
        assert response.json()["detail"]["status"] == "invalid_api_key"
        assert "Bearer" in response.json()["detail"]["message"]
    assert good.status_code == 200 and good.json()["result"]["serverInfo"]["name"] == "kb"
    assert rebinding.status_code == 421
    assert origin.status_code == 403


def test_write_tools_when_enabled(tmp_path):
    kb = make_kb(tmp_path / "data", mcp_write_tools=True, url_allow_hosts=("127.0.0.1",))
    server = LiveServer(kb).start()
    try:
        _, key = kb.workspaces.create("writer")

        async def write(session: ClientSession):
            tools = {tool.name for tool in (await session.list_tools()).tools}
            added = await session.call_tool("add_text", {"text": HOURS, "name": "Opening hours"})
            bad_url = await session.call_tool("add_url", {"url": "ftp://example.com/file"})
            empty = await session.call_tool("add_text", {"text": "   "})
            return tools, added, bad_url, empty

        tools, added, bad_url, empty = over_http(server, key, write)
        assert tools == READ_ONLY_TOOLS | {"add_text", "add_url"}
        assert not added.is_error and added.structured_content["name"] == "Opening hours"
        assert bad_url.is_error and "url" in text_of(bad_url).lower()
        assert empty.is_error
        with server.client(key) as client:
            from helpers import wait_indexed

            assert wait_indexed(client, added.structured_content["id"])["status"] == "succeeded"
            listed = client.get("/v1/convai/knowledge-base").json()["documents"]
        assert [d["name"] for d in listed] == ["Opening hours"]  # the failed writes stored nothing

        async def search(session: ClientSession):
            return await session.call_tool("search_knowledge_base", {"query": "Is the shop open on Sundays?"})

        assert over_http(server, key, search).structured_content["results"][0]["document_name"] == "Opening hours"
    finally:
        server.stop()
        kb.close()


def test_stdio_transport(tmp_path):
    data = tmp_path / "data"
    kb = make_kb(data)
    try:
        workspace, key = kb.workspaces.create("desk")
        other, _ = kb.workspaces.create("elsewhere")
        doc = kb.documents.add_text(workspace, RETURNS, "Returns policy")
        kb.documents.add_text(other, OTHER, "Lemon cake")
        while kb.run_queued_jobs():
            pass
    finally:
        kb.close()

    env = {**os.environ, "PYTHONPATH": str(REPO), "KB_DATA_DIR": str(data), "HF_HUB_OFFLINE": "1", **data_dir_env(data)}
    params = StdioServerParameters(command=str(KB_BIN), args=["mcp", "--workspace", "desk", "--workers", "0"],
                                   env=env, cwd=str(REPO))

    async def run():
        async with stdio_client(params) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                tools = {tool.name for tool in (await session.list_tools()).tools}
                found = await session.call_tool("search_knowledge_base", {"query": "How long do refunds take?",
                                                                          "max_vector_distance": 2.0})
                docs = await session.call_tool("list_documents", {})
                text = await session.call_tool("get_document", {"document_id": doc.id})
                bad = await session.call_tool("search_knowledge_base", {"query": "x", "max_results": 500})
                return tools, found, docs, text, bad

    tools, found, docs, text, bad = asyncio.run(asyncio.wait_for(run(), 300))
    assert tools == READ_ONLY_TOOLS
    assert {r["document_name"] for r in found.structured_content["results"]} == {"Returns policy"}
    assert "refund" in found.structured_content["results"][0]["text"].lower()
    assert [d["name"] for d in docs.structured_content["documents"]] == ["Returns policy"]
    assert text.structured_content["text"] == RETURNS.strip()
    assert bad.is_error and "max_results" in text_of(bad)
