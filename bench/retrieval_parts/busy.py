"""Part busy: retrieval latency while a large document is being indexed on the same cores."""

from __future__ import annotations

import time

from common.beir import Msmarco
from common.documents import delete_documents
from common.report import log, ms, print_table
from common.search import retrieve, retrieve_body
from common.server import Target, client
from common.stats import pct
from retrieval_parts.latency import QueryStream, timed_requests
from retrieval_parts.msmarco import build_msmarco_workspace


def part_busy(args, target: Target, msmarco: Msmarco, state: dict) -> dict:
    ws = build_msmarco_workspace(args, target, msmarco, state)
    key, queries = ws["key"], [q["text"] for q in msmarco.queries]
    stream = QueryStream(queries, f"{target.run_tag}b")
    idle = timed_requests(args, target.url, key, stream, "hybrid", True, 200, 1)
    path = args.corpus / args.busy_file
    latencies: list[float] = []
    embed: list[float] = []
    with client(target.url, key, timeout=args.request_timeout) as http:
        started = time.perf_counter()
        response = http.post("/v1/convai/knowledge-base/file", files={"file": (path.name, path.read_bytes())})
        response.raise_for_status()
        document_id = response.json()["id"]
        upload_secs = time.perf_counter() - started
        status, i, last_poll = "created", 0, 0.0
        while status not in ("succeeded", "failed") and time.perf_counter() - started < args.index_timeout:
            if time.perf_counter() - last_poll > 0.5:
                indexes = http.get(f"/v1/convai/knowledge-base/{document_id}/rag-index").json()["indexes"]
                status, last_poll = (indexes[0]["status"] if indexes else "created"), time.perf_counter()
                progress = indexes[0].get("progress_percentage") if indexes else None
            t0 = time.perf_counter()
            data = retrieve(http, retrieve_body(args, stream.get(i, True), "hybrid"))
            latencies.append(1000 * (time.perf_counter() - t0))
            if (data.get("timings_ms") or {}).get("embed") is not None:
                embed.append(data["timings_ms"]["embed"])
            i += 1
        indexing_secs = time.perf_counter() - started
        delete_documents(target.url, key, [document_id])
    log(f"busy: {len(latencies)} requests while indexing {path.name} ({status}, {indexing_secs:.0f} s): "
        f"p50 {ms(pct(latencies, 50))} ms, p99 {ms(pct(latencies, 99))} ms")
    return {
        "file": args.busy_file, "status": status, "upload_secs": upload_secs, "indexing_secs": indexing_secs,
        "last_progress": progress, "requests": len(latencies),
        "p50_ms": pct(latencies, 50), "p99_ms": pct(latencies, 99), "max_ms": max(latencies) if latencies else None,
        "embed_p50_ms": pct(embed, 50), "embed_p99_ms": pct(embed, 99),
        "idle_p50_ms": idle["p50_ms"], "idle_p99_ms": idle["p99_ms"], "idle_embed_p50_ms": idle["embed_p50_ms"],
    }


def print_busy(r: dict) -> None:
    print(f"\n== retrieval while {r['file']} is being indexed ({r['status']} after {r['indexing_secs']:.0f} s) ==")
    print_table(["server", "requests", "p50 ms", "p99 ms", "max ms", "embed p50 ms"], [
        ["idle", "200", ms(r["idle_p50_ms"]), ms(r["idle_p99_ms"]), "-", ms(r["idle_embed_p50_ms"])],
        ["indexing", str(r["requests"]), ms(r["p50_ms"]), ms(r["p99_ms"]), ms(r["max_ms"]), ms(r["embed_p50_ms"])],
    ])
    print("one client, cold hybrid queries back to back; target p99 <= 50 ms while indexing")
