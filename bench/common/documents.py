"""Uploading documents over HTTP, waiting for their indexes, and the indexing throughput they show."""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

from .report import log
from .server import client

KB = "/v1/convai/knowledge-base"
TERMINAL = ("succeeded", "failed", "rag_limit_exceeded", "document_too_small")

def upload_all(url: str, key: str, items: list[dict], clients: int, what: str) -> dict:
    """Upload `items` ({"name", "text"} or {"name", "path"}) with `clients` threads; ids in item order."""
    ids: list[str | None] = [None] * len(items)
    sent_at: list[float] = [0.0] * len(items)
    errors: Counter = Counter()
    samples: list[str] = []
    counter = itertools.count()
    lock = threading.Lock()
    done = [0]

    def one(http: httpx.Client, item: dict) -> httpx.Response:
        if "text" in item:
            body = {"text": item["text"], "name": item["name"]}
            if "attributes" in item:
                body["attributes"] = item["attributes"]
            return http.post(f"{KB}/text", json=body)
        data = Path(item["path"]).read_bytes()
        return http.post(f"{KB}/file", files={"file": (Path(item["path"]).name, data)}, data={"name": item["name"]})

    def worker() -> None:
        with client(url, key, timeout=300) as http:
            while True:
                i = next(counter)
                if i >= len(items):
                    return
                for attempt in range(3):
                    sent_at[i] = time.monotonic()
                    try:
                        response = one(http, items[i])
                    except httpx.HTTPError as exc:
                        kind, detail = type(exc).__name__, str(exc)
                    else:
                        if response.status_code == 200:
                            ids[i] = response.json()["id"]
                            break
                        kind, detail = str(response.status_code), response.text[:300]
                        if response.status_code < 500:
                            attempt = 99  # a 4xx will not change: no retry
                    if attempt >= 2:
                        with lock:
                            errors[kind] += 1
                            if len(samples) < 5:
                                samples.append(f"{items[i]['name']}: {kind} {detail}")
                        break
                    time.sleep(0.5)
                with lock:
                    done[0] += 1

    started = time.monotonic()
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    last_log = started
    while any(t.is_alive() for t in threads):
        time.sleep(0.5)
        if time.monotonic() - last_log > 15:
            last_log = time.monotonic()
            log(f"  uploading {what}: {done[0]}/{len(items)} ({done[0] / (last_log - started):.1f}/s)")
    for t in threads:
        t.join()
    finished = time.monotonic()
    return {"ids": ids, "first_sent": min((s for s in sent_at if s), default=started), "last_acked": finished,
            "upload_secs": finished - started, "errors": dict(errors), "error_samples": samples,
            "uploaded": sum(1 for i in ids if i)}


def detect_model(http: httpx.Client, document_id: str) -> str | None:
    response = http.get(f"{KB}/{document_id}/rag-index")
    response.raise_for_status()
    indexes = response.json()["indexes"]
    return indexes[0]["model"] if indexes else None


def read_index_batch(http: httpx.Client, model: str, document_ids: list[str]) -> dict[str, dict | None]:
    """The indexes of up to 100 documents for `model` in one `POST /rag-index` (raises on an error status)."""
    response = http.post(f"{KB}/rag-index", json={"items": [
        {"document_id": d, "model": model, "create_if_missing": False} for d in document_ids]})
    response.raise_for_status()
    return {d: r.get("data") for d, r in response.json().items()}


def index_chunks(data: dict) -> int:
    return int(data.get("chunks_embedded") or 0) + int(data.get("chunks_reused") or 0)


def wait_indexed(url: str, key: str, ids: list[str], timeout: float, what: str, poll_secs: float = 0.5) -> dict:
    """Poll the indexes of `ids` (oldest first, 100 per `POST /rag-index`) until all are terminal.

    Returns {id: {"status", "seen", "chunks", "error"}}, plus "timed_out" and "model". `seen` is the
    monotonic time of the poll that first saw the index terminal (late by up to one poll round)."""
    ids = [i for i in ids if i]
    state: dict[str, dict] = {}
    if not ids:
        return {"docs": state, "timed_out": False, "model": None}
    deadline = time.monotonic() + timeout
    with client(url, key) as http:
        model = None
        while model is None:
            model = detect_model(http, ids[0])
            if model is None:
                time.sleep(poll_secs)
        batch_ok = True
        pending = list(ids)
        last_log = time.monotonic()
        started = last_log
        while pending:
            if time.monotonic() > deadline:
                log(f"  {what}: gave up waiting, {len(pending)} of {len(ids)} indexes not done")
                return {"docs": state, "timed_out": True, "model": model, "pending": len(pending)}
            quiet_batches = 0
            for start in range(0, len(pending), 100):
                batch = pending[start:start + 100]
                results = {}
                if batch_ok:
                    try:
                        results = read_index_batch(http, model, batch)
                    except httpx.HTTPStatusError as exc:
                        batch_ok = False
                        log(f"  batch status read answered {exc.response.status_code}; polling one document at a time")
                if not batch_ok:
                    for d in batch:
                        response = http.get(f"{KB}/{d}/rag-index")
                        indexes = [i for i in response.json().get("indexes", []) if i["model"] == model]
                        results[d] = indexes[0] if indexes else None
                now = time.monotonic()
                newly = 0
                for d, data in results.items():
                    if data and data["status"] in TERMINAL and d not in state:
                        state[d] = {"status": data["status"], "seen": now, "error": data.get("error"),
                                    "chunks": index_chunks(data), "chunks_embedded": int(data.get("chunks_embedded") or 0)}
                        newly += 1
                quiet_batches = 0 if newly else quiet_batches + 1
                if quiet_batches >= 2:
                    break  # jobs run oldest first: later documents are not done either
            pending = [d for d in pending if d not in state]
            if time.monotonic() - last_log > 15:
                last_log = time.monotonic()
                n = len(ids) - len(pending)
                chunks = sum(s["chunks"] for s in state.values())
                log(f"  indexing {what}: {n}/{len(ids)} documents, {chunks} chunks "
                    f"({chunks / (last_log - started):.1f} chunks/s since waiting began)")
            if pending:
                time.sleep(poll_secs)
    return {"docs": state, "timed_out": False, "model": model}


