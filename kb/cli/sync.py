"""`kb sync`: run an auto-sync pass now, here, and index what changed."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .common import data_dir_option, open_kb, resolve_workspace
from .documents import _index_added


@click.command()
@data_dir_option
@click.option("--now", "every", is_flag=True, help="Sync every auto-synced page, not only those that are due.")
@click.option("--workspace", "workspace_ref", default=None, help="Only this workspace (id or name).")
def sync(data_dir: Path, every: bool, workspace_ref: str | None) -> None:
    """Fetch auto-synced URL documents again (those due, or all with --now) and re-index what changed.

    A running server does the same by itself every KB_SYNC_CHECK_SECS; this is for cron jobs,
    servers run with KB_WORKERS=0, and trying auto-sync out.
    """
    kb = open_kb(data_dir)
    try:
        target = resolve_workspace(kb, workspace_ref) if workspace_ref else None
        report = kb.auto_sync.run_pass(force=every, workspace_id=target.id if target else None)
        touched = report.changed + report.discovered
        if touched:
            by_workspace: dict[str, list[str]] = {}
            for document_id in touched:
                by_workspace.setdefault(report.workspace_of[document_id], []).append(document_id)
            for workspace_id, ids in by_workspace.items():
                workspace = kb.workspaces.get(workspace_id)
                _index_added(kb, workspace, list(kb.documents.get_many(workspace, ids).values()))
        click.echo(json.dumps({"unchanged": len(report.unchanged), "changed": len(report.changed),
                               "removed": len(report.removed), "discovered": len(report.discovered),
                               "failed": len(report.failed)}))
    finally:
        kb.close()
