"""Where the distance cut should apply: a plain cut against a cut that spares complete lexical matches.

Run (from the repository root; nice it):

    HF_HUB_OFFLINE=1 nice -n 15 .venv/bin/python bench/cut_rules.py [--sets ...] [--json bench/results/cut_rules.json]

kb cuts its ranked candidates by cosine distance alone (`max_vector_distance`). bench/calibrate.py shows
what that costs where the model's distance says little: text fragments (known-item queries) and
languages all-MiniLM-L6-v2 does not know. This script scores two rules on kb's own hybrid ranking (the
first 20 candidates, as the API's default count takes them), rebuilt with bench/fusion_study.py's
replica (checked there against kb's HTTP answers):

- `plain t`: keep a candidate when its distance is at most t (kb today);
- `lexical t`: also keep it when it contains every distinct term of the query (after kb's analysis:
  stopwords dropped, stems), the query having at least two terms, or one term found in no more
  than 1 % of the chunks.

For each set: the share of answerable queries whose answer survives, and of absent-topic queries that
get an empty response.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from calibrate import answering  # noqa: E402
from evaldata import corpus_key, load  # noqa: E402
from fusion_study import Replica, Variant, query_data, rank  # noqa: E402
from kbharness import Server, log  # noqa: E402

COUNT = 20
CUTS = (0.5, 0.55, 0.6, 0.65, 0.7)
SETS = ("msmarco", "entities-dev", "entities-test", "entities-known", "support6", "ml-ar", "ml-de", "ml-en", "ml-ja", "ml-zh")
RARE = 0.01


def complete(replica: Replica, terms: list[str], key: int) -> bool:
    distinct = list(dict.fromkeys(terms))
    if not distinct:
        return False
    found = replica.text.matched_terms(distinct, np.array([key], dtype=np.int64))[0]
    if found < len(distinct):
        return False
    if len(distinct) >= 2:
        return True
    hits, _ = replica.text.search(distinct, len(replica.chunks))
    return len(hits) <= max(1, RARE * len(replica.chunks))


def measure(workspace, replica, evalset) -> dict:
    kb = Variant("kb")
    rows = {"answerable": [], "absent": []}
    for kind, queries in (("answerable", evalset.queries), ("absent", evalset.absent)):
        for query in queries:
            data = query_data(workspace, replica, query)
            top = rank(kb, "hybrid", replica, data, query.text)[:COUNT]
            entries = [{"d": 1.0 - data.similarity[k], "complete": complete(replica, data.terms, k),
                        "answer": kind == "answerable" and answering(evalset, query, replica.chunks[k])} for k in top]
            rows[kind].append(entries)
    return rows


def shares(rows: dict, cut: float, lexical: bool) -> tuple[float, float]:
    def kept(e: dict) -> bool:
        return e["d"] <= cut or (lexical and e["complete"])

    answered = [any(e["answer"] and kept(e) for e in q) for q in rows["answerable"] if any(e["answer"] for e in q)]
    emptied = [not any(kept(e) for e in q) for q in rows["absent"]]
    return (sum(answered) / len(answered) if answered else float("nan"),
            sum(emptied) / len(emptied) if emptied else float("nan"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    started = time.monotonic()
    server = Server("cut-rules")
    measured = {}
    try:
        groups: dict[str, list] = {}
        for name in args.sets.split(","):
            groups.setdefault(corpus_key(name), []).append(load(name))
        for key, evalsets in groups.items():
            workspace = server.workspace(key)
            workspace.upload(evalsets[0].documents)
            replica = Replica(workspace, evalsets[0])
            for evalset in evalsets:
                measured[evalset.name] = measure(workspace, replica, evalset)
                log(f"{evalset.name} measured")
    finally:
        server.stop()
    print(f"\n{{'seconds': {round(time.monotonic() - started)}}}\n")
    print("answers kept / absent topics emptied, in kb's hybrid top 20:\n")
    print("| set | " + " | ".join(f"plain {c:g} | lexical {c:g}" for c in CUTS) + " |")
    print("|" + " --- |" * (1 + 2 * len(CUTS)))
    for name, rows in measured.items():
        cells = []
        for cut in CUTS:
            for lexical in (False, True):
                a, e = shares(rows, cut, lexical)
                cells.append(f"{a:.2f} / {e:.2f}")
        print(f"| {name} | " + " | ".join(cells) + " |")
    if args.json:
        args.json.write_text(json.dumps(measured))


if __name__ == "__main__":
    main()
