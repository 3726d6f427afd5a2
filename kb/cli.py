"""The `kb` command: serve, manage workspaces, ingest, extract, query and reindex.

Every command takes `--data-dir` (default `$KB_DATA_DIR`, else `./data`), so the CLI and a
running server can share one store.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path

import click
from tqdm import tqdm

from .config import ENV_VARS, load_settings
from .errors import KBError
from .rag_indexes import TERMINAL_STATUSES

log = logging.getLogger("kb")

data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="KB_DATA_DIR",
    default="data",
    show_default=True,
    help="Where the database, files and indexes live (env KB_DATA_DIR).",
)


def _open(data_dir: Path, **overrides):
    from .service import KnowledgeBase

    return KnowledgeBase(load_settings(data_dir=data_dir, **overrides))


def _resolve_workspace(kb, ref: str):
    from .workspaces import find_workspace_by_name

    try:
        return kb.workspace(ref)
    except KBError:
        found = find_workspace_by_name(kb.db, ref)
        if found is None:
            raise click.ClickException(f"no workspace with id or name {ref!r}; create one with `kb workspace create NAME`")
        return found


def _fail(exc: Exception) -> None:
    raise click.ClickException(getattr(exc, "message", None) or str(exc))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log more.")
def main(verbose: bool) -> None:
    """kb: a self-hosted knowledge base with RAG retrieval for voice and chat agents."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@main.command()
@data_dir_option
@click.option("--host", envvar="KB_HOST", default="127.0.0.1", show_default=True, help="Address to listen on (env KB_HOST).")
@click.option("--port", envvar="KB_PORT", default=8000, show_default=True, type=int, help="Port (env KB_PORT).")
@click.option("--default-model", envvar="KB_DEFAULT_MODEL", default=None, help="Embedding model for new workspaces.")
@click.option("--chunk-tokens", envvar="KB_CHUNK_TOKENS", default=None, type=int, help="Chunk size in model tokens.")
@click.option("--workers", envvar="KB_WORKERS", default=None, type=int, help="Background indexing threads (0: store documents and queue their indexing only).")
def serve(data_dir: Path, host: str, port: int, default_model: str | None, chunk_tokens: int | None, workers: int | None) -> None:
    """Start the HTTP API. Creates the `default` workspace on first start and prints its API key."""
    import uvicorn

    overrides = {"KB_DATA_DIR": str(data_dir), "KB_DEFAULT_MODEL": default_model, "KB_CHUNK_TOKENS": chunk_tokens, "KB_WORKERS": workers}
    for var, value in overrides.items():
        if value is not None:
            os.environ[var] = str(value)
    kb = _open(data_dir)
    try:
        workspace, api_key = kb.ensure_default_workspace()
    finally:
        kb.close()
    click.echo(f"kb: data in {data_dir.resolve()}")
    click.echo(f"kb: workspace {workspace.name!r} ({workspace.id}) API key: {api_key}")
    click.echo(f"kb: API on http://{host}:{port}  (docs at http://{host}:{port}/docs)")
    sys.stdout.flush()
    uvicorn.run("api.app:app_from_environment", factory=True, host=host, port=port, log_level="info")


@main.group()
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


def _workspace_report(kb, workspace_id: str) -> dict:
    target = kb.workspace(workspace_id)
    lim, use = kb.limits_and_usage(target.id)
    return {
        "workspace_id": target.id,
        "name": target.name,
        "tier": target.tier,
        "default_model": target.default_model,
        "limits": lim.as_dict(),
        "usage": {"documents": use.documents, "kb_bytes": use.kb_bytes, "kb_chars": use.kb_chars,
                  "rag_bytes": use.rag_bytes, "rag_bytes_by_model": use.rag_bytes_by_model},
    }


@workspace.command("create")
@data_dir_option
@click.argument("name")
@click.option("--tier", default=None, help="Plan tier (see kb/tiers.toml): free, starter, creator, pro, scale, business, enterprise. Default: KB_DEFAULT_TIER.")
@limit_options
def workspace_create(data_dir: Path, name: str, tier: str | None, **limits: int | None) -> None:
    """Create a workspace; prints {"workspace_id", "api_key"} as JSON. The key is shown only once."""
    kb = _open(data_dir)
    try:
        created, api_key = kb.create_workspace(name, tier, **limits)
    except KBError as exc:
        _fail(exc)
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
    kb = _open(data_dir)
    try:
        target = _resolve_workspace(kb, workspace_ref)
        kb.update_workspace(target.id, tier, **limits)
        click.echo(json.dumps(_workspace_report(kb, target.id), indent=2))
    except KBError as exc:
        _fail(exc)
    finally:
        kb.close()


