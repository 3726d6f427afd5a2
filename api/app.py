"""The FastAPI application: routes, error handlers, and the knowledge base's lifecycle."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI

from kb.knowledge_base import KnowledgeBase

from .dashboard import install as install_dashboard
from .errors import install_error_handlers
from .mcp import McpEndpoint
from .offload import open_ingest_pool
from .request_guard import BodyLimits, RequestGuard
from .routes import agents, collection, crawls, dify, documents, gaps, rag


def create_app(kb: KnowledgeBase, *, start_workers: bool = True) -> FastAPI:
    mcp = McpEndpoint(kb)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        open_ingest_pool(app, kb.settings.server.ingest_threads)
        kb.warm_up()  # load the default model now, not on the first request
        if start_workers:
            kb.start_workers()
        try:
            async with mcp.session_manager.run():  # the MCP endpoint's task group
                yield
        finally:
            kb.close()

    app = FastAPI(
        title="kb",
        summary="Self-hosted knowledge base and RAG retrieval, compatible with the ElevenLabs knowledge-base API",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.kb = kb
    install_error_handlers(app)
    requests = kb.settings.requests
    app.add_middleware(RequestGuard, limits=BodyLimits(
        requests.max_request_bytes, requests.max_agent_bytes, kb.settings.ingest.max_upload_bytes, requests.max_json_depth,
    ))
    # Fixed paths (/search, /rag-index, /folder...) first: they must win over /{documentation_id}.
    app.include_router(rag.router)
    app.include_router(collection.router)
    app.include_router(crawls.router)
    app.include_router(documents.router)
    app.include_router(agents.router)
    app.include_router(gaps.router)
    app.include_router(dify.router)
    app.add_route("/mcp", mcp, methods=["GET", "POST", "DELETE"], include_in_schema=False)
    install_dashboard(app)  # the web dashboard at /dashboard (api/dashboard), and / leading to it

    @app.get("/health", tags=["service"], summary="Liveness check")
    def health() -> dict:
        return {"status": "ok"}

    return app


def app_from_environment() -> FastAPI:
    """An app with settings from the `KB_*` environment (`uvicorn --factory api.app:app_from_environment`)."""
    from kb.settings import load_settings

    return create_app(KnowledgeBase(load_settings()))
