"""The `kb` command: serve, worker, manage workspaces, ingest, extract, query, reindex, sync, gaps, eval and mcp.

Every command takes `--data-dir` (default `$KB_DATA_DIR`, else `./data`), so the CLI and a
running server can share one store. One module per group of commands; each is added here.
"""

from .app import main
from .documents import extract, ingest
from .evaluate import evaluate_command
from .gaps import gaps
from .mcp import mcp
from .retrieval import query, reindex, show_config
from .serve import serve
from .sync import sync
from .worker import worker
from .workspaces import workspace

for _command in (serve, worker, workspace, ingest, extract, query, reindex, show_config, sync, gaps, evaluate_command, mcp):
    main.add_command(_command)

__all__ = ["main"]

if __name__ == "__main__":
    main()
