"""Latency added by the agent-runtime endpoints (issue 18) over kb's plain retrieval call.

One real `kb serve` (bench/common/server.py) holds --docs msmarco-5k passages (default 2,000, in one
folder). In one run, interleaved (each round calls every path once, in a shuffled order, one request
at a time), the same kind of cold query goes through:

  (a)  POST /v1/convai/knowledge-base/rag/retrieve   (the plain call)
  (a+) the same with "citations": true               (the speakable citations the MCP and Dify answers carry)
  (af) the same with "folder_ids": [the folder]      (the scope an agent's folder locator resolves to)
  (b)  POST /v1/convai/agents/{id}/rag/retrieve      (an agent whose knowledge base is the folder, RAG on)
  (c)  POST /retrieval                               (Dify's external knowledge API, knowledge_id = workspace id)
  (d)  MCP tools/call search_knowledge_base          (streamable HTTP at /mcp, the official `mcp` client, one
                                                      long-lived session)

Every call asks for 10 results, hybrid search, no distance cut (max_vector_distance 2.0; Dify:
score_threshold 0). Queries are the 50 msmarco queries, each with a number appended ("... (137)"),
every text used once in the whole run, so kb's query-embedding cache never hits: every call embeds
its query. All clients are httpx2.AsyncClient on one event loop in this process (the MCP SDK's
transport is httpx2). Latency is the client's wall time from sending the request to having the parsed
answer. Printed: p50 / p90 / p99 per path, and for each path its added latency over (a): the p50
difference, the p50 ratio, and the median of the per-round differences (the two calls of a round run
back to back, so the machine's load is nearly the same for both). Run:

    cd /work/wt18b && PYTHONPATH=$PWD HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false \\
        nice -n 5 /work/main/.venv/bin/python bench/runtimes_latency.py [--docs 2000] [--rounds 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import httpx2
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH), str(BENCH.parent)]

from common import DEFAULT_CORPUS, REPO  # noqa: E402
from common.beir import load_msmarco  # noqa: E402
from common.documents import wait_indexed  # noqa: E402
from common.report import loadavg, log, ms, print_table  # noqa: E402
from common.server import SpawnedServer, client, kb_command  # noqa: E402
from common.stats import pct  # noqa: E402

KB = "/v1/convai/knowledge-base"
TOP_K = 10
PATHS = ("(a) kb retrieve", "(a+) kb retrieve, citations", "(af) kb retrieve, folder_ids", "(b) agent retrieve",
         "(c) Dify /retrieval", "(d) MCP search_knowledge_base")


def create_workspace(server: SpawnedServer, name: str) -> tuple[str, str]:
    """(workspace id, API key) from `kb workspace create`."""
    cmd = kb_command() + ["workspace", "create", name, "--tier", "enterprise", "--min-rag-document-bytes", "0",
                          "--data-dir", str(server.data_dir)]
    out = subprocess.run(cmd, cwd=REPO, env=server.env, capture_output=True, text=True, timeout=300, check=True)
    created = json.loads(out.stdout.strip().split("\n")[-1])
    return created["workspace_id"], created["api_key"]


def upload(url: str, key: str, passages: list[dict], folder: str, clients: int = 4) -> list[str]:
    def one(chunk: list[dict]) -> list[str]:
        ids = []
        with client(url, key, timeout=300) as http:
            for p in chunk:
                response = http.post(f"{KB}/text", json={"text": p["text"], "name": f"msmarco {p['_id']}",
                                                          "parent_folder_id": folder})
                response.raise_for_status()
                ids.append(response.json()["id"])
        return ids

    chunks = [passages[i::clients] for i in range(clients)]
    with ThreadPoolExecutor(clients) as pool:
        return [i for ids in pool.map(one, chunks) for i in ids]


async def measure(url: str, key: str, workspace_id: str, agent: str, folder: str, queries: list[str],
                  rounds: int, warmup: int, seed: int) -> dict[str, list[dict]]:
    """Per path: [{"ms", "results", "round"}] of the measured rounds."""
    rng = random.Random(seed)
    texts = iter(f"{queries[n % len(queries)]} ({n})" for n in range(10 ** 9))
    out: dict[str, list[dict]] = {p: [] for p in PATHS}
    timings: dict[bool, list[dict]] = {}  # the server's timings_ms of (a) and (a+) (False) and of (af) (True)
    async with httpx2.AsyncClient(base_url=url, headers={"xi-api-key": key}, timeout=120) as http, \
            httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=120) as mcp_http, \
            streamable_http_client(url + "/mcp", http_client=mcp_http) as (read, write), \
            ClientSession(read, write) as session:
        await session.initialize()

        async def plain(query: str, citations: bool = False, folder_ids: list[str] | None = None) -> int:
            response = await http.post(f"{KB}/rag/retrieve", json={
                "query": query, "max_vector_distance": 2.0, "max_retrieved_rag_chunks_count": TOP_K,
                "citations": citations, "folder_ids": folder_ids})
            response.raise_for_status()
            answer = response.json()
            timings.setdefault(bool(folder_ids), []).append(answer.get("timings_ms") or {})
            return len(answer["chunks"])

        async def agent_call(query: str) -> int:
            response = await http.post(f"/v1/convai/agents/{agent}/rag/retrieve", json={"query": query})
            response.raise_for_status()
            return len(response.json()["chunks"])

        async def dify(query: str) -> int:
            response = await http.post("/retrieval", headers={"Authorization": f"Bearer {key}"}, json={
                "knowledge_id": workspace_id, "query": query,
                "retrieval_setting": {"top_k": TOP_K, "score_threshold": 0.0}})
            response.raise_for_status()
            return len(response.json()["records"])

        async def mcp_call(query: str) -> int:
            result = await session.call_tool("search_knowledge_base", {
                "query": query, "max_results": TOP_K, "max_vector_distance": 2.0})
            if result.is_error:
                raise RuntimeError(f"MCP tool error: {result.content}")
            return len(result.structured_content["results"])

        calls = {PATHS[0]: plain, PATHS[1]: lambda q: plain(q, True), PATHS[2]: lambda q: plain(q, False, [folder]),
                 PATHS[3]: agent_call, PATHS[4]: dify, PATHS[5]: mcp_call}
        for r in range(warmup + rounds):
            order = list(PATHS)
            rng.shuffle(order)
            for path in order:
                query = next(texts)
                started = time.perf_counter()
                n = await calls[path](query)
                elapsed = (time.perf_counter() - started) * 1000
                if r >= warmup:
                    out[path].append({"ms": elapsed, "results": n, "round": r})
            if r and r % 50 == 0:
                log(f"  round {r}/{warmup + rounds}")
    out["timings"] = timings  # type: ignore[assignment]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="the shared corpus folder")
    parser.add_argument("--docs", type=int, default=2000, help="msmarco passages uploaded (of 5,000)")
    parser.add_argument("--rounds", type=int, default=200, help="measured rounds (each calls every path once)")
    parser.add_argument("--warmup", type=int, default=10, help="rounds run first and not counted")
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument("--json", type=Path, default=None, help="write every latency here")
    args = parser.parse_args()

    passages, queries, _ = load_msmarco(args.corpus)
    passages = passages[:args.docs]
    load_before = loadavg()
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="kb-runtimes-"))
    server = SpawnedServer(root, "runtimes")
    try:
        workspace_id, key = create_workspace(server, "runtimes")
        with client(server.url, key) as http:
            response = http.post(f"{KB}/folder", json={"name": "msmarco"})
            response.raise_for_status()
            folder = response.json()["id"]
        ids = upload(server.url, key, passages, folder)
        waited = wait_indexed(server.url, key, ids, timeout=3600, what="msmarco passages")
        not_ok = sum(s["status"] != "succeeded" for s in waited["docs"].values())
        if waited["timed_out"] or not_ok:
            raise SystemExit(f"indexing: timed out {waited['timed_out']}, {not_ok} not succeeded")
        chunks = sum(s["chunks"] for s in waited["docs"].values())
        indexed_secs = time.monotonic() - started
        log(f"{len(ids)} passages indexed ({chunks} chunks) in {indexed_secs:.0f} s")
        with client(server.url, key) as http:
            response = http.post("/v1/convai/agents/create", json={"name": "latency", "conversation_config": {
                "agent": {"prompt": {"knowledge_base": [{"type": "folder", "name": "msmarco", "id": folder}], "rag": {
                    "enabled": True, "max_vector_distance": 2.0, "max_retrieved_rag_chunks_count": TOP_K}}}}})
            response.raise_for_status()
            agent = response.json()["agent_id"]
        load_measure = loadavg()
        results = asyncio.run(measure(server.url, key, workspace_id, agent, folder, [q["text"] for q in queries],
                                      args.rounds, args.warmup, args.seed))
        timings = results.pop("timings")
        log_scan = server.scan_log()
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)

    base = {r["round"]: r["ms"] for r in results[PATHS[0]]}
    p50_base = statistics.median(base.values())
    print(f"\nAgent-runtime paths over kb's plain retrieval: {len(ids)} msmarco passages ({chunks} chunks), "
          f"{args.rounds} interleaved rounds after {args.warmup} warm-up rounds, one request at a time, every "
          f"query text new (no embedding-cache hit), top {TOP_K}, hybrid, no distance cut")
    print(f"load average: before {load_before}, when measuring began {load_measure}, after {loadavg()}; "
          f"{time.monotonic() - started:.0f} s in all; server log: {log_scan['tracebacks']} tracebacks\n")
    rows = []
    for path in PATHS:
        values = [r["ms"] for r in results[path]]
        p50 = statistics.median(values)
        paired = statistics.median(r["ms"] - base[r["round"]] for r in results[path])
        counts = sorted({r["results"] for r in results[path]})
        rows.append([path, str(len(values)), ms(p50), ms(pct(values, 90)), ms(pct(values, 99)),
                     "-" if path == PATHS[0] else f"{p50 - p50_base:+.1f}",
                     "-" if path == PATHS[0] else f"{p50 / p50_base:.2f}",
                     "-" if path == PATHS[0] else f"{paired:+.1f}",
                     ",".join(map(str, counts))])
    print_table(["path", "n", "p50 ms", "p90 ms", "p99 ms", "p50 - (a)", "p50 / (a)", "median paired - (a)",
                 "results"], rows)
    steps = ["embed", "filter", "dense", "lexical", "fuse", "total"]
    print("\nserver-side timings_ms of the plain call (median ms of each step, warm-up included)")
    print_table(["scope"] + steps, [
        [label] + [ms(statistics.median(t.get(step, 0.0) for t in timings[scoped])) for step in steps]
        for label, scoped in (("(a), (a+): whole workspace", False), ("(af): folder_ids", True))])
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"results": results, "timings": {str(k): v for k, v in timings.items()}, "docs": len(ids), "chunks": chunks,
                                         "load_before": load_before, "load_measure": load_measure}, indent=1))


if __name__ == "__main__":
    main()
