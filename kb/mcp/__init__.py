"""kb's MCP server: a workspace's knowledge base as tools for MCP clients (see `server.build_server`)."""

from .server import build_server

__all__ = ["build_server"]
