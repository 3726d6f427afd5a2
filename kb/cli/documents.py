"""`kb ingest` and `kb extract`: adding files, directories and URLs in bulk; showing what would be indexed."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click
from tqdm import tqdm

from ..errors import KBError
from ..services.rag_indexes import TERMINAL_STATUSES
from .common import data_dir_option, fail, open_kb, resolve_workspace


def _iter_inputs(items: tuple[str, ...]):
    for item in items:
        if item.startswith(("http://", "https://")):
            yield item
            continue
        path = Path(item)
        if not path.exists():
            raise click.ClickException(f"{item}: no such file or directory")
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        else:
            yield path


@click.command()
@data_dir_option
@click.option("--workspace", "workspace_ref", required=True, help="Workspace id or name.")
@click.argument("inputs", nargs=-1, required=True)
def ingest(data_dir: Path, workspace_ref: str, inputs: tuple[str, ...]) -> None:
    """Add files, directories (recursively) and URLs to a workspace, and index them.

    Files that cannot be parsed are reported and skipped; the rest are added.
    """
    kb = open_kb(data_dir)
    try:
        target = resolve_workspace(kb, workspace_ref)
        sources = list(_iter_inputs(inputs))
        added, failed = [], []
        for source in tqdm(sources, desc="parsing", unit="doc", disable=len(sources) < 2):
            try:
                if isinstance(source, str):
                    doc = kb.documents.add_url(target, source)
                else:
                    doc = kb.documents.add_file(target, source.read_bytes(), source.name, None)
                added.append(doc)
            except KBError as exc:
                failed.append((str(source), exc.message))
        _index_added(kb, target, added)
        for source, message in failed:
            click.echo(f"skipped {source}: {message}", err=True)
        statuses = kb.rag_indexes.first_statuses(target, [d.id for d in added])
        indexed = sum(1 for d in added if statuses.get(d.id) == "succeeded")
        click.echo(json.dumps({"added": len(added), "indexed": indexed, "skipped": len(failed),
                               "documents": [{"id": d.id, "name": d.name} for d in added]}))
    finally:
        kb.close()
    if failed:
        sys.exit(1)


def _index_added(kb, target, added) -> None:
    """Run queued jobs here until every added document's index is done."""
    pending = {d.id for d in added}
    last_reap = time.monotonic()
    with tqdm(total=len(pending), desc="indexing", unit="doc", disable=not pending) as bar:
        while pending:
            if not kb.run_queued_jobs():
                time.sleep(0.2)  # a running server may have taken it: wait for it to finish
                if time.monotonic() - last_reap > 5:  # ...unless that server died: take its jobs back
                    kb.queue.requeue_interrupted()
                    last_reap = time.monotonic()
            statuses = kb.rag_indexes.first_statuses(target, list(pending))  # one query per 500 documents
            done = {d for d in pending if statuses.get(d) in TERMINAL_STATUSES}
            bar.update(len(done))
            pending -= done


@click.command()
@click.argument("source")
@click.option("--json", "as_json", is_flag=True, help="Print format, metadata and blocks as JSON.")
def extract(source: str, as_json: bool) -> None:
    """Print the text kb would index for a file or URL (nothing is stored)."""
    from ..services.ingestion import Ingestion
    from ..settings import load_settings

    ingestion = Ingestion(load_settings().ingest)
    try:
        if source.startswith(("http://", "https://")):
            fetched = ingestion.fetch(source)
            data, filename, content_type = fetched.data, fetched.final_url.rsplit("/", 1)[-1], fetched.content_type
        else:
            path = Path(source)
            if not path.is_file():
                raise click.ClickException(f"{source}: no such file")
            data, filename, content_type = path.read_bytes(), path.name, None
        parsed = ingestion.parse(data, filename, content_type)
    except KBError as exc:
        fail(exc)
    if as_json:
        blocks = [
            {"start": b.start, "end": b.end, "kind": b.kind, "heading_path": list(b.heading_path), "page": b.page}
            for b in parsed.blocks
        ]
        click.echo(json.dumps({"format": parsed.format, "metadata": parsed.metadata, "pages": parsed.pages,
                               "text": parsed.text, "blocks": blocks}, ensure_ascii=False, indent=2))
    else:
        click.echo(parsed.text)