@workspace.command("show")
@data_dir_option
@click.argument("workspace_ref")
def workspace_show(data_dir: Path, workspace_ref: str) -> None:
    """Print a workspace's tier, limits and usage as JSON."""
    kb = _open(data_dir)
    try:
        click.echo(json.dumps(_workspace_report(kb, _resolve_workspace(kb, workspace_ref).id), indent=2))
    finally:
        kb.close()


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


@main.command()
@data_dir_option
@click.option("--workspace", "workspace_ref", required=True, help="Workspace id or name.")
@click.argument("inputs", nargs=-1, required=True)
def ingest(data_dir: Path, workspace_ref: str, inputs: tuple[str, ...]) -> None:
    """Add files, directories (recursively) and URLs to a workspace, and index them.

    Files that cannot be parsed are reported and skipped; the rest are added.
    """
    from ingest.errors import IngestError

    kb = _open(data_dir)
    try:
        target = _resolve_workspace(kb, workspace_ref)
        sources = list(_iter_inputs(inputs))
        added, failed = [], []
        for source in tqdm(sources, desc="parsing", unit="doc", disable=len(sources) < 2):
            try:
                if isinstance(source, str):
                    doc = kb.add_url(target, source)
                else:
                    doc = kb.add_file(target, source.read_bytes(), source.name, None)
                added.append(doc)
            except (IngestError, KBError) as exc:
                failed.append((str(source), exc.message))
        _index_added(kb, target, added)
        for source, message in failed:
            click.echo(f"skipped {source}: {message}", err=True)
        statuses = [kb.list_rag_indexes(target, d.id) for d in added]
        indexed = sum(1 for s in statuses if s and s[0].status == "succeeded")
        click.echo(json.dumps({"added": len(added), "indexed": indexed, "skipped": len(failed),
                               "documents": [{"id": d.id, "name": d.name} for d in added]}))
    finally:
        kb.close()
    if failed:
        sys.exit(1)


def _index_added(kb, target, added) -> None:
    """Run queued indexing jobs here until every added document's index is done."""
    pending = {d.id for d in added}
    last_reap = time.monotonic()
    with tqdm(total=len(pending), desc="indexing", unit="doc", disable=not pending) as bar:
        while pending:
            if not kb.run_queued_jobs():
                time.sleep(0.2)  # a running server may have taken it: wait for it to finish
                if time.monotonic() - last_reap > 5:  # ...unless that server died: take its jobs back
                    kb.queue.requeue_interrupted()
                    last_reap = time.monotonic()
            statuses = kb.first_index_statuses(target, list(pending))  # one query per 500, not one per document
            done = {d for d in pending if statuses.get(d) in TERMINAL_STATUSES}
            bar.update(len(done))
            pending -= done


@main.command()
@click.argument("source")
@click.option("--json", "as_json", is_flag=True, help="Print format, metadata and blocks as JSON.")
def extract(source: str, as_json: bool) -> None:
    """Print the text kb would index for a file or URL (nothing is stored)."""
    import ingest as ingest_lib
    from ingest.errors import IngestError

    from .sandbox import parse_isolated

    settings = load_settings()
    try:
        if source.startswith(("http://", "https://")):
            fetched = ingest_lib.fetch_url(source, timeout=settings.url_timeout_secs, max_bytes=settings.max_upload_bytes,
                                           max_redirects=settings.url_max_redirects, allow_hosts=settings.url_allow_hosts)
            data, filename, content_type = fetched.data, fetched.final_url.rsplit("/", 1)[-1], fetched.content_type
        else:
            path = Path(source)
            if not path.is_file():
                raise click.ClickException(f"{source}: no such file")
            data, filename, content_type = path.read_bytes(), path.name, None
        parsed = parse_isolated(data, filename, content_type, limits=settings.parse_limits,
                                timeout_secs=settings.parse_timeout_secs, memory_bytes=settings.parse_memory_mb << 20)
    except IngestError as exc:
        _fail(exc)
    if as_json:
        blocks = [
            {"start": b.start, "end": b.end, "kind": b.kind, "heading_path": list(b.heading_path), "page": b.page}
            for b in parsed.blocks
        ]
        click.echo(json.dumps({"format": parsed.format, "metadata": parsed.metadata, "pages": parsed.pages,
                               "text": parsed.text, "blocks": blocks}, ensure_ascii=False, indent=2))
    else:
        click.echo(parsed.text)


