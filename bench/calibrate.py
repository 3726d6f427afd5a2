"""Distance calibration: where a model's cosine distances put answers and absent topics, and the default cut they imply.

Run (from the repository root; nice it, the machine is shared):

    HF_HUB_OFFLINE=1 nice -n 15 .venv/bin/python bench/calibrate.py [--backends onnx-int8,torch]
        [--sets msmarco,entities-dev,...] [--json bench/results/calibrate.json]

For each embedding backend a kb (bench/kbharness.py) indexes every set; each answerable query and each
absent-topic query is asked over HTTP with no distance cut (`max_vector_distance` 2.0) in two ways:

- hybrid, kb's default ranking, `max_retrieved_rag_chunks_count` 20 (the API default): `h_min`, the
  distance of the nearest of those 20 chunks (the response is empty under a cut `t` iff h_min > t), and
  `h_ans`, the distance of the nearest answering chunk among them (the answer survives iff h_ans <= t;
  infinite when the answer is not in the 20);
- dense, top 200: `d_ans`, the distance of the nearest answering chunk (the model's own view).

An answering chunk is one of the query's best-judged items (the top grade of its qrels: the entity's own
abstract, a msmarco passage of the top grade; the chunk holding the quote for the multilingual sets).

**The procedure** (`derive`): on the calibration sets (English only, held-out sets excluded), the default
cut is the smallest distance, in steps of 0.01, that keeps at least `--keep` (0.95) of the answers the
uncut hybrid ranking delivers, each set weighted equally; the report gives the trade-off curve (answers
kept, responses non-empty, absent topics emptied) around it, and checks it on the held-out sets and on
the six support documents. Languages the model does not know are reported apart: there a distance says
nothing, so a cut only removes lexical answers.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from evaldata import EvalSet, Query, corpus_key, load  # noqa: E402
from kbharness import Server, Workspace, log  # noqa: E402

CALIBRATION = ("msmarco", "entities-dev", "support6", "ml-en")
CONFIRMATION = ("entities-test", "entities-known")
OTHER_LANGUAGES = ("ml-ar", "ml-de", "ml-ja", "ml-zh")
DEFAULT_COUNT = 20  # the API's max_retrieved_rag_chunks_count
DENSE_DEPTH = 200
INF = float("inf")


def answering(evalset: EvalSet, query: Query, chunk) -> bool:
    if evalset.unit == "chunk":
        return evalset.gain(query, chunk) > 0
    return evalset.gain(query, chunk) >= max(query.gains.values())


def measure(workspace: Workspace, evalset: EvalSet) -> dict:
    """Per query: h_min, h_ans, d_ans (answerable) and h_min, d_min (absent)."""
    rows = []
    for query in evalset.queries:
        hybrid = workspace.retrieve(query.text, "hybrid", count=DEFAULT_COUNT)
        dense = workspace.retrieve(query.text, "dense", count=DENSE_DEPTH)
        rows.append({
            "id": query.id, "kind": query.kind,
            "h_min": min((c.vector_distance for c in hybrid), default=INF),
            "h_ans": min((c.vector_distance for c in hybrid if answering(evalset, query, c)), default=INF),
            "d_ans": min((c.vector_distance for c in dense if answering(evalset, query, c)), default=INF),
        })
    absent = []
    for query in evalset.absent:
        hybrid = workspace.retrieve(query.text, "hybrid", count=DEFAULT_COUNT)
        dense = workspace.retrieve(query.text, "dense", count=1)
        absent.append({"id": query.id, "text": query.text,
                       "h_min": min((c.vector_distance for c in hybrid), default=INF),
                       "d_min": dense[0].vector_distance if dense else INF})
    return {"answerable": rows, "absent": absent}


def collect(backend: str, sets: list[str]) -> dict:
    server = Server(f"calibrate-{backend}", embed_backend=backend)
    try:
        groups: dict[str, list[EvalSet]] = defaultdict(list)
        for name in sets:
            groups[corpus_key(name)].append(load(name))
        out = {}
        for key, evalsets in groups.items():
            workspace = server.workspace(key)
            workspace.upload(evalsets[0].documents)
            for evalset in evalsets:
                out[evalset.name] = measure(workspace, evalset)
                log(f"{backend} {evalset.name}: {len(out[evalset.name]['answerable'])} answerable, "
                    f"{len(out[evalset.name]['absent'])} absent")
        return out
    finally:
        server.stop()


# ---- the procedure ---------------------------------------------------------------------------------------------


def share(values: list[float], cut: float, above: bool = False) -> float:
    finite = [v for v in values]
    if not finite:
        return float("nan")
    return sum((v > cut) if above else (v <= cut) for v in finite) / len(finite)


def weighted(per_set: dict[str, list[float]], cut: float, above: bool = False) -> float:
    """Mean over sets of each set's share (every set counts the same, whatever its size)."""
    shares = [share(v, cut, above) for v in per_set.values() if v]
    return sum(shares) / len(shares) if shares else float("nan")


