"""Scale out in one run (issue 16): retrieval with 1 and with 2 API replicas, indexing with 1 and 2 workers,
all on one PostgreSQL metadata store and one shared data dir, printed against the targets as PASS/FAIL.

Usage (from the repository root; PostgreSQL's binaries in /usr/lib/postgresql/*/bin, psycopg in .venv):

    HF_HUB_OFFLINE=1 .venv/bin/python bench/scale_out.py [--rounds 3] [--requests 600] [--docs 2000]
        [--clients 8] [--compare PATH] [--profile DIR] [--json PATH] [--keep] [--million]

What runs:

- A throw-away PostgreSQL cluster (tests/postgres.py's, via bench/common/postgres.py) and one database;
  two `kb serve --workers 0` replicas (KB_WORKERS=0) and two `kb worker --workers 1` processes, every
  one with the same KB_DATABASE_URL and --data-dir. Workspaces come from `kb workspace create`.
- Setup: the 5,000 msmarco-5k passages uploaded as text documents into one workspace through replica A
  and indexed by both workers; then both workers are paused (SIGSTOP) and both replicas warmed up (a
  few retrievals each, so each has loaded the model and the workspace's index).
- Retrieval, `--rounds` rounds, the order alternating (1, 2 / 2, 1 replicas): `--clients` client threads
  in this process (a separate process from the servers) issue `--requests` uncached hybrid top-10
  retrievals (every query text distinct, as in bench/side_by_side.py) against replica A alone, or
  spread round-robin over A and B (client i uses replica i mod 2, as a load balancer would). req/s,
  p50 and p99 are medians over the rounds; the ratio 2/1 is the median of the per-round ratios.
- Indexing, `--rounds` rounds, the order alternating: `--docs` passages (the text made distinct per
  run, so no stored embedding is reused) are uploaded into a fresh workspace while both workers are
  paused; then 1 or 2 workers are resumed (SIGCONT) and the time is taken from the resume to the
  poll that sees the last index succeeded: chunks/s. Paused again after.
- During every timed run, the CPU used by each process (user + system from /proc/PID/stat deltas:
  each replica, each worker, PostgreSQL's postmaster with its backends, this client process) and by
  the whole machine, in cores, is printed: it says what limits the ratio on a small shared machine.

`--compare PATH` adds a third replica C running another kb checkout (e.g. `git archive` of the commit
before a change, PYTHONPATH set to it) on the same database and data dir, measured alone in each
retrieval round next to replica A: an A/B of a change to the API process in the same run.
`--profile DIR` attaches py-spy (.venv/bin/py-spy) to replica A during two more 1-replica runs.

`--million` runs bench/million_chunks.py afterwards (a separate script with its own workspace and
figures), when that file exists. The load average is printed at the start and at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH), str(BENCH.parent)]

from common import DEFAULT_CORPUS, REPO  # noqa: E402
from common.beir import Msmarco  # noqa: E402
from common.cpu import Meter  # noqa: E402
from common.documents import index_line, indexing_report, upload_all, wait_indexed  # noqa: E402
from common.postgres import postmaster_pid, start_cluster  # noqa: E402
from common.report import log, ms, print_table  # noqa: E402
from common.profile import Recording, top_frames  # noqa: E402
from common.results import run_info, write_json  # noqa: E402
from common.search import TOP_K, retrieve, retrieve_body  # noqa: E402
from common.server import SpawnedServer, client, create_workspace, kb_command, server_env, stop_process  # noqa: E402
from retrieval_parts.latency import QueryStream, timed_requests  # noqa: E402

TARGET_REPLICAS = 1.7  # issue 16: 2 replicas >= 1.7x the throughput of one, at 8 clients


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--requests", type=int, default=600, help="retrievals per measurement")
    ap.add_argument("--docs", type=int, default=2000, help="passages per indexing measurement")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--upload-clients", type=int, default=4)
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--passages", type=int, default=0, help="only the first N passages in the retrieval workspace")
    ap.add_argument("--index-timeout", type=float, default=1800.0)
    ap.add_argument("--request-timeout", type=float, default=60.0)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, data dir)")
    ap.add_argument("--compare", type=Path, metavar="PATH",
                    help="another kb checkout (e.g. a `git archive` of the commit before a change) served as a third "
                         "replica C on the same database and data dir, measured alone in every retrieval round")
    ap.add_argument("--profile", type=Path, metavar="DIR",
                    help="after the retrieval rounds, two more 1-replica runs (not counted) under py-spy: all samples "
                         "and GIL-holding samples of replica A, raw stacks kept in DIR, the top frames printed")
    ap.add_argument("--million", action="store_true", help="then run bench/million_chunks.py, if it exists")
    args = ap.parse_args()
    args.num_candidates = args.budget_ms = args.filters = None  # what retrieve_body reads
    args.mode = "hybrid"
    return args


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


class Worker:
    """`kb worker --workers 1` in its own process group; paused and resumed with SIGSTOP / SIGCONT."""

    def __init__(self, root: Path, label: str, data_dir: Path, env: dict[str, str]):
        self.label = label
        self.log_path = root / f"worker-{label}.log"
        self._log = open(self.log_path, "wb")
        command = kb_command() + ["worker", "--data-dir", str(data_dir), "--workers", "1"]
        log(f"starting worker {label}: {' '.join(command)}")
        self.process = subprocess.Popen(command, cwd=REPO, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        self.paused = False

    def check(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"worker {self.label} exited with {self.process.returncode}: "
                               f"{self.log_path.read_text(errors='replace')[-1500:]}")

    def pause(self) -> None:
        self.check()
        os.killpg(self.process.pid, signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        os.killpg(self.process.pid, signal.SIGCONT)
        self.paused = False

    def stop(self) -> None:
        if self.process.poll() is None and self.paused:
            self.resume()
        stop_process(self.process)
        self._log.close()
        log(f"worker {self.label} stopped")


class Cluster:
    """PostgreSQL, two API replicas and two workers on one database and data dir."""

    def __init__(self, root: Path, compare: Path | None = None):
        self.root = root
        self.pg = start_cluster()
        self.url = self.pg.create_database("kb_scale_out")
        log(f"PostgreSQL at {self.url}")
        self.data_dir = root / "data"
        # this checkout's code in every process; the first replica creates and migrates the tables
        extra = {"KB_DATABASE_URL": self.url, "KB_WORKERS": "0", "PYTHONPATH": str(REPO)}
        self.env = server_env(extra)
        self.replicas = [SpawnedServer(root, "A", extra, data_dir=self.data_dir)]
        self.replicas.append(SpawnedServer(root, "B", extra, data_dir=self.data_dir))
        self.compare = None
        if compare is not None:
            self.compare = SpawnedServer(root, "C", {**extra, "PYTHONPATH": str(compare.resolve())}, data_dir=self.data_dir)
        self.workers = [Worker(root, str(i + 1), self.data_dir, self.env) for i in range(2)]

    def workspace(self, name: str) -> str:
        return create_workspace(self.data_dir, name, self.env)

    def meter(self) -> Meter:
        groups = {f"replica {s.label}": s.process.pid for s in self.servers()}
        groups.update({f"worker {w.label}": w.process.pid for w in self.workers})
        return Meter(groups, {"postgres": postmaster_pid(self.pg)}, counters={"pg sessions opened": self.pg_sessions})

    def pg_sessions(self) -> float:
        """Connections PostgreSQL has accepted into the database so far (pg_stat_database.sessions)."""
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.pg.port} user={self.pg.user} dbname=postgres") as conn:
            return float(conn.execute("SELECT sessions FROM pg_stat_database WHERE datname = 'kb_scale_out'").fetchone()[0])

    def servers(self) -> list[SpawnedServer]:
        return self.replicas + ([self.compare] if self.compare else [])

    def set_workers(self, n: int) -> None:
        """Exactly the first `n` workers running, the others paused."""
        for i, w in enumerate(self.workers):
            if i < n and w.paused:
                w.resume()
            elif i >= n and not w.paused:
                w.pause()
        for w in self.workers:
            w.check()

    def close(self) -> None:
        for w in self.workers:
            w.stop()
        for s in self.servers():
            s.stop()
        self.pg.stop()


def cpu_line(cpu: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.0f}" if k.startswith("pg sessions") else f"{k} {v:.2f}" for k, v in cpu.items()
                     if v is not None and (v >= 0.005 or k in ("machine busy", "pg sessions opened")))


def retrieval_rounds(args, c: Cluster, key: str, queries: list[str]) -> dict:
    stream = QueryStream(queries, f"{int(time.time()) % 100000:05d}s")
    urls = {1: [c.replicas[0].url], 2: [s.url for s in c.replicas]}
    if c.compare:
        urls["C"] = [c.compare.url]
    out: dict = {n: [] for n in urls}
    for r in range(args.rounds):
        order = list(urls)[r % len(urls):] + list(urls)[:r % len(urls)] if c.compare else ((1, 2) if r % 2 == 0 else (2, 1))
        for n in order:
            meter = c.meter()
            meter.start()
            row = timed_requests(args, urls[n], key, stream, "hybrid", True, args.requests, args.clients)
            row["cpu_cores"] = meter.stop()
            out[n].append(row)
            log(f"round {r + 1}/{args.rounds} retrieval, {replicas_label(n)} x{args.clients} clients: p50 {ms(row['p50_ms'])} ms, "
                f"p99 {ms(row['p99_ms'])} ms, {row['per_sec']:.1f}/s" + (f", errors {row['errors']}" if row["errors"] else ""))
            log(f"  CPU cores: {cpu_line(row['cpu_cores'])}")
    return out


def replicas_label(n) -> str:
    return "1 replica (--compare code)" if n == "C" else f"{n} replica{'s' if n > 1 else ''}"


def indexing_rounds(args, c: Cluster, ms_: Msmarco) -> dict:
    out: dict[int, list[dict]] = {1: [], 2: []}
    passages = ms_.passages
    run = 0
    for r in range(args.rounds):
        for n in ((1, 2) if r % 2 == 0 else (2, 1)):
            run += 1
            c.set_workers(0)
            key = c.workspace(f"bench-index-{r + 1}-{n}")
            items = [{"name": f"p{i}", "text": f"{passages[(run * args.docs + i) % len(passages)]['text']} (run {run}, copy {i})"}
                     for i in range(args.docs)]
            up = upload_all(c.replicas[0].url, key, items, args.upload_clients, f"index run {run}")
            meter = c.meter()
            meter.start()
            resumed = time.monotonic()
            c.set_workers(n)
            up["first_sent"] = up["last_acked"] = resumed  # the clock starts at the resume
            waited = wait_indexed(c.replicas[0].url, key, up["ids"], args.index_timeout, f"index run {run}", poll_secs=0.2)
            report = indexing_report(up, waited, len(items))
            report["cpu_cores"] = meter.stop()
            c.set_workers(0)
            out[n].append(report)
            log(f"round {r + 1}/{args.rounds} indexing, {n} worker(s): {report['chunks']} chunks "
                f"({report['chunks_embedded']} embedded) in {report['indexed_secs']:.1f} s: {report['chunks_per_sec']:.1f} chunks/s; "
                f"statuses {report['statuses']}" + ("; TIMED OUT" if report["timed_out"] else ""))
            log(f"  CPU cores: {cpu_line(report['cpu_cores'])}")
    return out


def profile_replica(args, c: Cluster, key: str, queries: list[str]) -> dict:
    """py-spy on replica A during uncounted 1-replica runs: where its time goes, and what holds the GIL."""
    args.profile.mkdir(parents=True, exist_ok=True)
    stream = QueryStream(queries, f"{int(time.time()) % 100000:05d}p")
    out = {}
    for kind in ("all", "gil"):
        raw = args.profile / f"replica-A-{kind}.txt"
        recording = Recording(c.replicas[0].process.pid, raw, gil=kind == "gil")
        time.sleep(1.0)
        meter = c.meter()
        meter.start()
        row = timed_requests(args, [c.replicas[0].url], key, stream, "hybrid", True, args.requests, args.clients)
        cpu = meter.stop()
        recording.stop()
        total, frames = top_frames(raw) if raw.exists() else (0, [])
        out[kind] = {"per_sec": row["per_sec"], "cpu_cores": cpu, "samples": total,
                     "top": [{"frame": f, "inclusive": i, "self": o} for f, i, o in frames]}
        log(f"profile ({kind} samples) of replica A: {row['per_sec']:.1f}/s, {total} samples in {raw}")
    return out


def print_profile(p: dict) -> None:
    for kind, x in p.items():
        what = "samples holding the GIL" if kind == "gil" else "samples of running (non-idle) threads"
        print(f"\n== py-spy, replica A alone at {x['per_sec']:.1f} req/s: {what} ({x['samples']}), top frames ==")
        print(f"CPU cores: {cpu_line(x['cpu_cores'])}")
        print_table(["frame", "inclusive", "self"],
                    [[t["frame"][:110], f"{100 * t['inclusive'] / max(x['samples'], 1):.0f}%",
                      f"{100 * t['self'] / max(x['samples'], 1):.0f}%"] for t in x["top"]])


def med(values: list[float | None]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def cpu_med(rows: list[dict]) -> dict[str, float]:
    names = rows[0]["cpu_cores"].keys() if rows else []
    return {k: med([r["cpu_cores"].get(k) for r in rows]) for k in names}


def verdict(value: float | None, limit: float) -> str:
    return "n/a" if value is None else ("PASS" if value >= limit else "FAIL")


def summarise(args, retrieval: dict, indexing: dict) -> dict:
    ratios = [b["per_sec"] / a["per_sec"] for a, b in zip(retrieval[1], retrieval[2]) if a["per_sec"]]
    idx_ratios = [b["chunks_per_sec"] / a["chunks_per_sec"] for a, b in zip(indexing[1], indexing[2]) if a["chunks_per_sec"]]
    return {
        "retrieval": {n: {"per_sec": med([r["per_sec"] for r in rows]), "p50_ms": med([r["p50_ms"] for r in rows]),
                          "p99_ms": med([r["p99_ms"] for r in rows]),
                          "server_p50_ms": med([r["server_p50_ms"] for r in rows]),
                          "errors": sum(sum(r["errors"].values()) for r in rows),
                          "rounds": [{k: r[k] for k in ("per_sec", "p50_ms", "p99_ms")} for r in rows],
                          "cpu_cores": cpu_med(rows)} for n, rows in retrieval.items()},
        "retrieval_ratio": med(ratios), "retrieval_ratios": ratios,
        "compare_ratios": [a["per_sec"] / c["per_sec"] for a, c in zip(retrieval[1], retrieval.get("C", [])) if c["per_sec"]],
        "indexing": {n: {"chunks_per_sec": med([r["chunks_per_sec"] for r in rows]),
                         "secs": med([r["indexed_secs"] for r in rows]),
                         "chunks": med([r["chunks"] for r in rows]),
                         "not_succeeded": sum(r["documents"] - r["statuses"].get("succeeded", 0) for r in rows),
                         "rounds": [r["chunks_per_sec"] for r in rows],
                         "cpu_cores": cpu_med(rows)} for n, rows in indexing.items()},
        "indexing_ratio": med(idx_ratios), "indexing_ratios": idx_ratios,
    }


def print_summary(args, s: dict) -> None:
    print(f"\n== Retrieval: {args.clients} clients, hybrid, cold (distinct query texts), top {TOP_K}; median over "
          f"{args.rounds} rounds of {args.requests} requests ==")
    print_table(["API replicas", "req/s", "p50 ms", "p99 ms", "server p50 ms", "errors"],
                [[replicas_label(n), f"{x['per_sec']:.1f}", ms(x["p50_ms"]), ms(x["p99_ms"]), ms(x["server_p50_ms"]), str(x["errors"])]
                 for n, x in s["retrieval"].items()])
    print(f"\n== Indexing: {args.docs} text passages queued, then 1 or 2 workers resumed; median over {args.rounds} rounds ==")
    print_table(["workers", "chunks/s", "secs", "chunks", "not succeeded"],
                [[str(n), f"{x['chunks_per_sec']:.1f}", f"{x['secs']:.1f}", f"{x['chunks']:.0f}", str(x["not_succeeded"])]
                 for n, x in s["indexing"].items()])
    print("\n== CPU cores used during the timed runs (median over rounds; user + system from /proc) ==")
    rows = []
    for what, part in (("retrieval", s["retrieval"]), ("indexing", s["indexing"])):
        for n, x in part.items():
            rows.append([f"{what}, " + (replicas_label(n) if what == "retrieval" else f"{n} worker{'s' if n > 1 else ''}"),
                         cpu_line(x["cpu_cores"])])
    print_table(["run", "cores"], rows)
    print("\n== Targets (issue 16; ratios are medians of per-round ratios, every round measured 1 and 2 back to back) ==")
    r, i = s["retrieval_ratio"], s["indexing_ratio"]
    print_table(["figure", "measured", "target", "verdict"], [
        [f"2 replicas / 1 replica req/s at {args.clients} clients", f"{r:.2f}x" if r else "-",
         f">= {TARGET_REPLICAS:.2f}x", verdict(r, TARGET_REPLICAS)],
        ["  per round", ", ".join(f"{x:.2f}" for x in s["retrieval_ratios"]), "", ""],
        *([["(info) 1 replica / 1 replica of --compare code req/s", f"{med(s['compare_ratios']):.2f}x",
             ", ".join(f"{x:.2f}" for x in s["compare_ratios"]), ""]] if s["compare_ratios"] else []),
        ["2 workers / 1 worker chunks/s", f"{i:.2f}x" if i else "-", "(none in the issue)", "info"],
        ["  per round", ", ".join(f"{x:.2f}" for x in s["indexing_ratios"]), "", ""],
    ])


def run_million() -> None:
    script = BENCH / "million_chunks.py"
    if not script.exists():
        print("\n--million: bench/million_chunks.py does not exist in this checkout (the million-chunk figures are "
              "a separate script)")
        return
    log("running bench/million_chunks.py (its own figures follow)")
    subprocess.run([sys.executable, str(script)], cwd=REPO, env=server_env(), check=False)


def main() -> int:
    args = parse_args()
    info = run_info(args)
    start_uptime = uptime()
    print(f"scale-out benchmark — {info['machine']}, kb {info['git']}\nat start: {start_uptime}", flush=True)
    ms_ = Msmarco(args.corpus)
    passages = ms_.passages[:args.passages] if args.passages else ms_.passages
    results: dict = {**info, "uptime_start": start_uptime}
    root = Path(tempfile.mkdtemp(prefix="kb-scale-out-"))
    c = None
    try:
        c = Cluster(root, args.compare)
        # setup: the retrieval workspace, indexed by both workers
        key = c.workspace("bench-msmarco")
        items = [{"name": p["_id"], "text": p["text"]} for p in passages]
        log(f"uploading {len(items)} passages through replica A, both workers indexing...")
        up = upload_all(c.replicas[0].url, key, items, args.upload_clients, "msmarco")
        waited = wait_indexed(c.replicas[0].url, key, up["ids"], args.index_timeout, "msmarco")
        results["setup_indexing"] = indexing_report(up, waited, len(items))
        log("msmarco: " + index_line(results["setup_indexing"]))
        c.set_workers(0)
        queries = [q["text"] for q in ms_.queries]
        for s in c.servers():  # each replica loads the model and the index before the clock runs
            with client(s.url, key) as http:
                for q in queries[:20]:
                    retrieve(http, retrieve_body(args, f"{q} warm-up {s.label}", "hybrid"))
        write_json(args.json, results)

        retrieval = retrieval_rounds(args, c, key, queries)
        results["retrieval_rounds"] = {str(n): rows for n, rows in retrieval.items()}
        if args.profile:
            results["profile"] = profile_replica(args, c, key, queries)
        write_json(args.json, results)
        indexing = indexing_rounds(args, c, ms_)
        results["indexing_rounds"] = {str(n): rows for n, rows in indexing.items()}
        summary = summarise(args, retrieval, indexing)
        results["summary"] = summary
        results["server_logs"] = {s.label: s.scan_log() for s in c.servers()}
        print_summary(args, summary)
        if args.profile:
            print_profile(results["profile"])
        for s in c.servers():
            scan = s.scan_log()
            if scan["tracebacks"] or scan["error_lines"]:
                print(f"replica {s.label} log: {scan['tracebacks']} tracebacks, {scan['error_lines'][:2]}")
    finally:
        if c is not None:
            c.close()
        if args.keep:
            log(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    end_uptime = uptime()
    results["uptime_end"] = end_uptime
    print(f"\nat start: {start_uptime}\nat end:   {end_uptime}")
    write_json(args.json, results)
    if args.million:
        run_million()
    return 0


if __name__ == "__main__":
    sys.exit(main())
