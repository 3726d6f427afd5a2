"""Retrieval benchmark: quality (msmarco-5k, multilingual known-item sets), latency and indexing throughput over HTTP.

Usage (from the repository root):

    HF_HUB_OFFLINE=1 .venv/bin/python bench/retrieval.py [--part msmarco,latency,scale,multilingual,backends]
        [--modes hybrid,dense,lexical] [--json PATH] [--scale 100000] [--latency-requests 500]
        [--concurrency 8] [--upload-clients 4] [--langs ar,ja,de,zh,en] [--no-ml-combined]
        [--backends torch,onnx-int8] [--backend-passages N] [--num-candidates N] [--budget-ms MS] [--embed-cache F]
        [--url http://127.0.0.1:8000 (--api-key KEY | --data-dir DIR)] [--keep] [--check-sets]

Without --url the script starts its own `kb serve` (`.venv/bin/kb serve --data-dir TMP --port FREE`,
environment: this process's, plus HF_HUB_OFFLINE=1; so any `KB_*` setting given to the script, e.g.
KB_EMBED_BACKEND or KB_WORKERS, reaches the server) on a temporary data dir, and creates one workspace
per corpus with `kb workspace create NAME --tier enterprise --min-rag-document-bytes 0`. With --url and
--data-dir (that server's data dir) it creates the workspaces the same way; with --url and --api-key
every part shares that one workspace, which must be empty (and accept small documents: `kb workspace set
WS --min-rag-document-bytes 0`, msmarco passages are short), and each part deletes its documents after it.

Parts (default: all but `scale` and `backends`, which take long; `--part all` runs everything):

msmarco       The 5,000 msmarco-5k passages are uploaded as text documents (`POST /text`, name = passage
              id, `--upload-clients` at a time); the script waits until every index is done (batched
              `POST /rag-index` status reads, oldest first) and reports indexing throughput: chunks/s
              from the first upload sent to the last index seen `succeeded`, upload time separately,
              and the rate after the last upload (indexing alone). Then the 43 judged queries (7 of
              the 50 have no judgements and are left out) are asked in each `--modes` search mode
              (`max_retrieved_rag_chunks_count` 10, `max_vector_distance` 2.0, `max_documents_length`
              10,000,000); chunks map to passages by `document_name`; nDCG@10 (graded gains, as
              trec_eval) and Recall@10 against qrels/test.tsv (no header row). In-process baselines on
              the raw passages: BM25 (bm25s, Lucene variant k1=1.5 b=0.75, English Snowball stemmer and
              stopwords), exact dense search (sentence-transformers with the bundled all-MiniLM-L6-v2,
              normalised embeddings, numpy dot product) and their reciprocal-rank fusion (k=60, top 100
              of each). Also checks that every returned `vector_distance` is the true cosine distance
              (compared with the in-process embeddings, for chunks that are a whole passage).
busy          Retrieval latency while a large document is being indexed on the same cores: `--busy-file`
              (default epub/moby-dick.epub, about 1,600 chunks) is uploaded to the msmarco workspace, and
              while its index is not done one client sends cold hybrid retrieve calls back to back
              (the 50 queries, each text distinct). p50/p99 of those calls beside the same client's
              figures on the idle server just before, and how long the indexing took. Target p99 <= 50 ms.
latency       On the msmarco workspace (built first if the msmarco part did not run), per mode:
              `--latency-requests` retrieve calls (the 50 queries cycled) for each of cold (every query
              text distinct: " #<n>" appended, so the server's query-embedding cache never hits) and
              warm (the 50 texts, asked once before, so cached), sequentially (one client) and with
              `--concurrency` clients (one persistent httpx.Client each). Client-side p50/p99 and
              requests/s; the server's own `timings_ms` (embed, total) when present, else its
              `rag_latency_secs`.
scale         A workspace of `--scale` chunks (default 100,000) built over HTTP from synthetic Markdown
              documents: `--scale-sections` sections (default 100) per document, each `# Topic d.i:
              <words>` followed by 1-3 msmarco sentences recombined at random (seed 0), so each heading
              starts a chunk and every chunk text is distinct (no embedding reuse). Reports how long
              upload and indexing took, then the same latency figures as `latency`, in each mode.
multilingual  For each language of bench/data/multilingual/documents.json (Arabic, Japanese, German,
              Chinese, English), its documents are uploaded as files into a workspace of their own,
              then every question of `<lang>.jsonl` is asked in each mode (top 10); a hit is a
              retrieved chunk of the question's document whose text contains the question's quote.
              hit@1, hit@10, MRR@10 per language and mode, and whether hybrid >= max(dense, lexical).
              Then (unless --no-ml-combined) all documents in ONE workspace and all questions again:
              the per-language workspaces are tiny for some languages (the Chinese page is 2 chunks).
              Before asking, every quote is looked up in the document's chunks (`GET /{id}/chunks`);
              questions whose quote is in no chunk are reported as unanswerable.
backends      Indexing throughput of the msmarco passages with `KB_EMBED_BACKEND=torch` and
              `KB_EMBED_BACKEND=onnx-int8` (fresh servers and data dirs; needs the spawned mode),
              against plain sentence-transformers in this process on the same passages
              (`model.encode(passages, batch_size=32)`, default settings), as a ratio (`--backend-passages N`:
              the first N passages only, for a quick check). Two ways per backend:
              stored first, then indexed: uploaded to a server with `KB_WORKERS=0` (stored, jobs
              queued), which stops; a server with workers on the same data dir indexes them (chunks/s
              from its /health answer to the last index done: indexing alone, the target's measure);
              uploads and indexing at once: uploaded to a fresh server that indexes meanwhile
              (chunks/s from the first upload to the last index done). A backend value
              that `kb config` does not know is reported as not available (torch is then still run,
              as the server's only backend).

Before a mode other than dense is used, the server is probed: if it neither rejects an unknown
`search_mode` (422) nor answers with `timings_ms`, it does not support search modes yet, and those
modes are reported as "not available yet" (`--force-modes` sends them anyway).

Every part is bounded (`--index-timeout`, `--scale-timeout`); progress goes to stderr, figures to stdout,
and with --json all figures (per query too) to a file, rewritten after each part. The machine is
shared: each part records the 1-minute load average before and after.
"""


