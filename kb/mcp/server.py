"""kb's MCP server (official `mcp` SDK, `MCPServer`): a workspace's knowledge base as tools.

The same server object serves every transport; `workspace_of` tells each request's workspace (over
HTTP the one of the caller's API key, over stdio the one named on the command line). The search
tool's description lists the workspace's documents when there are few (`mcp_document_list_max`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

import anyio.to_thread
from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field

from ..errors import KBError
from ..knowledge_base import KnowledgeBase
from ..records import Workspace
from ..services.retrieval import MAX_QUERY_CHARS
from ..settings import RuntimeSettings
from . import tools
from .formatting import render_document, render_document_list, render_entry, render_search

WorkspaceOf = Callable[[ServerRequestContext], Workspace]

INSTRUCTIONS = (
    "kb is this user's knowledge base. Call search_knowledge_base with a self-contained question to find "
    "passages; cite them by document name (and page or section) as given in each result. list_documents "
    "shows what is there; get_document reads a document's text page by page."
)
SEARCH_DESCRIPTION = (
    "Search the knowledge base for passages that answer a question (semantic and keyword search). "
    "Returns the best passages, each with its document name and id, page, section headings, URL, "
    "cosine distance (lower is closer) and a citation to quote. Ask a complete question, not keywords "
    "alone; restrict to document_ids or folder_ids when the user names a source."
)
WRITE_TOOLS = ("add_text", "add_url")


def _result(model: BaseModel, text: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=model.model_dump(mode="json"))


def _run(call: Callable[[], Any]) -> Any:
    """Run a tool's work; kb's errors become tool errors the model reads (isError), with kb's message."""
    try:
        return call()
    except KBError as exc:
        raise ToolError(f"{exc.code}: {exc.message}") from exc


def build_server(kb: KnowledgeBase, workspace_of: WorkspaceOf, settings: RuntimeSettings) -> MCPServer:
    server = MCPServer("kb", instructions=INSTRUCTIONS, version="0.1.0", log_level="WARNING")
    read_only = ToolAnnotations(read_only_hint=True, open_world_hint=False)

    @server.tool(name="search_knowledge_base", description=SEARCH_DESCRIPTION, annotations=read_only)
    def search_knowledge_base(
        query: Annotated[str, Field(min_length=1, max_length=MAX_QUERY_CHARS, description="The question to answer.")],
        ctx: Context,
        document_ids: Annotated[list[str] | None, Field(description="Search only these documents.")] = None,
        folder_ids: Annotated[list[str] | None, Field(description="Search only the documents below these folders.")] = None,
        mode: Annotated[Literal["hybrid", "dense", "lexical"],
                        Field(description="hybrid (default): meaning and keywords; dense: meaning; lexical: keywords.")] = "hybrid",
        max_results: Annotated[int, Field(ge=1, le=tools.MAX_RESULTS, description="Most passages returned.")] = 5,
        max_vector_distance: Annotated[float, Field(ge=0.0, le=2.0, description="Drop passages farther than this.")] = 0.6,
        max_characters: Annotated[int, Field(ge=100, le=200_000, description="Most characters of text in all.")] = 20_000,
    ) -> Annotated[CallToolResult, tools.SearchResults]:
        workspace = workspace_of(ctx.request_context)
        found = _run(lambda: tools.search(kb, workspace, query, document_ids=document_ids, folder_ids=folder_ids,
                                          mode=mode, max_results=max_results, max_vector_distance=max_vector_distance,
                                          max_characters=max_characters))
        return _result(found, render_search(found))

    @server.tool(name="list_documents", description="List the knowledge base's documents (name, id, type, URL), "
                 "by name, a page at a time.", annotations=read_only)
    def list_documents(
        ctx: Context,
        search: Annotated[str | None, Field(max_length=200, description="Only names starting with this (any case).")] = None,
        folder_id: Annotated[str | None, Field(description="Only documents below this folder.")] = None,
        page_size: Annotated[int, Field(ge=1, le=100)] = 30,
        cursor: Annotated[str | None, Field(description="next_cursor of the previous page.")] = None,
    ) -> Annotated[CallToolResult, tools.DocumentList]:
        workspace = workspace_of(ctx.request_context)
        page = _run(lambda: tools.list_documents(kb, workspace, search=search, folder_id=folder_id,
                                                 page_size=page_size, cursor=cursor))
        return _result(page, render_document_list(page))

    @server.tool(name="get_document", description="Read a document's extracted text, max_characters at a time "
                 "from offset (next_offset continues).", annotations=read_only)
    def get_document(
        document_id: Annotated[str, Field(min_length=1, description="The document's id (from search or list).")],
        ctx: Context,
        offset: Annotated[int, Field(ge=0, description="Character to start at.")] = 0,
        max_characters: Annotated[int, Field(ge=1, le=tools.MAX_READ_CHARS)] = tools.DEFAULT_READ_CHARS,
    ) -> Annotated[CallToolResult, tools.DocumentText]:
        workspace = workspace_of(ctx.request_context)
        piece = _run(lambda: tools.get_document(kb, workspace, document_id, offset=offset, max_characters=max_characters))
        return _result(piece, render_document(piece))

    if settings.mcp_write_tools:
        writes = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False)

        @server.tool(name="add_text", description="Add a text document to the knowledge base (indexed in the "
                     "background; searchable within seconds).", annotations=writes)
        def add_text(
            text: Annotated[str, Field(min_length=1, description="The document's text.")],
            ctx: Context,
            name: Annotated[str | None, Field(max_length=255, description="Its name.")] = None,
            folder_id: Annotated[str | None, Field(description="The folder to put it in.")] = None,
        ) -> Annotated[CallToolResult, tools.DocumentEntry]:
            workspace = workspace_of(ctx.request_context)
            entry = _run(lambda: tools.add_text(kb, workspace, text, name, folder_id))
            return _result(entry, "Added " + render_entry(entry))

        @server.tool(name="add_url", description="Fetch a web page and add it to the knowledge base.",
                     annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=True))
        def add_url(
            url: Annotated[str, Field(min_length=1, max_length=2048, description="http(s) address of the page.")],
            ctx: Context,
            name: Annotated[str | None, Field(max_length=255, description="Its name (default: the page's).")] = None,
            folder_id: Annotated[str | None, Field(description="The folder to put it in.")] = None,
        ) -> Annotated[CallToolResult, tools.DocumentEntry]:
            workspace = workspace_of(ctx.request_context)
            entry = _run(lambda: tools.add_url(kb, workspace, url, name, folder_id))
            return _result(entry, "Added " + render_entry(entry))

    async def describe_documents(ctx: ServerRequestContext, call_next):
        """tools/list: the search tool's description names the caller's documents when there are few.
        (Middleware sees the result as the wire dict.)"""
        result = await call_next(ctx)
        if ctx.method != "tools/list" or not isinstance(result, dict):
            return result
        workspace = workspace_of(ctx)
        listed = await anyio.to_thread.run_sync(
            lambda: tools.document_overview(kb, workspace, settings.mcp_document_list_max))
        if not listed:
            return result
        names = "\n".join(f"- {d.name} (id {d.id})" for d in listed)
        for tool in result.get("tools", []):
            if tool.get("name") == "search_knowledge_base":
                tool["description"] = f"{SEARCH_DESCRIPTION}\n\nThe knowledge base holds these documents:\n{names}"
        return result

    server.middleware.append(describe_documents)
    return server
