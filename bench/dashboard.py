"""Server-side render time of the dashboard's documents page with many documents (paginated, 50 a page).

A fresh knowledge base in a temporary directory gets one workspace with `--documents` text documents
(each with its RAG index record, left queued: no worker runs), `--folders` folders holding half of them,
and a few agents using some. Then each view of the documents page is requested in-process (FastAPI's
TestClient: the ASGI app, its session check, the service calls and the Jinja2 rendering; no network) and
timed, `--runs` times each:

    PYTHONPATH=. HF_HUB_OFFLINE=1 .venv/bin/python bench/dashboard.py [--documents 10000] [--runs 30]

Prints the median, p95 and max milliseconds of each view and the page's size.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fastapi.testclient import TestClient  # noqa: E402

from api.app import create_app  # noqa: E402
from kb.knowledge_base import KnowledgeBase  # noqa: E402
from kb.services.cursors import encode_cursor  # noqa: E402
from kb.settings import load_settings  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TIERS = REPO / "tests" / "permissive_tiers.toml"
WORDS = ("kettle toaster warranty returns delivery invoice manual safety cleaning descaling filter lid handle "
         "base cable plug voltage colour steel glass plastic guarantee repair spare part order").split()


def fill(kb: KnowledgeBase, documents: int, folders: int) -> tuple[str, str, str]:
    workspace, key = kb.workspaces.create("bench", "enterprise")
    folder_ids = [kb.folders.create(workspace, f"Folder {n:03d}").id for n in range(folders)]
    started = time.perf_counter()
    ids = []
    for n in range(documents):
        words = " ".join(WORDS[(n + i) % len(WORDS)] for i in range(120))
        parent = folder_ids[n % folders] if folders and n % 2 else None
        ids.append(kb.documents.add_text(workspace, f"Document {n:05d}: {words}", f"Document {n:05d}", parent).id)
        if n and n % 2000 == 0:
            print(f"  {n} documents ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    for a in range(5):
        locators = [{"type": "text", "name": f"Document {i}", "id": ids[i], "usage_mode": "auto"} for i in range(a, 50, 5)]
        kb.agents.create(workspace, {"name": f"Agent {a}", "conversation_config": {"agent": {"prompt": {
            "knowledge_base": locators}}}})
    return key, folder_ids[0] if folder_ids else "", ids[-1]


def timed(client: TestClient, url: str, runs: int) -> tuple[list[float], int]:
    times, size = [], 0
    for _ in range(runs):
        start = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, (url, response.status_code, response.text[:300])
        size = len(response.content)
    return times, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, default=10_000)
    parser.add_argument("--folders", type=int, default=100)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        kb = KnowledgeBase(load_settings(environ={}, data_dir=Path(tmp) / "data", tiers_file=TIERS))
        t = time.perf_counter()
        key, folder_id, _ = fill(kb, args.documents, args.folders)
        print(f"filled: {args.documents} documents, {args.folders} folders in {time.perf_counter() - t:.1f} s",
              file=sys.stderr)
        app = create_app(kb, start_workers=False)
        with TestClient(app) as client:
            page = client.get("/dashboard/sign-in")
            token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
            assert client.post("/dashboard/sign-in", data={"api_key": key, "csrf_token": token}).status_code == 200
            deep = "/dashboard?" + urlencode({"all": "1", "cursor": encode_cursor(args.documents - 50)})  # the last page
            views = {
                "top level (folders first)": "/dashboard",
                "every document, newest first": "/dashboard?all=1",
                "every document, by name": "/dashboard?all=1&sort=name&dir=asc",
                "every document, by size": "/dashboard?all=1&sort=size",
                "the last page (cursor)": deep,
                "one folder": f"/dashboard?folder={folder_id}",
                "name search 'Document 09'": "/dashboard?search=Document+09",
                "full-text search 'descaling'": "/dashboard?search=descaling&in=text",
            }
            for _ in range(3):
                client.get("/dashboard")  # warm: templates compiled, caches filled
            print(f"documents page, {args.documents:,} documents, {args.runs} runs per view (ms):")
            print(f"{'view':34} {'median':>8} {'p95':>8} {'max':>8} {'KB':>6}")
            for name, url in views.items():
                times, size = timed(client, url, args.runs)
                times.sort()
                p95 = times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))]
                print(f"{name:34} {statistics.median(times):8.1f} {p95:8.1f} {times[-1]:8.1f} {size / 1000:6.0f}")
        kb.close()


if __name__ == "__main__":
    main()
