"""What every command shares: the `--data-dir` option, opening the knowledge base, finding a workspace."""

from __future__ import annotations

from pathlib import Path

import click

from ..records import Workspace

data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="KB_DATA_DIR",
    default="data",
    show_default=True,
    help="Where the database, files and indexes live (env KB_DATA_DIR).",
)


def open_kb(data_dir: Path, **overrides):
    from ..knowledge_base import KnowledgeBase
    from ..settings import load_settings

    return KnowledgeBase(load_settings(data_dir=data_dir, **overrides))


def resolve_workspace(kb, ref: str) -> Workspace:
    found = kb.workspaces.resolve(ref)
    if found is None:
        raise click.ClickException(f"no workspace with id or name {ref!r}; create one with `kb workspace create NAME`")
    return found


def fail(exc: Exception) -> None:
    raise click.ClickException(getattr(exc, "message", None) or str(exc))
