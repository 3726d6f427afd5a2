"""Follow-up questions (issue 18): does sending the conversation's recent `messages` to agent retrieval
find the document a short follow-up ("and on Sundays?") is about, and does it hurt a new question?

A real `kb serve` (bench/common/server.py) gets the follow-up corpus (bench/data/followups: 14
help-centre pages written for it, plus the six support6 pages and the 315 entity abstracts as
confusers, 335 documents); one agent names them all, RAG enabled, no distance cut
(`max_vector_distance` 2.0), 20 chunks a call. For each conversation of
bench/data/followups/conversations.jsonl the last user message is retrieved through
POST /v1/convai/agents/{id}/rag/retrieve in several ways:

- last:        `query` = the last message alone, no `messages` (what an agent did before issue 18)
- short (kb):  `query` = the last message, `messages` = the whole conversation: kb's default and only
               strategy over the API (kb.services.conversation, "short": the previous user turn is put
               before the query when the query has at most 8 words)
- concat:      the previous user turn always put before the query (strategy "concat"; the API does not
               let a caller choose a strategy, so the client sends the text `contextual_query(...,
               "concat")` builds as `query`, without `messages`: the same text is searched)
- all user turns: every user turn of the conversation joined (not a kb strategy: what a client could
               send itself; shown for the three-turn chains)

Documents are ranked by their best chunk; the expected document's rank gives hit@1, MRR@10 and
recall@5, printed per approach for the three kinds of conversation: follow-ups (the question before
names the document), chains (two follow-ups in a row: the previous user turn is itself a follow-up)
and controls (the last message is a complete new question about another document). Run:

    cd /work/wt18b && PYTHONPATH=$PWD HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false \\
        nice -n 5 /work/main/.venv/bin/python bench/followups.py [--json out.json] [--show-misses]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import httpx

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH), str(BENCH.parent)]

from common.documents import upload_all, wait_indexed  # noqa: E402
from common.metrics import dedupe  # noqa: E402
from common.report import loadavg, log, print_table  # noqa: E402
from common.server import SpawnedServer, client  # noqa: E402
from kb.services.conversation import Message, contextual_query  # noqa: E402

DATA = BENCH / "data"
CORPORA = [DATA / "followups" / "corpus.jsonl", DATA / "support6" / "corpus.jsonl", DATA / "entities" / "corpus.jsonl"]
CONVERSATIONS = DATA / "followups" / "conversations.jsonl"
KINDS = ("followup", "chain", "control")
APPROACHES = ("last", "short (kb)", "concat", "all user turns")
CHUNKS = 20


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]


def request_body(approach: str, conversation: dict) -> dict:
    messages = conversation["messages"]
    last = messages[-1]["content"]
    if approach == "last":
        return {"query": last}
    if approach == "short (kb)":
        return {"query": last, "messages": messages}
    if approach == "concat":
        return {"query": contextual_query(last, [Message(m["role"], m["content"]) for m in messages], "concat")}
    return {"query": "\n".join(m["content"] for m in messages if m["role"] == "user")}


def rank_of(ranked: list[str], expected: list[str], k: int) -> int | None:
    for rank, doc in enumerate(ranked[:k], 1):
        if doc in expected:
            return rank
    return None


def scores(rows: list[dict]) -> dict:
    n = len(rows)
    return {
        "n": n,
        "hit@1": sum(r["rank"] == 1 for r in rows) / n,
        "mrr@10": sum(1 / r["rank"] for r in rows if r["rank"] and r["rank"] <= 10) / n,
        "recall@5": sum(len(set(r["ranked"][:5]) & set(r["expected"])) / len(r["expected"]) for r in rows) / n,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, default=None, help="write every figure (per conversation too) here")
    parser.add_argument("--show-misses", action="store_true", help="print the conversations whose top document is wrong")
    parser.add_argument("--keep", action="store_true", help="keep the server's data dir")
    args = parser.parse_args()

    documents = [d for path in CORPORA for d in read_jsonl(path)]
    conversations = read_jsonl(CONVERSATIONS)
    known = {d["_id"] for d in documents}
    missing = {e for c in conversations for e in c["expected_documents"]} - known
    if missing:
        raise SystemExit(f"expected documents not in the corpus: {sorted(missing)}")
    load_before = loadavg()
    started = time.monotonic()

    root = Path(tempfile.mkdtemp(prefix="kb-followups-"))
    server = SpawnedServer(root, "followups")
    try:
        key = server.create_workspace("followups")
        items = [{"name": d["title"], "text": d["text"]} for d in documents]
        up = upload_all(server.url, key, items, clients=4, what="follow-up corpus")
        if up["errors"]:
            raise SystemExit(f"upload errors: {up['errors']} {up['error_samples']}")
        waited = wait_indexed(server.url, key, up["ids"], timeout=1800, what="follow-up corpus")
        failed = [s for s in waited["docs"].values() if s["status"] != "succeeded"]
        if waited["timed_out"] or failed:
            raise SystemExit(f"indexing: timed out {waited['timed_out']}, not succeeded {len(failed)}")
        source_of = dict(zip(up["ids"], (d["_id"] for d in documents)))
        log(f"{len(documents)} documents indexed ({sum(s['chunks'] for s in waited['docs'].values())} chunks), "
            f"model {waited['model']}")

        with client(server.url, key) as http:
            locators = [{"type": "text", "name": d["title"], "id": i} for d, i in zip(documents, up["ids"])]
            response = http.post("/v1/convai/agents/create", json={"name": "follow-ups", "conversation_config": {
                "agent": {"prompt": {"knowledge_base": locators, "rag": {
                    "enabled": True, "max_vector_distance": 2.0, "max_retrieved_rag_chunks_count": CHUNKS}}}}})
            response.raise_for_status()
            agent = response.json()["agent_id"]
            rows: dict[str, list[dict]] = {a: [] for a in APPROACHES}
            strategy_mismatch, short_concatenated = [], 0
            for conversation in conversations:
                for approach in APPROACHES:
                    body = request_body(approach, conversation)
                    response = http.post(f"/v1/convai/agents/{agent}/rag/retrieve", json=body)
                    response.raise_for_status()
                    out = response.json()
                    searched = out["rag_retrieval_info"]["retrieval_query"]
                    if approach == "short (kb)":
                        msgs = [Message(m["role"], m["content"]) for m in conversation["messages"]]
                        if searched != contextual_query(body["query"], msgs, "short"):
                            strategy_mismatch.append(conversation["id"])
                        short_concatenated += searched != body["query"].strip()
                    ranked = dedupe([source_of[c["document_id"]] for c in out["chunks"]])
                    rows[approach].append({
                        "id": conversation["id"], "kind": conversation["kind"], "expected": conversation["expected_documents"],
                        "rank": rank_of(ranked, conversation["expected_documents"], CHUNKS), "ranked": ranked[:10],
                        "retrieval_query": searched,
                    })
        log_scan = server.scan_log()
    finally:
        server.stop()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)

    counts = {k: sum(c["kind"] == k for c in conversations) for k in KINDS}
    print(f"\nFollow-up questions: {len(conversations)} conversations ({counts['followup']} follow-ups, "
          f"{counts['chain']} chains, {counts['control']} controls), {len(documents)} documents; agent retrieval, "
          f"hybrid, no distance cut, documents ranked by their best of {CHUNKS} chunks")
    print(f"load average before {load_before}, after {loadavg()}; {time.monotonic() - started:.0f} s; "
          f"server log: {log_scan['tracebacks']} tracebacks")
    print(f"'short (kb)' put the previous user turn before the query in {short_concatenated} of "
          f"{len(conversations)} conversations; retrieval_query differing from contextual_query(..., 'short'): "
          f"{len(strategy_mismatch)} {strategy_mismatch or ''}\n")
    summary: dict[str, dict] = {}
    for kind in KINDS:
        table = []
        for approach in APPROACHES:
            s = scores([r for r in rows[approach] if r["kind"] == kind])
            summary.setdefault(kind, {})[approach] = s
            table.append([approach, str(s["n"]), f"{s['hit@1']:.3f}", f"{s['mrr@10']:.3f}", f"{s['recall@5']:.3f}"])
        print(f"{kind}s")
        print_table(["approach", "n", "hit@1", "MRR@10", "recall@5"], table)
        print()
    if args.show_misses:
        print("conversations whose top document is not the expected one (approach: top 3)")
        for i, conversation in enumerate(conversations):
            wrong = {a: rows[a][i] for a in APPROACHES if rows[a][i]["rank"] != 1}
            if wrong:
                print(f"  {conversation['kind']:8} {conversation['id']:28} expected {conversation['expected_documents'][0]}: "
                      + "; ".join(f"{a}: {', '.join(r['ranked'][:3])}" for a, r in wrong.items()))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"summary": summary, "rows": rows, "load_before": load_before},
                                        indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
