"""`kb query` and `kb reindex`: asking a workspace, and rebuilding its search indexes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import click
from tqdm import tqdm

from ..errors import KBError
from .common import data_dir_option, fail, open_kb, resolve_workspace


@click.command()
@data_dir_option
@click.option("--workspace", "workspace_ref", required=True, help="Workspace id or name.")
@click.option("--model", default=None, help="Embedding model (default: the workspace's).")
@click.option("--top", default=5, show_default=True, help="Maximum chunks (max_retrieved_rag_chunks_count).")
@click.option("--max-distance", default=None, type=float,
              help="Maximum vector distance (default: the model's calibrated default, 0.6 for all-MiniLM-L6-v2).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.argument("question")
def query(data_dir: Path, workspace_ref: str, model: str | None, top: int, max_distance: float | None, as_json: bool,
          question: str) -> None:
    """Retrieve the chunks that answer QUESTION, nearest first, with their distances."""
    from index.retrieval import RetrievalLimits

    kb = open_kb(data_dir)
    try:
        target = resolve_workspace(kb, workspace_ref)
        limits = RetrievalLimits(max_vector_distance=max_distance, max_retrieved_rag_chunks_count=top)
        try:
            result = kb.retrieval.retrieve(target, question, embedding_model=model, limits=limits)
        except KBError as exc:
            fail(exc)
    finally:
        kb.close()
    cut = result.distance_cut
    if not result.chunks:  # on stderr with --json, whose stdout stays the list of chunks
        click.echo(empty_answer(cut), err=as_json)
    if as_json:
        click.echo(json.dumps([c.__dict__ for c in result.chunks], ensure_ascii=False, indent=2))
        return
    for rank, hit in enumerate(result.chunks, 1):
        where = " > ".join(hit.heading_path)
        pages = f" p.{hit.page_start}" + (f"-{hit.page_end}" if hit.page_end != hit.page_start else "") if hit.page_start else ""
        click.echo(click.style(f"{rank}. {hit.vector_distance:.3f}  {hit.document_name}{pages}  {where}", bold=True))
        click.echo("   " + " ".join(hit.text.split())[:400])


def empty_answer(cut) -> str:
    """Why a query found nothing: the distance cut (with the value that would keep the nearest chunk), or no match."""
    if cut is None:
        return "nothing found: no chunk of this workspace matches the question (is anything indexed?)"
    return (f"no chunk within max_vector_distance {cut.max_vector_distance:g}: the distance cut removed {cut.removed}, "
            f"the nearest at {cut.nearest_removed_distance:.3f} (to see it: --max-distance "
            f"{math.ceil(cut.nearest_removed_distance * 100) / 100:.2f})")


@click.command()
@data_dir_option
@click.option("--workspace", "workspace_ref", required=True, help="Workspace id or name.")
@click.option("--model", default=None, help="Only this model's index (default: every model in use).")
@click.option("--document", "document_ids", multiple=True, help="With --re-embed: only these documents (repeatable).")
@click.option("--re-embed", is_flag=True, help="Re-chunk and re-embed documents instead of reusing stored embeddings.")
def reindex(data_dir: Path, workspace_ref: str, model: str | None, document_ids: tuple[str, ...], re_embed: bool) -> None:
    """Rebuild a workspace's FAISS index from stored embeddings (or re-embed). A running server picks it up."""
    kb = open_kb(data_dir)
    try:
        target = resolve_workspace(kb, workspace_ref)
        ops = kb.reindex
        models = [kb.models.resolve(model).served] if model else ops.models_in_use(target.id)
        report = {}
        for name in models:
            if re_embed:
                for rag_index_id in tqdm(ops.indexes_to_re_embed(target.id, name, list(document_ids) or None),
                                         desc=f"re-embedding ({name})", unit="doc"):
                    ops.re_embed(rag_index_id)
            total = ops.stored_vector_count(target.id, name)
            with tqdm(total=total, desc=f"rebuilding ({name})", unit="vec") as bar:
                count = ops.rebuild_index(target.id, name, on_progress=bar.update)
            report[name] = count
        click.echo(json.dumps({"workspace_id": target.id, "vectors": report}))
    except KBError as exc:
        fail(exc)
    finally:
        kb.close()


@click.command("config")
def show_config() -> None:
    """Print the effective settings and the environment variable behind each."""
    from ..settings import load_settings

    for var, value in load_settings().items():
        click.echo(f"{var:26} {value!r}")
