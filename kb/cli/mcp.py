"""`kb mcp`: kb's MCP server over stdio, for desktop clients that start it as a subprocess."""

from __future__ import annotations

from pathlib import Path

import click

from .common import data_dir_option, open_kb, resolve_workspace


@click.command("mcp")
@data_dir_option
@click.option("--workspace", "workspace_ref", required=True, help="Workspace id or name whose knowledge base to serve.")
@click.option("--write-tools/--no-write-tools", default=None,
              help="Offer add_text and add_url (default: KB_MCP_WRITE_TOOLS, off).")
@click.option("--workers", type=int, default=None,
              help="Background indexing threads (default KB_WORKERS); 0 leaves added documents for a server to index.")
def mcp(data_dir: Path, workspace_ref: str, write_tools: bool | None, workers: int | None) -> None:
    """Serve WORKSPACE's knowledge base to an MCP client over stdin/stdout (nothing else is printed there)."""
    from ..mcp import build_server

    kb = open_kb(data_dir, mcp_write_tools=write_tools, workers=workers)
    try:
        workspace = resolve_workspace(kb, workspace_ref)
        kb.warm_up()
        if kb.settings.jobs.workers:
            kb.start_workers()  # documents added by the write tools get indexed here
        server = build_server(kb, lambda _ctx: workspace, kb.settings.runtimes)
        server.run("stdio")
    finally:
        kb.close()
