"""Part latency: retrieve calls per mode, cold and warm, one client and several; and the suite other parts reuse."""

from __future__ import annotations

import itertools
import json
import statistics
import threading
import time
from collections import Counter

import httpx

from common.beir import Msmarco
from common.report import log, ms, print_table
from common.search import RETRIEVE, retrieve, retrieve_body, usable_modes
from common.server import Target, client
from common.stats import pct
from retrieval_parts.msmarco import build_msmarco_workspace


class QueryStream:
    """Query texts: warm (the fixed list, cycled) or cold (each text distinct: ' #<n>' appended)."""

    def __init__(self, queries: list[str], nonce: str):
        self.queries = queries
        self.nonce = nonce
        self.counter = itertools.count()
        self.lock = threading.Lock()

    def get(self, i: int, cold: bool) -> str:
        q = self.queries[i % len(self.queries)]
        if not cold:
            return q
        with self.lock:
            n = next(self.counter)
        return f"{q} #{self.nonce}{n}"


def timed_requests(args, url: str | list[str], key: str, stream: QueryStream, mode: str, cold: bool, n: int,
                   clients: int) -> dict:
    """`n` retrievals by `clients` threads; with several URLs (replicas), client w uses url[w % len(url)]."""
    urls = [url] if isinstance(url, str) else list(url)
    records: list[dict] = []
    errors: Counter = Counter()
    samples: list[str] = []
    lock = threading.Lock()
    counter = itertools.count()
    barrier = threading.Barrier(clients + 1)

    def worker(w: int) -> None:
        offset = w * 7
        with client(urls[w % len(urls)], key, timeout=args.request_timeout) as http:
            http.get("/health")  # open the connection before the clock starts
            barrier.wait()
            while True:
                i = next(counter)
                if i >= n:
                    return
                body = retrieve_body(args, stream.get(i + offset, cold), mode)
                started = time.perf_counter()
                try:
                    response = http.post(RETRIEVE, json=body)
                except httpx.HTTPError as exc:
                    with lock:
                        errors[type(exc).__name__] += 1
                        if len(samples) < 3:
                            samples.append(str(exc))
                    continue
                elapsed = time.perf_counter() - started
                if response.status_code != 200:
                    with lock:
                        errors[str(response.status_code)] += 1
                        if len(samples) < 3:
                            samples.append(response.text[:300])
                    continue
                data = response.json()
                with lock:
                    records.append({"secs": elapsed, "timings": data.get("timings_ms"),
                                    "rag_latency_secs": data.get("rag_latency_secs"),
                                    "skipped": data.get("skipped") or [], "chunks": len(data.get("chunks", []))})

    threads = [threading.Thread(target=worker, args=(w,), daemon=True) for w in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    started = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    lat = [1000 * r["secs"] for r in records]
    timings = [r["timings"] for r in records if r["timings"]]
    server_total = [t["total"] for t in timings if t.get("total") is not None] or \
        [1000 * r["rag_latency_secs"] for r in records if r["rag_latency_secs"] is not None]
    embed = [t["embed"] for t in timings if t.get("embed") is not None]
    stages = {s: pct([t[s] for t in timings if t.get(s) is not None], 50) for s in ("embed", "dense", "lexical", "fuse", "context", "total")}
    skipped = Counter(s if isinstance(s, str) else json.dumps(s) for r in records for s in r["skipped"])
    return {
        "mode": mode, "cache": "cold" if cold else "warm", "clients": clients, "requests": n, "ok": len(records),
        "errors": dict(errors), "error_samples": samples, "wall_secs": wall, "per_sec": len(records) / wall if wall else None,
        "p50_ms": pct(lat, 50), "p90_ms": pct(lat, 90), "p99_ms": pct(lat, 99), "max_ms": max(lat) if lat else None,
        "server_p50_ms": pct(server_total, 50), "server_p99_ms": pct(server_total, 99),
        "server_source": "timings_ms.total" if timings else "rag_latency_secs",
        "embed_p50_ms": pct(embed, 50), "embed_p99_ms": pct(embed, 99),
        "embed_share": (sum(embed) / sum(t["total"] for t in timings if t.get("embed") is not None and t.get("total"))
                        if embed and any(t.get("total") for t in timings) else None),
        "stage_p50_ms": stages if timings else None,
        "skipped": dict(skipped), "responses_with_skipped": sum(1 for r in records if r["skipped"]),
        "mean_chunks": statistics.fmean(r["chunks"] for r in records) if records else None,
    }


def latency_suite(args, url: str, key: str, queries: list[str], label: str, nonce: str) -> dict:
    modes, skipped = usable_modes(args, url, key)
    stream = QueryStream(queries, nonce)
    rows = []
    errors = {}
    for mode in modes:
        try:
            for cache in ("cold", "warm"):
                if cache == "warm":
                    # every query text asked once in this mode right before: cached (the server's query cache is
                    # an LRU of 1,024 texts, which the cold runs' distinct texts would have pushed them out of)
                    with client(url, key) as http:
                        for q in queries:
                            retrieve(http, retrieve_body(args, q, mode))
                for clients in (1, args.concurrency):
                    log(f"latency {label}: mode {mode}, {cache}, {clients} client(s), {args.latency_requests} requests")
                    row = timed_requests(args, url, key, stream, mode, cache == "cold", args.latency_requests, clients)
                    rows.append(row)
                    log(f"  p50 {ms(row['p50_ms'])} ms, p99 {ms(row['p99_ms'])} ms, {row['per_sec']:.1f}/s"
                        + (f", errors {row['errors']}" if row["errors"] else ""))
        except Exception as exc:  # noqa: BLE001
            errors[mode] = f"{type(exc).__name__}: {exc}"
            log(f"  mode {mode} failed: {errors[mode]}")
    # The part of latency that is query embedding, where the server does not report it: cold - warm p50.
    estimate = {}
    for mode in modes:
        for clients in (1, args.concurrency):
            c = next((r for r in rows if r["mode"] == mode and r["cache"] == "cold" and r["clients"] == clients), None)
            w = next((r for r in rows if r["mode"] == mode and r["cache"] == "warm" and r["clients"] == clients), None)
            if c and w and c["p50_ms"] is not None and w["p50_ms"] is not None:
                estimate[f"{mode}/{clients}"] = c["p50_ms"] - w["p50_ms"]
    return {"workspace": label, "rows": rows, "modes_skipped": skipped, "mode_errors": errors,
            "embed_estimate_cold_minus_warm_p50_ms": estimate}


def print_latency(r: dict, title: str) -> None:
    print(f"\n== {title} ==")
    rows = []
    for x in r["rows"]:
        rows.append([x["mode"], x["cache"], str(x["clients"]), f"{x['ok']}/{x['requests']}", ms(x["p50_ms"]), ms(x["p99_ms"]),
                     f"{x['per_sec']:.1f}" if x["per_sec"] else "-", ms(x["server_p50_ms"]), ms(x["embed_p50_ms"]),
                     f"{100 * x['embed_share']:.0f}%" if x["embed_share"] is not None else "-",
                     str(sum(x["errors"].values())) if x["errors"] else "0"])
    print_table(["mode", "cache", "clients", "ok", "p50 ms", "p99 ms", "req/s", "server p50", "embed p50", "embed share",
                 "errors"], rows)
    src = {x["server_source"] for x in r["rows"]}
    print(f"client-side latency over HTTP; 'server p50' from {', '.join(sorted(src)) or '-'}; 'embed' from "
          f"timings_ms.embed (- when the server does not report it).")
    if r["embed_estimate_cold_minus_warm_p50_ms"]:
        print("query embedding estimated as cold p50 - warm p50 (ms): "
              + ", ".join(f"{k} {v:.1f}" for k, v in r["embed_estimate_cold_minus_warm_p50_ms"].items()))
    for x in r["rows"]:
        if x["stage_p50_ms"]:
            print(f"  {x['mode']}/{x['cache']}/{x['clients']}: stage p50 ms "
                  + ", ".join(f"{k} {ms(v)}" for k, v in x["stage_p50_ms"].items()))
        if x["mean_chunks"] is not None and x["mean_chunks"] < 1:
            print(f"  {x['mode']}/{x['cache']}/{x['clients']}: WARNING {x['mean_chunks']:.2f} chunks per response on average")
        if x["responses_with_skipped"]:
            print(f"  {x['mode']}/{x['cache']}/{x['clients']}: {x['responses_with_skipped']} responses with skipped "
                  f"stages {x['skipped']}")
        for s in x["error_samples"]:
            print(f"  {x['mode']}/{x['cache']}/{x['clients']} error: {s}")
    for mode, why in r["modes_skipped"].items():
        print(f"{mode}: {why}")
    for mode, err in r["mode_errors"].items():
        print(f"{mode}: FAILED {err}")


def part_latency(args, target: Target, ms: Msmarco, state: dict) -> dict:
    ws = build_msmarco_workspace(args, target, ms, state)
    result = latency_suite(args, target.url, ws["key"], [q["text"] for q in ms.queries], "msmarco-5k",
                           f"{target.run_tag}m")
    result["chunks"] = ws["indexing"]["chunks"]
    return result