@main.command()
@data_dir_option
@click.option("--workspace", "workspace_ref", required=True, help="Workspace id or name.")
@click.option("--model", default=None, help="Embedding model (default: the workspace's).")
@click.option("--top", default=5, show_default=True, help="Maximum chunks (max_retrieved_rag_chunks_count).")
@click.option("--max-distance", default=None, type=float, help="Maximum vector distance.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.argument("question")
def query(data_dir: Path, workspace_ref: str, model: str | None, top: int, max_distance: float | None, as_json: bool, question: str) -> None:
    """Retrieve the chunks that answer QUESTION, nearest first, with their distances."""
    from index.retrieval import RetrievalLimits

    kb = _open(data_dir)
    try:
        target = _resolve_workspace(kb, workspace_ref)
        limits = RetrievalLimits(max_retrieved_rag_chunks_count=top)
        if max_distance is not None:
            limits = RetrievalLimits(max_vector_distance=max_distance, max_retrieved_rag_chunks_count=top)
        try:
            result = kb.retrieve(target, question, embedding_model=model, limits=limits)
        except KBError as exc:
            _fail(exc)
    finally:
        kb.close()
    if as_json:
        click.echo(json.dumps([c.__dict__ for c in result.chunks], ensure_ascii=False, indent=2))
        return
    if not result.chunks:
        click.echo("no chunk within the distance limit (try --max-distance 1.0)")
    for rank, hit in enumerate(result.chunks, 1):
        where = " > ".join(hit.heading_path)
        pages = f" p.{hit.page_start}" + (f"-{hit.page_end}" if hit.page_end != hit.page_start else "") if hit.page_start else ""
        click.echo(click.style(f"{rank}. {hit.vector_distance:.3f}  {hit.document_name}{pages}  {where}", bold=True))
        click.echo("   " + " ".join(hit.text.split())[:400])


@main.command()
@data_dir_option
@click.option("--workspace", "workspace_ref", required=True, help="Workspace id or name.")
@click.option("--model", default=None, help="Only this model's index (default: every model in use).")
@click.option("--document", "document_ids", multiple=True, help="With --re-embed: only these documents (repeatable).")
@click.option("--re-embed", is_flag=True, help="Re-chunk and re-embed documents instead of reusing stored embeddings.")
def reindex(data_dir: Path, workspace_ref: str, model: str | None, document_ids: tuple[str, ...], re_embed: bool) -> None:
    """Rebuild a workspace's FAISS index from stored embeddings (or re-embed). A running server picks it up."""
    from . import reindex as ops

    kb = _open(data_dir)
    try:
        target = _resolve_workspace(kb, workspace_ref)
        models = [kb.models.require_known(model)] if model else ops.models_in_use(kb, target.id)
        report = {}
        for name in models:
            if re_embed:
                for rag_index_id in tqdm(ops.indexes_to_re_embed(kb, target.id, name, list(document_ids) or None),
                                         desc=f"re-embedding ({name})", unit="doc"):
                    ops.re_embed(kb, rag_index_id)
            total = ops.stored_vector_count(kb, target.id, name)
            with tqdm(total=total, desc=f"rebuilding ({name})", unit="vec") as bar:
                count = ops.rebuild_index(kb, target.id, name, on_progress=bar.update)
            report[name] = count
        click.echo(json.dumps({"workspace_id": target.id, "vectors": report}))
    except KBError as exc:
        _fail(exc)
    finally:
        kb.close()


@main.command("config")
def show_config() -> None:
    """Print the effective settings and the environment variable behind each."""
    settings = load_settings()
    for name, var in ENV_VARS.items():
        click.echo(f"{var:26} {getattr(settings, name)!r}")


if __name__ == "__main__":
    main()
