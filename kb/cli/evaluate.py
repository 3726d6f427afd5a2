"""`kb eval`: a file of questions with their expected documents or passages, scored against a workspace."""

from __future__ import annotations

import json
import math
from pathlib import Path

import click
from tqdm import tqdm

from ..errors import KBError
from ..evaluation import Asked, EvalReport, Hit, evaluate, load_questions
from .common import data_dir_option, open_kb
from .gaps import _table

MODES = ("hybrid", "dense", "lexical")
METRICS = {"ndcg": "nDCG@10", "recall": "recall@k", "mrr": "MRR@10", "answered": "answered", "delivered": "delivered"}
UNCUT = 2.0  # cosine distances lie in [0, 2]


class InputError(click.ClickException):
    """A bad questions file, an unknown workspace, nothing to search: exit code 2, as click's usage errors."""

    exit_code = 2


def floor_option(metric: str, text: str):
    return click.option(f"--min-{metric}", f"min_{metric}", type=click.FloatRange(0, 1), default=None,
                        help=f"Exit 1 when {text} of the --mode is below this.")


@click.command("eval")
@data_dir_option
@click.option("--workspace", "workspace_ref", required=True, help="Workspace id or name.")
@click.option("--model", default=None, help="Embedding model (default: the workspace's).")
@click.option("-k", "--k", "k", default=10, show_default=True, type=click.IntRange(1, 100), help="The k of recall@k.")
@click.option("--mode", default="hybrid", show_default=True, type=click.Choice(MODES),
              help="The mode the floors apply to and the suggested max_vector_distance is derived from.")
@click.option("--max-distance", default=None, type=click.FloatRange(0, 2),
              help="The cut 'answered' is measured at (default: the model's calibrated default, as an agent gets).")
@click.option("--count", default=20, show_default=True, type=click.IntRange(1, 100),
              help="Chunks a retrieval at the defaults returns (max_retrieved_rag_chunks_count).")
@click.option("--keep", default=0.95, show_default=True, type=click.FloatRange(0, 1, min_open=True),
              help="Share of the delivered answers the suggested max_vector_distance keeps.")
