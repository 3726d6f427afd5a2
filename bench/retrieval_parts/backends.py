"""Part backends: indexing throughput per KB_EMBED_BACKEND, against plain sentence-transformers in process."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections import Counter

from common import REPO
from common.beir import Msmarco
from common.documents import KB, TERMINAL, detect_model, index_chunks, index_line, indexing_report, read_index_batch, upload_all, wait_indexed
from common.report import loadavg, log, print_table
from common.server import SpawnedServer, Target, client, kb_command, server_env


def backend_available(backend: str) -> tuple[bool, str]:
    """Does this kb know KB_EMBED_BACKEND=backend? Asks `kb config` with it set."""
    out = subprocess.run(kb_command() + ["config"], cwd=REPO, env=server_env({"KB_EMBED_BACKEND": backend}),
                         capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        return False, f"rejected by kb config: {(out.stderr or out.stdout).strip()[-300:]}"
    if "KB_EMBED_BACKEND" not in out.stdout:
        return False, "not available yet (kb config has no KB_EMBED_BACKEND setting)"
    line = next(line for line in out.stdout.split("\n") if line.startswith("KB_EMBED_BACKEND"))
    return backend in line, line.strip()


def part_backends(args, target: Target, ms: Msmarco, state: dict) -> dict:
    if not target.spawned:
        return {"error": "needs the spawned mode (no --url): each backend runs in a fresh server"}
    passages = ms.passages[: args.backend_passages] if args.backend_passages else ms.passages
    if len(passages) == len(ms.passages):
        ms.encode_passages(force_timing=True)  # no server is indexing now (the main one, if any, is idle)
        st_secs = ms.encode_secs
    else:
        model = ms.model()
        texts = [p["text"] for p in passages]
        model.encode(texts[:64], batch_size=32)  # warm-up
        started = time.perf_counter()
        model.encode(texts, batch_size=32)
        st_secs = time.perf_counter() - started
    st_rate = len(passages) / st_secs
    log(f"sentence-transformers in-process: {st_rate:.1f} passages/s on {len(passages)} passages")
    result = {"sentence_transformers": {"passages": len(passages), "secs": st_secs, "per_sec": st_rate,
                                        "loadavg": loadavg()}, "backends": {}}
    for backend in args.backends:
        ok, note = backend_available(backend)
        entry = {"available": ok, "note": note}
        result["backends"][backend] = entry
        if not ok and backend != "torch":
            log(f"backend {backend}: {note}")
            continue
        env = {"KB_EMBED_BACKEND": backend} if ok else {}
        items = [{"name": p["_id"], "text": p["text"]} for p in passages]
        try:
            entry.update(backend_concurrent(args, target, backend, env, items, st_rate))
            entry.update(backend_stored_first(args, target, backend, env, items, st_rate))
        except Exception as exc:  # noqa: BLE001
            entry["error"] = f"{type(exc).__name__}: {exc}"
            log(f"backend {backend} failed: {entry['error']}")
    return result


def backend_concurrent(args, target: Target, backend: str, env: dict[str, str], items: list[dict], st_rate: float) -> dict:
    """Upload every passage to a fresh server and wait for the indexes: uploads and indexing share the CPU."""
    server = SpawnedServer(target.root, f"backend-{backend}", env)
    try:
        key = server.create_workspace(f"bench-backend-{backend}")
        entry = {"loadavg_before": loadavg()}
        up = upload_all(server.url, key, items, args.upload_clients, f"backend {backend}")
        waited = wait_indexed(server.url, key, up["ids"], args.index_timeout, f"backend {backend}")
        report = indexing_report(up, waited, len(items))
        entry.update(loadavg_after=loadavg(), indexing=report, server_log=server.scan_log(),
                     ratio_to_sentence_transformers=report["chunks_per_sec"] / st_rate)
        log(f"backend {backend}: " + index_line(report))
        return entry
    finally:
        server.stop()
        if not args.keep:
            shutil.rmtree(server.data_dir, ignore_errors=True)


def wait_last_indexed(url: str, key: str, document_id: str, timeout: float) -> float:
    """Poll one document's index every 0.1 s; the monotonic time it was first seen done."""
    deadline = time.monotonic() + timeout
    with client(url, key) as http:
        while time.monotonic() < deadline:
            indexes = http.get(f"{KB}/{document_id}/rag-index").json().get("indexes") or []
            if indexes and indexes[0]["status"] in TERMINAL:
                return time.monotonic()
            time.sleep(0.1)
    raise TimeoutError(f"the index of {document_id} was not done within {timeout:.0f} s")


def read_indexes_once(url: str, key: str, ids: list[str]) -> dict[str, dict]:
    """Every document's index status and chunk count, read once (`POST /rag-index`, 100 at a time)."""
    out: dict[str, dict] = {}
    with client(url, key) as http:
        model = detect_model(http, ids[0])
        for start in range(0, len(ids), 100):
            for d, data in read_index_batch(http, model, ids[start:start + 100]).items():
                out[d] = {"status": (data or {}).get("status"), "chunks": index_chunks(data or {})}
    return out