def quantiles(values: list[float], qs=(0.05, 0.25, 0.5, 0.75, 0.95)) -> list[float]:
    finite = sorted(v for v in values if v != INF)
    if not finite:
        return [float("nan")] * len(qs)
    return [finite[min(len(finite) - 1, int(round(q * (len(finite) - 1))))] for q in qs]


def derive(data: dict, sets: list[str], keep: float) -> float:
    """The smallest cut (0.01 steps) keeping `keep` of the answers uncut hybrid delivers, sets weighted equally."""
    delivered = {s: [r["h_ans"] for r in data[s]["answerable"] if r["h_ans"] != INF] for s in sets if s in data}
    for step in range(0, 201):
        cut = step / 100
        if weighted(delivered, cut) >= keep:
            return cut
    return 2.0


def curve(data: dict, sets: list[str], cuts: list[float]) -> list[dict]:
    delivered = {s: [r["h_ans"] for r in data[s]["answerable"] if r["h_ans"] != INF] for s in sets if s in data}
    nonempty = {s: [r["h_min"] for r in data[s]["answerable"]] for s in sets if s in data}
    absent = {s: [r["h_min"] for r in data[s]["absent"]] for s in sets if s in data}
    return [{"cut": c, "answers_kept": weighted(delivered, c), "non_empty": weighted(nonempty, c),
             "absent_emptied": weighted(absent, c, above=True)} for c in cuts]


def report(backend: str, data: dict, keep: float) -> dict:
    calibration = [s for s in CALIBRATION if s in data]
    cut = derive(data, calibration, keep)
    print(f"\n## {backend}\n")
    print("Distances (quantiles 5 / 25 / 50 / 75 / 95 %): h_ans = the nearest answering chunk in the default hybrid "
          "top 20; d_ans = the same in the dense top 200; absent = the nearest chunk of absent-topic queries.\n")
    print("| set | answerable | answer in hybrid top 20 | h_ans | d_ans | absent | absent nearest (h_min) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, d in data.items():
        rows = d["answerable"]
        fmt = lambda qs: " / ".join("-" if math.isnan(x) else f"{x:.2f}" for x in qs)  # noqa: E731
        print(f"| {name} | {len(rows)} | {sum(r['h_ans'] != INF for r in rows)} | {fmt(quantiles([r['h_ans'] for r in rows]))} "
              f"| {fmt(quantiles([r['d_ans'] for r in rows]))} | {len(d['absent'])} | {fmt(quantiles([r['h_min'] for r in d['absent']]))} |")
    print(f"\nDerived default (keep >= {keep:.0%} of delivered answers on {', '.join(calibration)}, sets weighted "
          f"equally): **{cut:.2f}**\n")
    cuts = sorted({round(c, 2) for c in [0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 1.0, cut]})
    print("| cut | answers kept | responses non-empty | absent topics emptied |")
    print("| --- | --- | --- | --- |")
    for row in curve(data, calibration, cuts):
        mark = "**" if row["cut"] == cut else ""
        print(f"| {mark}{row['cut']:.2f}{mark} | {row['answers_kept']:.3f} | {row['non_empty']:.3f} | {row['absent_emptied']:.3f} |")
    print("\nAt the derived cut, per set (answers kept / responses non-empty / absent topics emptied):\n")
    print("| set | role | answers kept | non-empty | absent emptied |")
    print("| --- | --- | --- | --- | --- |")
    per_set = {}
    for name, d in data.items():
        role = "calibration" if name in CALIBRATION else "held out" if name in CONFIRMATION else "language the model does not know"
        delivered = [r["h_ans"] for r in d["answerable"] if r["h_ans"] != INF]
        per_set[name] = {"answers_kept": share(delivered, cut), "non_empty": share([r["h_min"] for r in d["answerable"]], cut),
                         "absent_emptied": share([r["h_min"] for r in d["absent"]], cut, above=True)}
        v = per_set[name]
        print(f"| {name} | {role} | {v['answers_kept']:.3f} | {v['non_empty']:.3f} | {v['absent_emptied']:.3f} |")
    return {"cut": cut, "per_set": per_set, "curve": curve(data, calibration, cuts)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default="onnx-int8,torch")
    parser.add_argument("--sets", default=",".join(CALIBRATION + CONFIRMATION + OTHER_LANGUAGES))
    parser.add_argument("--keep", type=float, default=0.95, help="share of delivered answers the default cut keeps")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--from-json", type=Path, default=None, help="report from an earlier run's measurements")
    args = parser.parse_args()
    started, load_before = time.monotonic(), os.getloadavg()[0]
    if args.from_json:
        measured = json.loads(args.from_json.read_text())["measured"]
    else:
        measured = {b: collect(b, args.sets.split(",")) for b in args.backends.split(",")}
    results = {b: report(b, d, args.keep) for b, d in measured.items()}
    print(f"\n{{'seconds': {round(time.monotonic() - started)}, 'load_before': {load_before:.1f}, "
          f"'load_after': {os.getloadavg()[0]:.1f}}}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"measured": measured, "results": results}, indent=1, default=str))


if __name__ == "__main__":
    main()
