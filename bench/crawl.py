"""Crawl throughput and the cost of an auto-sync pass, against a generated website on 127.0.0.1.

The site has `--pages` HTML pages of real prose (MS MARCO passages from the shared corpus), each
linking to the next few, so a discovery crawl reaches them all. kb runs in process with no
workers: the crawl's parts are run here one after another (`Crawls.run_part`), with the
politeness delay at 0, so the figure is kb's own cost per page (fetch, robots check, extraction
in the parser sandbox, storing the document and the frontier); indexing is measured apart.

Then a site of `--sync-pages` pages is crawled with auto-sync and one sync pass re-fetches every
page: once answering 304 to the ETag, once with validators ignored (full fetch, extraction, same
text hash). Nothing is re-embedded in either.

    nice -n 15 python bench/crawl.py --pages 300 --sync-pages 1000
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import threading
import time
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# kb is imported inside the functions: the parser sandbox's children re-import this script
# (multiprocessing's forkserver prepares each child from __main__), and should find it light.

PASSAGES = REPO.parent / "shared" / "corpus" / "retrieval" / "msmarco-5k" / "corpus.jsonl"


def passages(n: int) -> list[str]:
    with PASSAGES.open(encoding="utf-8") as lines:
        return [json.loads(next(lines))["text"] for _ in range(n)]


class Site:
    """`pages` pages: /p/0 ... /p/N-1, each with three passages and links to the next three."""

    def __init__(self, pages: int, validators: bool = True):
        texts = passages(min(5000, pages * 3))
        self.validators = validators
        self.bodies: dict[str, bytes] = {"/robots.txt": b"User-agent: *\nAllow: /\n"}
        for i in range(pages):
            paras = "".join(f"<p>{escape(texts[(i * 3 + k) % len(texts)])}</p>" for k in range(3))
            links = "".join(f'<a href="/p/{j}">page {j}</a> ' for j in range(i + 1, min(pages, i + 4)))
            self.bodies[f"/p/{i}"] = (
                f"<!DOCTYPE html><html><head><title>Page {i}</title></head><body><nav>{links}</nav>"
                f"<main><article><h1>Page {i}</h1>{paras}</article></main><footer>footer</footer></body></html>"
            ).encode()
        self.bodies["/"] = self.bodies["/p/0"]
        site = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                body = site.bodies.get(self.path)
                if body is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                etag = '"' + hashlib.sha1(body).hexdigest()[:16] + '"'
                if site.validators and self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                if site.validators:
                    self.send_header("ETag", etag)
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"

    def stop(self) -> None:
        self.server.shutdown()


def open_kb(data_dir: Path):
    from kb.knowledge_base import KnowledgeBase
    from kb.settings import load_settings

    return KnowledgeBase(load_settings(
        data_dir=data_dir, workers=0, url_allow_hosts=("127.0.0.1",), crawl_delay_secs=0.0,
        tiers_file=REPO / "tests" / "permissive_tiers.toml", crawl_slice_secs=3600.0,
    ))


def crawl_all(kb, workspace, url: str, max_pages: int, sync: bool) -> tuple[float, object]:
    from kb.services.crawls import CrawlRequest

    job = kb.crawls.create(workspace, CrawlRequest(url=url, max_pages=max_pages, enable_auto_sync=sync or None))
    started = time.perf_counter()
    while kb.crawls.get(workspace, job.id).active:
        kb.crawls.run_part(job.id)
    return time.perf_counter() - started, kb.crawls.get(workspace, job.id)


def index_all(kb) -> float:
    started = time.perf_counter()
    while kb.run_queued_jobs():
        pass
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=300)
    parser.add_argument("--sync-pages", type=int, default=1000)
    args = parser.parse_args()
    results: dict[str, object] = {"cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        kb = open_kb(Path(tmp) / "data")
        try:
            workspace, _ = kb.workspaces.create("bench")
            site = Site(args.pages)
            secs, job = crawl_all(kb, workspace, site.url, args.pages, sync=False)
            site.stop()
            results["crawl"] = {"pages": job.pages_scraped, "secs": round(secs, 2),
                                "pages_per_sec": round(job.pages_scraped / secs, 1)}
            kb.warm_up()  # the model loads before the indexing is timed
            indexing = index_all(kb)
            results["crawl"]["indexing_secs"] = round(indexing, 2)
            results["crawl"]["indexed_pages_per_sec"] = round(job.pages_scraped / indexing, 1)
            print(json.dumps(results), flush=True)

            synced = kb.workspaces.create("sync")[0]
            site = Site(args.sync_pages)
            secs, job = crawl_all(kb, synced, site.url, args.sync_pages, sync=True)
            results["sync_setup_crawl"] = {"pages": job.pages_scraped, "secs": round(secs, 2)}
            for label, validators in (("sync_pass_304", True), ("sync_pass_same_text", False)):
                site.validators = validators
                started = time.perf_counter()
                report = kb.auto_sync.run_pass(force=True, workspace_id=synced.id)
                secs = time.perf_counter() - started
                results[label] = {"pages": len(report.unchanged), "changed": len(report.changed),
                                  "failed": len(report.failed), "secs": round(secs, 2),
                                  "ms_per_page": round(1000 * secs / max(1, report.synced), 2)}
                print(json.dumps({label: results[label]}), flush=True)
            site.stop()
        finally:
            kb.close()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
