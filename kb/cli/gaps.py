"""`kb gaps`: the questions a workspace's knowledge base could not answer, as a table."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from ..errors import KBError
from .common import data_dir_option, fail, open_kb, resolve_workspace


def _when(unix_secs: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(unix_secs))


def _table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [max(len(headers[i]), *(len(r[i]) for r in rows)) if rows else len(headers[i]) for i in range(len(headers))]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])


@click.command()
@data_dir_option
@click.option("--workspace", "workspace_ref", required=True, help="Workspace id or name.")
@click.option("--top", default=30, show_default=True, type=click.IntRange(1, 100), help="Most gaps shown.")
@click.option("--agent", "agent_id", default=None, help="Only this agent's retrievals.")
@click.option("--days", default=None, type=click.FloatRange(min=0, min_open=True), help="Only the last DAYS days.")
@click.option("--json", "as_json", is_flag=True, help="Print the gaps as JSON.")
@click.option("--enable/--disable", "switch", default=None, help="Turn the workspace's gap log on or off first.")
@click.option("--clear", is_flag=True, help="Delete the workspace's recorded gaps first.")
def gaps(data_dir: Path, workspace_ref: str, top: int, agent_id: str | None, days: float | None, as_json: bool,
         switch: bool | None, clear: bool) -> None:
    """List the retrievals that returned nothing or only weak matches, grouped by similar query, the most
    frequent first (UTC times): what the knowledge base is missing."""
    kb = open_kb(data_dir)
    try:
        target = resolve_workspace(kb, workspace_ref)
        if clear:
            click.echo(f"cleared {kb.gaps.clear(target)} gap(s)", err=True)
        if switch is not None:
            on = kb.gaps.set_enabled(target, switch)
            click.echo(f"gap log {'on' if on else 'off'} for workspace {target.name!r}", err=True)
        since = time.time() - days * 86400 if days else None
        served = kb.models.resolve(target.default_model).served
        page = kb.gaps.page(target, served, page_size=top, agent_id=agent_id, since=since)
    except KBError as exc:
        fail(exc)
    finally:
        kb.close()
    if as_json:
        click.echo(json.dumps([g.__dict__ for g in page.gaps], ensure_ascii=False, indent=2))
        return
    if not page.gaps:
        state = "" if page.enabled else " (the gap log is off for this workspace)"
        click.echo(f"no knowledge gaps recorded{state}")
        return
    rows = [
        [str(g.count), str(g.empty_count), "-" if g.best_distance is None else f"{max(0.0, g.best_distance):.3f}",
         _when(g.last_seen), _when(g.first_seen), " | ".join(g.examples)[:80]]
        for g in page.gaps
    ]
    click.echo(_table(rows, ["COUNT", "EMPTY", "NEAREST", "LAST SEEN", "FIRST SEEN", "QUERIES"]))
    if page.has_more:
        click.echo(f"(more: --top {min(100, top * 2)})")
    if not page.enabled:
        click.echo("(the gap log is off for this workspace: kb gaps --workspace ... --enable)")
