"""Part multilingual: known-item questions in Arabic, Japanese, German, Chinese and English (bench/data/multilingual)."""

from __future__ import annotations

import json
import statistics
from collections import Counter
from pathlib import Path

from common import BENCH
from common.beir import Msmarco
from common.documents import chunks_of, delete_documents, ensure_empty, index_line, indexing_report, upload_all, wait_indexed
from common.metrics import rank_metrics, verdict
from common.report import f3, log, print_table
from common.search import MODES, TOP_K, retrieve, retrieve_body, usable_modes
from common.server import Target, client

ML_DIR = BENCH / "data" / "multilingual"


def language_names() -> dict[str, str]:
    """{code: language name} of the sets in documents.json ({} if it cannot be read)."""
    try:
        return {k: v["language"] for k, v in json.loads((ML_DIR / "documents.json").read_text()).items()}
    except (OSError, ValueError, KeyError):
        return {}

def load_sets(langs: list[str]) -> tuple[dict, dict]:
    manifest = json.loads((ML_DIR / "documents.json").read_text(encoding="utf-8"))
    sets = {}
    for lang in langs:
        if lang not in manifest:
            raise SystemExit(f"no language {lang!r} in {ML_DIR / 'documents.json'}")
        path = ML_DIR / f"{lang}.jsonl"
        sets[lang] = [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]
    return manifest, sets


def check_sets(args) -> int:
    """Every quote is in its document's extracted text and inside at least one chunk, chunked as kb does."""
    import transformers
    from transformers import AutoTokenizer

    from ingest import chunk_document, parse
    from kb.settings import bundled_model_path

    transformers.logging.set_verbosity_error()
    tok = AutoTokenizer.from_pretrained(bundled_model_path())

    def count_tokens(text: str) -> int:
        return len(tok(text, add_special_tokens=True, truncation=False)["input_ids"])

    manifest, sets = load_sets(args.langs)
    bad = 0
    for lang, rows in sets.items():
        docs = {}
        for name in manifest[lang]["documents"]:
            parsed = parse((args.corpus / name).read_bytes(), Path(name).name)
            docs[name] = (parsed.text, [c.text for c in chunk_document(parsed, count_tokens=count_tokens, max_tokens=256,
                                                                        overlap_tokens=32)])
        questions = Counter()
        several = 0
        for r in rows:
            several += sum(r["quote"] in c for c in docs.get(r["document"], ("", []))[1]) > 1
            questions[r["question"]] += 1
            text, chunks = docs.get(r["document"], ("", []))
            where = "not a document of this language" if r["document"] not in docs else (
                "quote not in the extracted text" if r["quote"] not in text else (
                    "quote in no single chunk" if not any(r["quote"] in c for c in chunks) else None))
            if where:
                bad += 1
                print(f"{lang}: {where}: {r['quote']!r} ({r['question']})")
        dupes = [q for q, n in questions.items() if n > 1]
        if dupes:
            bad += len(dupes)
            print(f"{lang}: duplicate questions: {dupes}")
        print(f"{lang}: {len(rows)} questions, {len({r['quote'] for r in rows})} distinct quotes "
              f"({several} found in more than one chunk, e.g. in the overlap of neighbours), documents "
              + ", ".join(f"{n} ({len(docs[n][1])} chunks)" for n in docs))
    print("all quotes found" if not bad else f"{bad} problems")
    return 1 if bad else 0


def evaluate_known_items(args, url: str, key: str, rows: list[dict], modes: list[str], label: str) -> tuple[dict, dict]:
    """({mode: metrics with per-question ranks}, {mode: error})."""
    out, errors = {}, {}
    with client(url, key) as http:
        for mode in modes:
            log(f"multilingual {label}: {len(rows)} questions, mode {mode}")
            ranks, counts = [], []
            try:
                for r in rows:
                    answer = retrieve(http, retrieve_body(args, r["question"], mode))
                    counts.append(len(answer["chunks"]))
                    rank = next((i for i, c in enumerate(answer["chunks"][:TOP_K], 1)
                                 if c["document_name"] == r["document"] and r["quote"] in c["text"]), None)
                    ranks.append(rank)
            except Exception as exc:  # noqa: BLE001 - report and go on with the other modes
                errors[mode] = f"{type(exc).__name__}: {exc}"
                log(f"  mode {mode} failed: {errors[mode]}")
                continue
            out[mode] = {**rank_metrics(ranks), "ranks": ranks, "mean_chunks_returned": statistics.fmean(counts)}
    return out, errors


def ml_workspace(args, target: Target, purpose: str, documents: list[str]) -> dict:
    key, fresh = target.workspace(purpose)
    if not fresh:
        ensure_empty(target.url, key)
    items = [{"name": name, "path": str(args.corpus / name)} for name in documents]
    up = upload_all(target.url, key, items, min(args.upload_clients, len(items)), purpose)
    waited = wait_indexed(target.url, key, up["ids"], args.index_timeout, purpose)
    report = indexing_report(up, waited, len(items))
    log(f"{purpose} indexed: " + index_line(report))
    chunk_texts = {}
    with client(target.url, key) as http:
        for name, document_id in zip(documents, up["ids"]):
            chunk_texts[name] = chunks_of(http, document_id) if document_id else []
    return {"key": key, "ids": up["ids"], "indexing": report, "chunks": chunk_texts}