from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH), str(BENCH.parent)]  # bench's shared modules, and this checkout's kb

from common import DEFAULT_CORPUS  # noqa: E402
from common.beir import Msmarco  # noqa: E402
from common.report import loadavg, log  # noqa: E402
from common.results import run_info, write_json  # noqa: E402
from common.search import MODES  # noqa: E402
from common.server import Target  # noqa: E402
from retrieval_parts.backends import part_backends, print_backends  # noqa: E402
from retrieval_parts.busy import part_busy, print_busy  # noqa: E402
from retrieval_parts.latency import part_latency, print_latency  # noqa: E402
from retrieval_parts.msmarco import part_msmarco, print_msmarco  # noqa: E402
from retrieval_parts.multilingual import check_sets, language_names, part_multilingual, print_multilingual  # noqa: E402
from retrieval_parts.scale import part_scale, print_scale  # noqa: E402

PARTS = ("msmarco", "latency", "busy", "scale", "multilingual", "backends")
DEFAULT_PARTS = ("msmarco", "latency", "busy", "multilingual")


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", default=",".join(DEFAULT_PARTS),
                    help=f"comma-separated parts: {', '.join(PARTS)}, or all (default: {','.join(DEFAULT_PARTS)})")
    ap.add_argument("--modes", default=",".join(MODES), help="search modes to ask (default: hybrid,dense,lexical)")
    ap.add_argument("--force-modes", action="store_true", help="send every mode even if the server seems not to know search_mode")
    ap.add_argument("--url", help="a running kb server (loopback only) instead of spawning one")
    ap.add_argument("--api-key", help="with --url: one workspace for every part (must be empty)")
    ap.add_argument("--data-dir", type=Path, help="with --url: that server's data dir, to create workspaces with `kb workspace create`")
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--json", type=Path, help="write every figure here (rewritten after each part)")
    ap.add_argument("--upload-clients", type=int, default=4)
    ap.add_argument("--latency-requests", type=int, default=500, help="requests per mode x cache x concurrency (default 500)")
    ap.add_argument("--concurrency", type=int, default=8, help="concurrent clients of the concurrent latency runs")
    ap.add_argument("--request-timeout", type=float, default=60.0)
    ap.add_argument("--num-candidates", type=int, help="send num_candidates (default: the server's)")
    ap.add_argument("--budget-ms", type=float, help="send budget_ms in the latency runs (default: none)")
    ap.add_argument("--busy-file", default="epub/moby-dick.epub", help="busy part: the large document indexed meanwhile")
    ap.add_argument("--scale", type=int, default=100_000, help="chunks of the scale workspace (default 100000)")
    ap.add_argument("--scale-sections", type=int, default=100, help="sections (~chunks) per synthetic document")
    ap.add_argument("--scale-timeout", type=float, default=5400.0, help="max seconds to wait for the scale indexing")
    ap.add_argument("--index-timeout", type=float, default=1800.0, help="max seconds to wait for other indexing")
    ap.add_argument("--langs", default="ar,ja,de,zh,en", help="multilingual sets to run")
    ap.add_argument("--no-ml-combined", dest="ml_combined", action="store_false",
                    help="skip the run with every language's documents in one workspace")
    ap.add_argument("--backends", default="torch,onnx-int8", help="KB_EMBED_BACKEND values to compare")
    ap.add_argument("--backend-passages", type=int, default=0,
                    help="backends part: index only the first N msmarco passages (default: all 5,000)")
    ap.add_argument("--embed-cache", type=Path,
                    help="msmarco baseline: reuse (or store) the in-process passage embeddings in this .npz file")
    ap.add_argument("--keep", action="store_true", help="keep the temporary data dirs and server logs")
    ap.add_argument("--check-sets", action="store_true", help="only check the multilingual sets' quotes against kb's chunks")
    args = ap.parse_args()
    args.parts = list(PARTS) if args.part == "all" else [x.strip() for x in args.part.split(",") if x.strip()]
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    args.langs = [x.strip() for x in args.langs.split(",") if x.strip()]
    args.backends = [x.strip() for x in args.backends.split(",") if x.strip()]
    for part in args.parts:
        if part not in PARTS:
            ap.error(f"unknown part {part!r}; parts: {', '.join(PARTS)}")
    for mode in args.modes:
        if mode not in MODES:
            ap.error(f"unknown mode {mode!r}")
    if args.url and not (args.api_key or args.data_dir):
        ap.error("--url needs --api-key or --data-dir")
    return args


