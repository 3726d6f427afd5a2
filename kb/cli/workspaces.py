"""`kb workspace create|set|show`: workspaces (tenants), their tiers and limits."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..errors import KBError
from .common import data_dir_option, fail, open_kb, resolve_workspace


@click.group()
def workspace() -> None:
    """Create and inspect workspaces (tenants)."""


def limit_options(command):
    """--rag-max-bytes, --kb-max-bytes, --kb-max-chars, --min-rag-document-bytes."""
    for flag, text in reversed([
        ("--rag-max-bytes", "Total bytes of documents behind RAG indexes."),
        ("--kb-max-bytes", "Total bytes of documents stored."),
        ("--kb-max-chars", "Total characters of documents stored."),
        ("--min-rag-document-bytes", "Smaller documents are not RAG-indexed (document_too_small)."),
    ]):
        command = click.option(flag, type=click.IntRange(min=0), default=None, help=text)(command)
    return command


def _report(kb, workspace_id: str) -> dict:
    target = kb.workspaces.get(workspace_id)
    lim, use = kb.quotas.limits_and_usage(target.id)
    return {
        "workspace_id": target.id,
        "name": target.name,
        "tier": target.tier,
        "default_model": target.default_model,
        "limits": lim.as_dict(),
        "usage": {"documents": use.documents, "kb_bytes": use.kb_bytes, "kb_chars": use.kb_chars,
                  "agent_bytes": use.agent_bytes, "rag_bytes": use.rag_bytes,
                  "rag_bytes_by_model": use.rag_bytes_by_model},
    }


@workspace.command("create")
@data_dir_option
@click.argument("name")
@click.option("--tier", default=None, help="Plan tier (see kb/tiers.toml): free, starter, creator, pro, scale, business, enterprise. Default: KB_DEFAULT_TIER.")
@limit_options
def workspace_create(data_dir: Path, name: str, tier: str | None, **limits: int | None) -> None:
    """Create a workspace; prints {"workspace_id", "api_key"} as JSON. The key is shown only once."""
    kb = open_kb(data_dir)
    try:
        created, api_key = kb.workspaces.create(name, tier, **limits)
    except KBError as exc:
        fail(exc)
    finally:
        kb.close()
    click.echo(json.dumps({"workspace_id": created.id, "api_key": api_key}))


@workspace.command("set")
@data_dir_option
@click.argument("workspace_ref")
@click.option("--tier", default=None, help="New plan tier.")
@limit_options
def workspace_set(data_dir: Path, workspace_ref: str, tier: str | None, **limits: int | None) -> None:
    """Change a workspace's tier or override single limits; prints the result like `show`."""
    kb = open_kb(data_dir)
    try:
        target = resolve_workspace(kb, workspace_ref)
        kb.workspaces.update(target.id, tier, **limits)
        click.echo(json.dumps(_report(kb, target.id), indent=2))
    except KBError as exc:
        fail(exc)
    finally:
        kb.close()


@workspace.command("show")
@data_dir_option
@click.argument("workspace_ref")
def workspace_show(data_dir: Path, workspace_ref: str) -> None:
    """Print a workspace's tier, limits and usage as JSON."""
    kb = open_kb(data_dir)
    try:
        click.echo(json.dumps(_report(kb, resolve_workspace(kb, workspace_ref).id), indent=2))
    finally:
        kb.close()
