"""`kb serve`: the HTTP API in this process.

The one place kb reaches up to `api`: the process entry point builds the settings, the knowledge
base and then the app, and hands the app object to uvicorn.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .common import data_dir_option, open_kb


@click.command()
@data_dir_option
@click.option("--host", default=None, help="Address to listen on (env KB_HOST, default 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Port (env KB_PORT, default 8000).")
@click.option("--default-model", default=None, help="Embedding model for new workspaces (env KB_DEFAULT_MODEL).")
@click.option("--chunk-tokens", default=None, type=int, help="Chunk size in model tokens (env KB_CHUNK_TOKENS).")
@click.option("--workers", default=None, type=int,
              help="Background job threads (env KB_WORKERS; 0: API only, documents are stored and their jobs queued for `kb worker` processes).")
def serve(data_dir: Path, host: str | None, port: int | None, default_model: str | None, chunk_tokens: int | None,
          workers: int | None) -> None:
    """Start the HTTP API. Creates the `default` workspace on first start and prints its API key."""
    import uvicorn

    from api.app import create_app

    kb = open_kb(data_dir, host=host, port=port, default_model=default_model, chunk_tokens=chunk_tokens, workers=workers)
    try:
        workspace, api_key = kb.workspaces.ensure_default()
        app = create_app(kb)
    except BaseException:
        kb.close()
        raise
    server = kb.settings.server
    click.echo(f"kb: data in {data_dir.resolve()}")
    click.echo(f"kb: workspace {workspace.name!r} ({workspace.id}) API key: {api_key}")
    click.echo(f"kb: API on http://{server.host}:{server.port}  (docs at http://{server.host}:{server.port}/docs)")
    sys.stdout.flush()
    uvicorn.run(app, host=server.host, port=server.port, log_level="info")  # the app's lifespan closes kb
