"""Ingestion benchmark: parse, chunk and embed the shared corpus, per format.

Usage (from the repository root):

    HF_HUB_OFFLINE=1 .venv/bin/python bench/ingest_bench.py [--json PATH] [--rounds 3]
        [--msmarco-sample 1000] [--corpus DIR]

What it measures, per format (pdf, docx, epub, html, and the msmarco-5k passages as text
documents, format "txt"):

- parse: `ingest.parse(bytes, filename)` in this process (for msmarco `ingest.parse_text(text)`),
  timed `--rounds` times (default 3); the median of the per-format totals is reported.
  kb itself parses uploads in a forkserver child (`kb.sandbox`); that per-upload overhead is
  not included here.
- chunk: `chunk_document(doc, count_tokens=<bundled all-MiniLM-L6-v2>.count_tokens,
  max_tokens=256, overlap_tokens=32)`, exactly as kb does without the context prefix; also
  timed `--rounds` times, median reported.
- embed: `embed_documents(chunks_of_one_document, batch_size=32)`, one call per document as
  kb's indexer does, once. A document format with at most `--embed-cap` chunks (default 500:
  pdf, docx, html) has all its chunks embedded; one with more (epub: ~2,900 chunks, mostly
  Moby-Dick) has a fixed random sample (seed 0) of `--embed-cap` chunks embedded, still grouped
  per document, and the time is extrapolated to all its chunks (`--embed-cap 0` embeds
  everything: the whole run then takes 7 minutes or more on 2 busy cores). For msmarco a fixed
  random sample (seed 0) of `--msmarco-sample` chunks is embedded in batches of 32 and
  extrapolated. As a side figure, `--msmarco-single-sample` passages are embedded one per call,
  which is what kb does when every passage is its own document (one indexing job each),
  interleaved with calls of 20 of the same passages.

Files that fail to parse (by design: the password PDF, DOCX files with no body text) are listed
as skipped with their error and left out of every figure. Times are wall-clock seconds; MB is
10^6 bytes. The machine is shared and noisy: compare ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

DEFAULT_CORPUS = REPO.parent / "shared" / "corpus"
FILE_FORMATS = ("pdf", "docx", "epub", "html")
MSMARCO = "txt"  # the msmarco passages, ingested as text documents
MAX_TOKENS = 256
OVERLAP_TOKENS = 32
BATCH_SIZE = 32


def load_msmarco(corpus: Path) -> list[tuple[str, str]]:
    """(id, text) of every passage. Lines are split on "\\n" only: passages contain U+0085."""
    raw = (corpus / "retrieval" / "msmarco-5k" / "corpus.jsonl").read_text(encoding="utf-8")
    records = [json.loads(line) for line in raw.split("\n") if line.strip()]
    return [(r["_id"], r["text"]) for r in records]


def warm_up_converters() -> None:
    # Import every converter's library once so the first timed parse does not pay for importing
    # pypdf, python-docx, ebooklib, trafilatura (the kb sandbox preloads the same list).
    import importlib

    from ingest.converters import preload_modules

    for module in preload_modules():
        importlib.import_module(module)


def fmt_s(x: float) -> str:
    return f"{x:.3f}" if x < 10 else f"{x:.1f}"


def print_table(headers: list[str], rows: list[list[str]], align_left: int = 1) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i < align_left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    print(line(headers))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print(line(r))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="the shared corpus (default: ../shared/corpus)")
    ap.add_argument("--rounds", type=int, default=3, help="parse and chunk timing repetitions (median reported)")
    ap.add_argument("--embed-cap", type=int, default=500,
                    help="document formats with more chunks embed a fixed sample of this many and extrapolate (0: embed all)")
    ap.add_argument("--msmarco-sample", type=int, default=500, help="msmarco chunks actually embedded (batch 32)")
    ap.add_argument("--msmarco-single-sample", type=int, default=100,
                    help="msmarco chunks embedded one per call (kb's one-job-per-document path); 0 to skip")
    from index.embedders import BACKENDS

    ap.add_argument("--backend", default=None, choices=list(BACKENDS),
                    help="embedding backend (default: kb's default, KB_EMBED_BACKEND)")
    ap.add_argument("--json", type=Path, help="also write every figure as JSON here")
    args = ap.parse_args()

    import transformers

    transformers.logging.set_verbosity_error()  # "sequence length is longer than ..." from count_tokens

    import torch

    from index.embedders import load_embedder
    from ingest import chunk_document, parse, parse_text
    from ingest.errors import IngestError
    from kb.settings import DEFAULT_MODEL, EmbeddingSettings, bundled_model_path

    t_all = time.perf_counter()
    t0 = time.perf_counter()
    settings = EmbeddingSettings()
    backend = args.backend or settings.embed_backend
    embedder = load_embedder(
        DEFAULT_MODEL,
        bundled_model_path(),
        backend,
        onnx_cache_dir=REPO / "bench" / "results" / "models",
        query_threads=settings.query_threads,
        batch_threads=settings.batch_threads,
    )
    print(f"embedding backend: {embedder.backend}", flush=True)
    model_load_s = time.perf_counter() - t0
    warm_up_converters()
    count_tokens = embedder.count_tokens

    # ---- inputs -------------------------------------------------------------------------------
    files: dict[str, list[Path]] = {f: sorted(p for p in (args.corpus / f).iterdir() if p.is_file()) for f in FILE_FORMATS}
    blobs = {p: p.read_bytes() for ps in files.values() for p in ps}
    passages = load_msmarco(args.corpus)
    fmts = [*FILE_FORMATS, MSMARCO]

    # ---- parse, `rounds` times, rounds interleaved across formats so noise spreads evenly --------
    skipped: dict[str, list[dict]] = {f: [] for f in fmts}
    parsed: dict[str, list[tuple[str, object]]] = {f: [] for f in fmts}
    parse_rounds: dict[str, list[float]] = {f: [] for f in fmts}
    file_parse_times: dict[str, list[float]] = {}
    for rnd in range(args.rounds):
        for f in FILE_FORMATS:
            total = 0.0
            for p in files[f]:
                t0 = time.perf_counter()
                try:
                    doc = parse(blobs[p], p.name)
                except IngestError as exc:
                    if rnd == 0:
                        skipped[f].append({"file": p.name, "error": f"{type(exc).__name__}: {exc}"})
                    continue
                dt = time.perf_counter() - t0
                total += dt
                file_parse_times.setdefault(p.name, []).append(dt)
                if rnd == 0:
                    parsed[f].append((p.name, doc))
            parse_rounds[f].append(total)
        t0 = time.perf_counter()
        docs = [parse_text(text) for _, text in passages]
        parse_rounds[MSMARCO].append(time.perf_counter() - t0)
        if rnd == 0:
            parsed[MSMARCO] = list(zip((pid for pid, _ in passages), docs))

    # ---- chunk, `rounds` times ---------------------------------------------------------------------
    chunks: dict[str, list[tuple[str, list]]] = {f: [] for f in fmts}
    chunk_rounds: dict[str, list[float]] = {f: [] for f in fmts}
    for rnd in range(args.rounds):
        for f in fmts:
            t0 = time.perf_counter()
            out = [
                (name, chunk_document(doc, count_tokens=count_tokens, max_tokens=MAX_TOKENS, overlap_tokens=OVERLAP_TOKENS))
                for name, doc in parsed[f]
            ]
            chunk_rounds[f].append(time.perf_counter() - t0)
            if rnd == 0:
                chunks[f] = out

    # ---- embed, once --------------------------------------------------------------------------------
    embedder.embed_documents(["warm-up"] * 4, batch_size=BATCH_SIZE)
    embed_s: dict[str, float] = {}
    embed_note: dict[str, str] = {}
    for f in FILE_FORMATS:
        n_all = sum(len(cs) for _, cs in chunks[f])
        if args.embed_cap and n_all > args.embed_cap:
            keys = random.Random(0).sample([(d, i) for d, (_, cs) in enumerate(chunks[f]) for i in range(len(cs))], args.embed_cap)
            per_doc: dict[int, list[int]] = {}
            for d, i in sorted(keys):
                per_doc.setdefault(d, []).append(i)
            groups = [[chunks[f][d][1][i].text for i in idx] for d, idx in per_doc.items()]
        else:
            groups = [[c.text for c in cs] for _, cs in chunks[f] if cs]
        n_done = sum(len(g) for g in groups)
        reps = []
        for _ in range(3 if n_done <= 100 else 1):  # a few chunks: repeat, take the median
            t0 = time.perf_counter()
            for texts in groups:
                embedder.embed_documents(texts, batch_size=BATCH_SIZE)
            reps.append(time.perf_counter() - t0)
        measured = statistics.median(reps)
        embed_s[f] = measured * n_all / n_done if n_done else 0.0
        embed_note[f] = (f"all chunks, one call per document{', median of 3' if len(reps) > 1 else ''}" if n_done == n_all else
                         f"{n_done} of {n_all} chunks (fixed sample, grouped per document) embedded in {measured:.1f} s, extrapolated")
    ms_chunks = [c for _, cs in chunks[MSMARCO] for c in cs]
    rng = random.Random(0)
    sample = rng.sample(ms_chunks, min(args.msmarco_sample, len(ms_chunks)))
    t0 = time.perf_counter()
    embedder.embed_documents([c.text for c in sample], batch_size=BATCH_SIZE)
    sample_s = time.perf_counter() - t0
    embed_s[MSMARCO] = sample_s * len(ms_chunks) / len(sample)
    embed_note[MSMARCO] = f"{len(sample)} of {len(ms_chunks)} chunks embedded in batches of 32 ({sample_s:.1f} s), extrapolated"
    # kb indexes each text document in its own job: a one-passage document is one call of one text.
    # Interleaved rounds (20 passages as one call, then the same 20 one per call) so load drift on a
    # shared machine hits both alike; medians over the rounds.
    single = None
    if args.msmarco_single_sample:
        one = [c.text for c in sample[: args.msmarco_single_sample]]
        per_batch, per_single = [], []
        for start in range(0, len(one), 20):
            group = one[start : start + 20]
            t0 = time.perf_counter()
            embedder.embed_documents(group, batch_size=BATCH_SIZE)
            per_batch.append((time.perf_counter() - t0) / len(group))
            t0 = time.perf_counter()
            for text in group:
                embedder.embed_documents([text], batch_size=BATCH_SIZE)
            per_single.append((time.perf_counter() - t0) / len(group))
        single = {
            "sample": len(one),
            "rounds": len(per_batch),
            "per_chunk_ms_one_call_each": 1000 * statistics.median(per_single),
            "per_chunk_ms_one_call_of_20": 1000 * statistics.median(per_batch),
            "extrapolated_seconds_one_call_each": statistics.median(per_single) * len(ms_chunks),
        }

    # ---- figures -------------------------------------------------------------------------------------
    results: dict[str, dict] = {}
    for f in fmts:
        if f == MSMARCO:
            nbytes = sum(len(t.encode("utf-8")) for _, t in passages)
        else:
            ok = {name for name, _ in parsed[f]}
            nbytes = sum(len(blobs[p]) for p in files[f] if p.name in ok)
        ndocs = len(parsed[f])
        pages = sum(doc.pages or 0 for _, doc in parsed[f]) if f == "pdf" else None
        p_med = statistics.median(parse_rounds[f])
        c_med = statistics.median(chunk_rounds[f])
        all_chunks = [c for _, cs in chunks[f] for c in cs]
        total = p_med + c_med + embed_s[f]
        results[f] = {
            "documents": ndocs,
            "bytes": nbytes,
            "pages": pages,
            "parse_s_median": p_med,
            "parse_s_rounds": parse_rounds[f],
            "chunk_s_median": c_med,
            "chunk_s_rounds": chunk_rounds[f],
            "docs_per_s": ndocs / p_med,
            "mb_per_s": nbytes / 1e6 / p_med,
            "pages_per_s": pages / p_med if pages else None,
            "chunks": len(all_chunks),
            "chunk_tokens_median": statistics.median(c.token_count for c in all_chunks) if all_chunks else None,
            "chunks_under_20_tokens": sum(c.token_count < 20 for c in all_chunks),
            "embed_s": embed_s[f],
            "embed_note": embed_note[f],
            "embed_chunks_per_s": len(all_chunks) / embed_s[f] if embed_s[f] else None,
            "ingest_s": total,
            "share_parse": p_med / total,
            "share_chunk": c_med / total,
            "share_embed": embed_s[f] / total,
            "skipped": skipped[f],
        }

    # ---- print -----------------------------------------------------------------------------------------
    print(f"kb ingestion benchmark — corpus {args.corpus}")
    print(f"python {platform.python_version()}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"{os.cpu_count()} CPUs; model {DEFAULT_MODEL} loaded in {model_load_s:.1f} s; "
          f"chunks of <= {MAX_TOKENS} tokens, overlap {OVERLAP_TOKENS}; embed batch {BATCH_SIZE}; "
          f"parse and chunk: median of {args.rounds} rounds\n")
    label = {**{f: f for f in FILE_FORMATS}, MSMARCO: "txt (msmarco)"}
    rows = []
    for f in fmts:
        r = results[f]
        rows.append([
            label[f], str(r["documents"]), f"{r['bytes'] / 1e6:.2f}", str(r["pages"]) if r["pages"] else "–",
            fmt_s(r["parse_s_median"]), fmt_s(r["chunk_s_median"]), f"{r['docs_per_s']:.1f}", f"{r['mb_per_s']:.2f}",
            f"{r['pages_per_s']:.1f}" if r["pages_per_s"] else "–", str(r["chunks"]),
            str(r["chunk_tokens_median"]), str(r["chunks_under_20_tokens"]),
        ])
    print("Parse and chunk")
    print_table(["format", "docs", "MB", "pages", "parse s", "chunk s", "docs/s", "MB/s", "pages/s", "chunks",
                 "tok/chunk (median)", "chunks <20 tok"], rows)
    print("\ndocs/s, MB/s, pages/s: parsing throughput (parse time only). MB: input bytes of the parsed files "
          "(msmarco: UTF-8 bytes of the passage texts).\n")

    rows = []
    for f in fmts:
        r = results[f]
        rows.append([
            label[f], str(r["chunks"]), fmt_s(r["embed_s"]) + ("*" if r["embed_note"].endswith("extrapolated") else ""),
            f"{r['embed_chunks_per_s']:.1f}", fmt_s(r["ingest_s"]),
            f"{100 * r['share_parse']:.1f}%", f"{100 * r['share_chunk']:.1f}%", f"{100 * r['share_embed']:.1f}%",
        ])
    print("Embed, and where ingest time goes (parse + chunk + embed)")
    print_table(["format", "chunks", "embed s", "chunks/s", "total s", "parse", "chunk", "embed"], rows)
    for f in fmts:
        if embed_note[f].endswith("extrapolated"):
            print(f"* {label[f]}: {embed_note[f]}.")
    if single:
        print(f"  msmarco, one passage per call (kb: one indexing job per text document): "
              f"{single['per_chunk_ms_one_call_each']:.1f} ms/passage vs {single['per_chunk_ms_one_call_of_20']:.1f} ms/passage "
              f"as calls of 20 (median of {single['rounds']} interleaved rounds; → "
              f"{single['extrapolated_seconds_one_call_each']:.0f} s for all {len(ms_chunks)}).")

    print("\nSlowest files to parse (median of rounds)")
    slow = sorted(((statistics.median(ts), n) for n, ts in file_parse_times.items()), reverse=True)[:6]
    print_table(["file", "parse s"], [[n, fmt_s(t)] for t, n in slow])

    print("\nSkipped (failed to parse, by design)")
    any_skipped = False
    for f in fmts:
        for s in skipped[f]:
            any_skipped = True
            print(f"  {f}/{s['file']}: {s['error']}")
    if not any_skipped:
        print("  none")
    wall = time.perf_counter() - t_all
    print(f"\nwall time of the benchmark: {wall:.0f} s")

    if args.json:
        out = {
            "corpus": str(args.corpus),
            "model": DEFAULT_MODEL,
            "model_load_s": model_load_s,
            "max_tokens": MAX_TOKENS,
            "overlap_tokens": OVERLAP_TOKENS,
            "batch_size": BATCH_SIZE,
            "rounds": args.rounds,
            "embed_cap": args.embed_cap,
            "msmarco_sample": args.msmarco_sample,
            "torch_threads": torch.get_num_threads(),
            "cpus": os.cpu_count(),
            "formats": results,
            "msmarco_single_passage_per_call": single,
            "file_parse_s_median": {n: statistics.median(ts) for n, ts in file_parse_times.items()},
            "wall_s": wall,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"JSON written to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
