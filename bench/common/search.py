"""Retrieve calls: the request body, retries, and which search modes the server supports."""

from __future__ import annotations

import time

import httpx

from .documents import KB
from .report import log
from .server import client

RETRIEVE = f"{KB}/rag/retrieve"
MODES = ("hybrid", "dense", "lexical")
TOP_K = 10
BIG_LENGTH = 10_000_000  # max_documents_length: the API's maximum, so no chunk is cut for length

class Features:
    """What the server's retrieve endpoint supports, probed once per server."""

    def __init__(self):
        self.cache: dict[str, dict] = {}

    def probe(self, url: str, key: str) -> dict:
        if url in self.cache:
            return self.cache[url]
        with client(url, key) as http:
            bogus = http.post(RETRIEVE, json={"query": "probe", "search_mode": "no-such-mode"})
            lexical = http.post(RETRIEVE, json={"query": "probe", "search_mode": "lexical", "max_vector_distance": 2.0})
        body = lexical.json() if lexical.status_code == 200 else {}
        found = {
            "rejects_unknown_mode": bogus.status_code == 422,
            "lexical_status": lexical.status_code,
            "timings_ms": "timings_ms" in body,
            "skipped": "skipped" in body,
        }
        found["search_mode"] = found["rejects_unknown_mode"] or found["timings_ms"]
        self.cache[url] = found
        log(f"server features: {found}")
        return found


FEATURES = Features()


def usable_modes(args, url: str, key: str) -> tuple[list[str], dict[str, str]]:
    """(modes to run, {mode: why skipped})."""
    wanted = list(args.modes)
    if wanted == ["dense"] or args.force_modes:
        return wanted, {}
    found = FEATURES.probe(url, key)
    if found["search_mode"]:
        return wanted, {}
    skipped = {m: "not available yet (the server ignores search_mode)" for m in wanted if m != "dense"}
    return [m for m in wanted if m == "dense"], skipped


def retrieve_body(args, query: str, mode: str, k: int = TOP_K) -> dict:
    body = {"query": query, "search_mode": mode, "max_retrieved_rag_chunks_count": k,
            "max_vector_distance": 2.0, "max_documents_length": BIG_LENGTH}
    if args.num_candidates:
        body["num_candidates"] = args.num_candidates
    if args.budget_ms:
        body["budget_ms"] = args.budget_ms
    if getattr(args, "filters", None):
        body["filters"] = args.filters
    return body


def retrieve(http: httpx.Client, body: dict) -> dict:
    for attempt in range(3):
        try:
            response = http.post(RETRIEVE, json=body)
        except httpx.HTTPError:
            if attempt == 2:
                raise
            time.sleep(1)
            continue
        if response.status_code == 200:
            return response.json()
        if response.status_code < 500 or attempt == 2:
            raise RuntimeError(f"retrieve answered {response.status_code}: {response.text[:300]}")
        time.sleep(1)
    raise AssertionError