MIN_RATE_SPAN_SECS = 1.0  # shortest span a rate per fifth is computed over: two of wait_indexed's poll rounds


def indexing_report(up: dict, waited: dict, n_items: int) -> dict:
    docs = waited["docs"]
    statuses = Counter(s["status"] for s in docs.values())
    ok = [s for s in docs.values() if s["status"] == "succeeded"]
    chunks = sum(s["chunks"] for s in ok)
    t0, t_up = up["first_sent"], up["last_acked"]
    t_done = max((s["seen"] for s in docs.values()), default=t_up)
    total = max(t_done - t0, 1e-9)
    after = [s for s in ok if s["seen"] > t_up]
    drain = t_done - t_up
    # indexing rate per fifth of the documents, in the order they finished: shows a slowdown as the index grows
    by_time = sorted(ok, key=lambda s: s["seen"])
    quintiles, previous = [], t0
    for q in range(5):
        group = by_time[q * len(by_time) // 5:(q + 1) * len(by_time) // 5]
        if group:
            span = group[-1]["seen"] - previous
            # a fifth seen done within a poll round or two of the previous has no measurable rate (None, not 6e10/s)
            quintiles.append(round(sum(s["chunks"] for s in group) / span, 2) if span >= MIN_RATE_SPAN_SECS else None)
            previous = group[-1]["seen"]
    return {
        "documents": n_items, "uploaded": up["uploaded"], "upload_errors": up["errors"],
        "upload_error_samples": up["error_samples"], "statuses": dict(statuses),
        "failed_samples": [s["error"] for s in docs.values() if s["status"] != "succeeded"][:3],
        "timed_out": waited["timed_out"], "chunks": chunks,
        "chunks_embedded": sum(s["chunks_embedded"] for s in ok),
        "upload_secs": up["upload_secs"], "uploads_per_sec": up["uploaded"] / max(up["upload_secs"], 1e-9),
        "indexed_secs": total, "chunks_per_sec": chunks / total, "docs_per_sec": len(ok) / total,
        "chunks_done_when_uploads_ended": sum(s["chunks"] for s in ok if s["seen"] <= t_up),
        "drain_secs": drain,
        "chunks_per_sec_by_fifth": quintiles,
        # indexing alone (no upload traffic): chunks finished after the last upload / the time after it
        "drain_chunks_per_sec": (sum(s["chunks"] for s in after) / drain) if drain > 2 and len(after) >= 0.05 * len(ok) else None,
        "model": waited["model"],
    }


def index_line(r: dict) -> str:
    drain = (f"; after the last upload {r['drain_chunks_per_sec']:.1f} chunks/s for {r['drain_secs']:.0f} s"
             if r["drain_chunks_per_sec"] else "")
    return (f"{r['uploaded']}/{r['documents']} documents uploaded in {r['upload_secs']:.1f} s "
            f"({r['uploads_per_sec']:.1f}/s); {r['chunks']} chunks indexed {r['indexed_secs']:.1f} s after the first "
            f"upload: {r['chunks_per_sec']:.1f} chunks/s ({r['docs_per_sec']:.1f} docs/s){drain}; "
            f"statuses {r['statuses']}"
            + (f"; chunks/s by fifth of the documents {r['chunks_per_sec_by_fifth']}" if len(r.get("chunks_per_sec_by_fifth") or []) == 5 else "")
            + (f"; upload errors {r['upload_errors']}" if r["upload_errors"] else "")
            + ("; TIMED OUT" if r["timed_out"] else "")
            + ("; WARNING: documents under the workspace's min_rag_document_bytes were not indexed "
               "(`kb workspace set WS --min-rag-document-bytes 0`)" if r["statuses"].get("document_too_small") else ""))


def delete_documents(url: str, key: str, ids: list[str]) -> None:
    ids = [i for i in ids if i]
    with client(url, key) as http:
        for start in range(0, len(ids), 100):
            http.post(f"{KB}/bulk-delete", json={"document_ids": ids[start:start + 100], "force": True})


def ensure_empty(url: str, key: str) -> None:
    with client(url, key) as http:
        response = http.get(KB, params={"page_size": 1})
        response.raise_for_status()
        if response.json().get("documents"):
            raise RuntimeError("the --api-key workspace is not empty: the figures would mix in its documents")


def chunks_of(http: httpx.Client, document_id: str) -> list[str]:
    texts, cursor = [], None
    while True:
        params = {"page_size": 1000, **({"cursor": cursor} if cursor else {})}
        response = http.get(f"{KB}/{document_id}/chunks", params=params)
        response.raise_for_status()
        data = response.json()
        texts += [c.get("content") or c.get("text") or "" for c in data["chunks"]]
        cursor = data.get("next_cursor")
        if not cursor:
            return texts