@floor_option("ndcg", "nDCG@10")
@floor_option("recall", "recall@k")
@floor_option("mrr", "MRR@10")
@floor_option("answered", "the share answered")
@floor_option("delivered", "the share delivered")
@click.option("--json", "json_path", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="Also write every figure (and each question's) to this file as JSON.")
@click.argument("questions_file", metavar="QUESTIONS.jsonl", type=click.Path(dir_okay=False, path_type=Path))
def evaluate_command(data_dir: Path, workspace_ref: str, model: str | None, k: int, mode: str,
                     max_distance: float | None, count: int, keep: float, json_path: Path | None, questions_file: Path,
                     **floors: float | None) -> None:
    """Score a workspace's retrieval on QUESTIONS.jsonl, per mode (hybrid, dense, lexical), and suggest
    a max_vector_distance for it; for CI, exit 1 when a --min-* floor is not met.

    \b
    Each line of QUESTIONS.jsonl is a JSON object:
      {"id": "refund-1", "query": "how long do I have to return a product",
       "expected_documents": ["Refunds"], "expected_passages": ["within 30 days"]}
    query is required; expected_documents are document ids or names;
    expected_passages, text an answering chunk holds (ignoring case and
    whitespace; a passage split by a chunk boundary counts when a chunk holds a
    contiguous half of it, at least 40 characters). With passages, chunks are
    judged; with documents only, documents. A line with neither is a question
    the workspace should not answer (it counts for "absent emptied").

    \b
    Figures, per mode, over the questions with an expected answer:
      nDCG@10, recall@k, MRR@10  the ranking with no distance cut
      answered    share with at least one chunk at the defaults (the model's
                  default cut or --max-distance, --count chunks), as an agent asks
      delivered   share with an expected chunk among those
      absent emptied  share of the questions without an answer that got nothing
      p50 ms      median latency at the defaults, query embedding included

    \b
    Suggested max_vector_distance: in the --mode's uncut rankings, the distance of
    the nearest expected chunk among the first --count, per question; the smallest
    cut (0.01 steps) keeping --keep (95%) of those answers. Shown beside it, at the
    current and at the suggested cut: the answers kept, the other (non-expected)
    chunks of those rankings removed, and the questions without an answer emptied.

    \b
    Exit codes: 0 every floor met; 1 a floor not met (each is named); 2 a usage or
    input error (a malformed line, an unknown workspace, no indexed documents).
    """
    try:
        questions = load_questions(questions_file)
    except KBError as exc:
        raise InputError(exc.message) from None
    kb = open_kb(data_dir, gap_log=False)  # the evaluation's questions are no knowledge gaps
    try:
        target = kb.workspaces.resolve(workspace_ref)
        if target is None:
            raise InputError(f"no workspace with id or name {workspace_ref!r}")
        try:
            choice = kb.models.resolve(model or target.default_model)
            cut = kb.models.max_vector_distance(choice, max_distance, named=model is not None)
            if not kb.reindex.stored_vector_count(target.id, choice.served):
                raise InputError(f"workspace {target.name!r} has no indexed documents for {choice.served} "
                                 "(add some with `kb ingest`)")
            for line in missing_documents(kb, target, questions):
                click.echo(f"warning: {line}", err=True)
            search = searcher(kb, target, model, choice.served, max_distance, count)
            kb.retrieval.embed_query(choice.served, "warm up")  # the model's load is no question's latency
            with tqdm(total=len(questions), desc="evaluating", unit="question") as bar:
                report = evaluate(search, questions, MODES, k=k, cut=cut, count=count, keep=keep,
                                  suggestion_mode=mode, on_progress=bar.update)
        except KBError as exc:
            raise InputError(exc.message) from None
    finally:
        kb.close()
    checks = check_floors(report, mode, floors)
    click.echo(render(report, target.name, choice.served, len(questions), mode, checks))
    if json_path is not None:
        json_path.write_text(json.dumps(as_json(report, target, choice.served, questions_file, mode, checks),
                                        indent=2, ensure_ascii=False) + "\n")
    if any(not c["met"] for c in checks):
        raise SystemExit(1)


def searcher(kb, target, model: str | None, served: str, max_distance: float | None, count: int):
    """Each question asked uncut (the served model, so that no distance is mapped) and as an agent asks it."""
    from index.retrieval import RetrievalLimits

    from ..services.retrieval import SearchOptions

    def hits(result) -> list[Hit]:
        return [Hit(c.document_id, c.document_name, c.text, c.vector_distance) for c in result.chunks]

    def search(query: str, mode: str, depth: int) -> Asked:
        options = SearchOptions(mode=mode)
        kb.retrieval.cache.clear()  # the latency includes embedding the question
        as_agent = RetrievalLimits(max_vector_distance=max_distance, max_retrieved_rag_chunks_count=count)
        served_result = kb.retrieval.retrieve(target, query, embedding_model=model, options=options, limits=as_agent)
        everything = RetrievalLimits(max_vector_distance=UNCUT, max_documents_length=10**12,
                                     max_retrieved_rag_chunks_count=depth)
        uncut = kb.retrieval.retrieve(target, query, embedding_model=served, options=options, limits=everything)
        return Asked(hits(uncut), hits(served_result), served_result.rag_latency_secs * 1000)

    return search


def missing_documents(kb, target, questions) -> list[str]:
    """The expected documents that are no document id or name of the workspace (they would score 0)."""
    from ..records import ListQuery

    refs = sorted({ref for q in questions for ref in q.expected_documents})
    known = set(kb.documents.get_many(target, refs)) if refs else set()
    out = []
    for ref in refs:
        if ref in known:
            continue
        page = kb.documents.list(target, ListQuery(page_size=100, search=ref))
        if not any(d.name == ref for d in page.documents):
            lines = [q.id for q in questions if ref in q.expected_documents]
            out.append(f"expected document {ref!r} (question {', '.join(lines)}) is not in workspace {target.name!r}")
    return out