def part_multilingual(args, target: Target, ms: Msmarco, state: dict) -> dict:
    manifest, sets = load_sets(args.langs)
    groups = [(lang, manifest[lang]["documents"], sets[lang]) for lang in args.langs]
    if args.ml_combined:
        all_docs = list(dict.fromkeys(d for lang in args.langs for d in manifest[lang]["documents"]))
        groups.append(("all", all_docs, [dict(r, lang=lang) for lang in args.langs for r in sets[lang]]))
    result = {"languages": {}, "combined": None}
    for lang, documents, rows in groups:
        purpose = f"ml-{lang}"
        log(f"multilingual {lang}: uploading {len(documents)} documents")
        ws = ml_workspace(args, target, purpose, documents)
        unanswerable = [r["question"] for r in rows if not any(r["quote"] in c for c in ws["chunks"].get(r["document"], []))]
        modes, skipped = usable_modes(args, target.url, ws["key"])
        entry = {"documents": {d: len(ws["chunks"][d]) for d in documents}, "indexing": ws["indexing"],
                 "questions": len(rows), "unanswerable": unanswerable, "modes_skipped": skipped, "mode_errors": {}}
        entry["metrics"], entry["mode_errors"] = evaluate_known_items(args, target.url, ws["key"], rows, modes, lang)
        entry["hybrid_ge_max_mrr"] = verdict(entry["metrics"], "mrr@10")
        entry["hybrid_ge_max_hit10"] = verdict(entry["metrics"], "hit@10")
        if lang == "all":
            by_lang = {}
            for code in args.langs:
                idx = [i for i, r in enumerate(rows) if r["lang"] == code]
                by_lang[code] = {}
                for mode, m in entry["metrics"].items():
                    by_lang[code][mode] = rank_metrics([m["ranks"][i] for i in idx])
                by_lang[code]["hybrid_ge_max_mrr"] = verdict(by_lang[code], "mrr@10")
                by_lang[code]["hybrid_ge_max_hit10"] = verdict(by_lang[code], "hit@10")
            entry["by_language"] = by_lang
            result["combined"] = entry
        else:
            result["languages"][lang] = entry
        if target.shared_key:
            delete_documents(target.url, ws["key"], ws["ids"])
    return result


def print_multilingual(r: dict, names: dict) -> None:
    print("\n== multilingual known-item sets (each language in its own workspace), top 10 ==")
    rows = []
    for lang, e in r["languages"].items():
        chunks = sum(e["documents"].values())
        first = True
        for mode in MODES:
            if mode not in e["metrics"]:
                continue
            m = e["metrics"][mode]
            rows.append([f"{names.get(lang, lang)} ({e['questions']} q, {chunks} chunks)" if first else "", mode,
                         f3(m["hit@1"]), f3(m["hit@10"]), f3(m["mrr@10"]),
                         f"{e['hybrid_ge_max_mrr']} / {e['hybrid_ge_max_hit10']}" if first else ""])
            first = False
    print_table(["language", "mode", "hit@1", "hit@10", "MRR@10", "hybrid >= max(dense, lexical): MRR@10 / hit@10"], rows)
    for lang, e in r["languages"].items():
        for mode, why in e["modes_skipped"].items():
            print(f"{lang} {mode}: {why}")
            break
        for mode, err in e["mode_errors"].items():
            print(f"{lang} {mode}: FAILED {err}")
        for mode, m in e["metrics"].items():
            if m.get("mean_chunks_returned", TOP_K) < 1:
                print(f"{lang} {mode}: WARNING fewer than 1 chunk per question on average ({m['mean_chunks_returned']:.2f})")
        if e["unanswerable"]:
            print(f"{lang}: {len(e['unanswerable'])} questions whose quote is in no chunk (counted as misses): "
                  f"{e['unanswerable'][:3]}")
    c = r.get("combined")
    if c:
        chunks = sum(c["documents"].values())
        print(f"\n== the same questions, all {len(c['documents'])} documents in one workspace ({chunks} chunks) ==")
        rows = []
        for code, by_mode in c["by_language"].items():
            first = True
            for mode in MODES:
                if mode not in by_mode:
                    continue
                m = by_mode[mode]
                rows.append([f"{names.get(code, code)} ({m['n']} q)" if first else "", mode, f3(m["hit@1"]),
                             f3(m["hit@10"]), f3(m["mrr@10"]),
                             f"{by_mode['hybrid_ge_max_mrr']} / {by_mode['hybrid_ge_max_hit10']}" if first else ""])
                first = False
        print_table(["language", "mode", "hit@1", "hit@10", "MRR@10", "hybrid >= max(dense, lexical): MRR@10 / hit@10"], rows)
        if c["unanswerable"]:
            print(f"{len(c['unanswerable'])} questions whose quote is in no chunk (counted as misses)")