def backend_stored_first(args, target: Target, backend: str, env: dict[str, str], items: list[dict], st_rate: float) -> dict:
    """Indexing alone: the passages are uploaded to a server without indexing workers (`KB_WORKERS=0`:
    stored, their jobs queued), which is stopped; a server with the default workers is started on the
    same data dir and indexes them. Its rate counts from the moment it answers /health (its workers
    start with it), and, for reference, from the moment its process was spawned (model load included).

    Jobs run oldest first, so the script polls only the last document's index (every 0.1 s; polling
    5,000 statuses in rounds took a tenth of the server's CPU), then reads every index once: if any
    is not done yet, it waits for all and counts to the last one seen done."""
    data_dir = target.root / f"data-stored-{backend}"
    uploader = SpawnedServer(target.root, f"stored-{backend}-upload", {**env, "KB_WORKERS": "0"}, data_dir=data_dir)
    try:
        key = uploader.create_workspace(f"bench-stored-{backend}")
        up = upload_all(uploader.url, key, items, args.upload_clients, f"backend {backend} (no workers)")
    finally:
        uploader.stop()
    log(f"backend {backend}: {up['uploaded']} documents stored in {up['upload_secs']:.1f} s "
        f"({up['uploaded'] / max(up['upload_secs'], 1e-9):.1f}/s) by a server without workers")
    indexer = SpawnedServer(target.root, f"stored-{backend}-index", env, data_dir=data_dir)
    try:
        loadavg_before = loadavg()
        ids = [i for i in up["ids"] if i]
        done_at = wait_last_indexed(indexer.url, key, ids[-1], args.index_timeout)
        docs = read_indexes_once(indexer.url, key, ids)
        if any(d["status"] not in TERMINAL for d in docs.values()):  # not all done when the last one was
            waited = wait_indexed(indexer.url, key, ids, args.index_timeout, f"backend {backend} (stored first)", poll_secs=0.2)
            docs, done_at = waited["docs"], max(d["seen"] for d in waited["docs"].values())
        ok = [d for d in docs.values() if d["status"] == "succeeded"]
        chunks = sum(d["chunks"] for d in ok)
        secs = max(done_at - indexer.ready_at, 1e-9)
        result = {
            "chunks": chunks, "statuses": dict(Counter(d["status"] for d in docs.values())),
            "upload_only_secs": up["upload_secs"],
            "uploads_per_sec_without_indexing": up["uploaded"] / max(up["upload_secs"], 1e-9),
            "startup_secs": indexer.ready_at - indexer.spawned_at, "index_secs": secs,
            "chunks_per_sec": chunks / secs,
            "chunks_per_sec_from_spawn": chunks / max(done_at - indexer.spawned_at, 1e-9),
            "loadavg_before": loadavg_before, "loadavg_after": loadavg(), "server_log": indexer.scan_log(),
        }
        result["ratio_to_sentence_transformers"] = result["chunks_per_sec"] / st_rate
        log(f"backend {backend}: stored first, then {chunks} chunks indexed in {secs:.1f} s after /health "
            f"({result['chunks_per_sec']:.1f} chunks/s, {result['ratio_to_sentence_transformers']:.2f}x; "
            f"{result['chunks_per_sec_from_spawn']:.1f} chunks/s from the process start); statuses {result['statuses']}")
        return {"stored_first": result}
    finally:
        indexer.stop()
        if not args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)


def print_backends(r: dict) -> None:
    print(f"\n== indexing throughput by embedding backend ({r.get('sentence_transformers', {}).get('passages', '?')} msmarco "
          f"passages as text documents, chunks/s from the first upload to the last index done) ==")
    if "error" in r:
        print(r["error"])
        return
    st = r["sentence_transformers"]
    rows = [["sentence-transformers in-process (encode, batch 32)", f"{st['per_sec']:.1f}", "1.00", "-", "-", ""]]
    for backend, e in r["backends"].items():
        note = "" if e["available"] else "(setting unknown: the server's only backend)"
        stored = e.get("stored_first")
        if stored:
            rows.append([f"kb, KB_EMBED_BACKEND={backend}: stored first, then indexed", f"{stored['chunks_per_sec']:.1f}",
                         f"{stored['ratio_to_sentence_transformers']:.2f}", f"{stored['uploads_per_sec_without_indexing']:.1f}",
                         f"{stored['chunks_per_sec_from_spawn']:.1f}", note])
        if "indexing" in e:
            i = e["indexing"]
            rows.append([f"kb, KB_EMBED_BACKEND={backend}: uploads and indexing at once", f"{i['chunks_per_sec']:.1f}",
                         f"{e['ratio_to_sentence_transformers']:.2f}", f"{i['uploads_per_sec']:.1f}", "-", note])
        if not stored and "indexing" not in e:
            rows.append([f"kb, KB_EMBED_BACKEND={backend}", "-", "-", "-", "-", e.get("error") or e["note"]])
    print_table(["backend", "chunks/s", "ratio", "uploads/s", "chunks/s from process start", "note"], rows)
    print("target: >= 2.5x plain sentence-transformers (indexing: stored first, then indexed); "
          "'uploads and indexing at once' counts from the first upload to the last index done")