def value(report: EvalReport, mode: str, metric: str) -> float:
    return getattr(report.modes[mode], metric)


def check_floors(report: EvalReport, mode: str, floors: dict[str, float | None]) -> list[dict]:
    """Each floor given, against the mode's figure as printed (3 decimals)."""
    out = []
    for metric in METRICS:
        floor = floors.get(f"min_{metric}")
        if floor is not None:
            got = value(report, mode, metric)
            out.append({"metric": metric, "mode": mode, "floor": floor, "value": got,
                        "met": not math.isnan(got) and round(got, 3) >= floor})
    return out


def fmt(x: float | None, digits: int = 3) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def render(report: EvalReport, workspace: str, model: str, questions: int, mode: str, checks: list[dict]) -> str:
    answerable = next(iter(report.modes.values())).questions
    lines = [f"{questions} question(s), {answerable} with an expected answer; workspace {workspace!r}, model {model}",
             f"answered/delivered at max_vector_distance {report.cut:g}, {report.count} chunks", ""]
    headers = ["MODE", "nDCG@10", f"RECALL@{report.k}", "MRR@10", "ANSWERED", "DELIVERED", "ABSENT EMPTIED", "P50 MS"]
    rows = [[m + (" *" if m == mode else ""), fmt(s.ndcg), fmt(s.recall), fmt(s.mrr), fmt(s.answered),
             fmt(s.delivered), fmt(s.absent_emptied), fmt(s.latency_p50_ms, 1)] for m, s in report.modes.items()]
    lines += [_table(rows, headers), ""]
    if report.suggested_cut is None:
        lines.append(f"suggested max_vector_distance: none ({report.suggestion_mode} delivered no expected chunk "
                     f"in its first {report.count})")
    else:
        lines.append(f"suggested max_vector_distance: {report.suggested_cut:.2f} (keeps {report.keep:.0%} of the "
                     f"{report.delivered_answers} answers {report.suggestion_mode} ranks in its first {report.count})")
        for label, e in (("current", report.at_cut), ("suggested", report.at_suggested)):
            lines.append(f"  at {e.cut:.2f} ({label}): answers kept {fmt(e.answers_kept)}, other chunks removed "
                         f"{fmt(e.others_removed)}, answered {fmt(e.answered)}, absent emptied {fmt(e.absent_emptied)}")
    for c in checks:
        verdict = f">= {c['floor']:g}: ok" if c["met"] else f"below {c['floor']:g}: FAILED"
        lines.append(f"floor {METRICS[c['metric']]} ({c['mode']}): {fmt(c['value'])} {verdict}")
    return "\n".join(lines)


def as_json(report: EvalReport, target, model: str, path: Path, mode: str, checks: list[dict]) -> dict:
    def clean(x):
        return None if isinstance(x, float) and (math.isnan(x) or math.isinf(x)) else x

    def effect(e):
        return None if e is None else {k: clean(v) for k, v in e.__dict__.items()}

    return {
        "questions_file": str(path), "workspace_id": target.id, "workspace": target.name, "model": model,
        "k": report.k, "count": report.count, "max_vector_distance": report.cut, "floor_mode": mode,
        "modes": {m: {k: clean(v) for k, v in s.__dict__.items() if k != "mode"} for m, s in report.modes.items()},
        "suggestion": {"mode": report.suggestion_mode, "keep": report.keep, "answers": report.delivered_answers,
                       "max_vector_distance": report.suggested_cut, "at_current": effect(report.at_cut),
                       "at_suggested": effect(report.at_suggested)},
        "floors": checks, "passed": all(c["met"] for c in checks),
        "per_question": [{k: clean(v) for k, v in s.__dict__.items() if k != "other_distances"} for s in report.scores],
    }