def runners() -> dict:
    """Each part's (measure, print) functions."""
    names = language_names()
    return {
        "msmarco": (part_msmarco, print_msmarco),
        "latency": (part_latency, lambda r: print_latency(r, f"latency over HTTP, msmarco-5k workspace ({r.get('chunks')} chunks)")),
        "busy": (part_busy, print_busy),
        "scale": (part_scale, print_scale),
        "multilingual": (part_multilingual, lambda r: print_multilingual(r, names)),
        "backends": (part_backends, print_backends),
    }


def run_part(part: str, args, target: Target, ms: Msmarco, state: dict) -> tuple[dict, bool]:
    """(figures, whether the part raised): its duration and the load average around it are added; a
    part that raises is reported, and the others still run."""
    run, show = runners()[part]
    log(f"part {part}")
    started, load_before = time.monotonic(), loadavg()
    raised = False
    try:
        r = run(args, target, ms, state)
    except Exception as exc:  # noqa: BLE001 - one part failing does not lose the others
        traceback.print_exc()
        r, raised = {"error": f"{type(exc).__name__}: {exc}"}, True
    r["secs"] = time.monotonic() - started
    r["loadavg_1m"] = {"before": load_before, "after": loadavg()}
    if "error" in r and part != "backends":
        print(f"\n== {part}: FAILED {r['error']} ==")
    else:
        show(r)
    print(f"({part}: {r['secs']:.0f} s, 1-min load average {load_before} before, {r['loadavg_1m']['after']} after)", flush=True)
    return r, raised


def main() -> int:
    args = parse_args()
    if args.check_sets:
        return check_sets(args)
    ms = Msmarco(args.corpus, args.embed_cache)
    results: dict = {**run_info(args), "parts": {}}
    print(f"kb retrieval benchmark — {results['machine']}, kb {results['git']}, parts {','.join(args.parts)}, "
          f"modes {','.join(args.modes)}" + (f", env {results['kb_env']}" if results["kb_env"] else ""))
    target = Target(args)
    state: dict = {}
    status = 0
    try:
        for part in (p for p in PARTS if p in args.parts):
            results["parts"][part], raised = run_part(part, args, target, ms, state)
            status = 1 if raised else status
            write_json(args.json, results)
        if target.server:
            results["server_log"] = target.server.scan_log()
    finally:
        target.close()
    write_json(args.json, results)
    if args.json:
        print(f"JSON written to {args.json}")
    return status


if __name__ == "__main__":
    sys.exit(main())
