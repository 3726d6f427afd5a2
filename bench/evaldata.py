"""Evaluation sets for kb's retrieval benchmarks: loaders, judging and metrics. No I/O beyond reading the sets.

A set is documents to upload (text, or a file of ../shared/corpus), queries with judged items, and
absent-topic queries (that nothing in the set answers). Two kinds of judging:

- BEIR sets (corpus.jsonl, queries.jsonl, qrels/<split>.tsv): an item is a corpus document; a
  retrieved chunk stands for the document it comes from (matched by `document_name`), and the
  ranked list keeps each document's first chunk. Graded gains from the qrels.
- Quote sets (bench/data/multilingual): an item is a chunk; a chunk answers a question when it
  belongs to the question's document and contains its quote (gain 1).

Metrics over the first `k` items: nDCG with linear gains (as trec_eval and BEIR), recall of the
judged items (gain > 0), reciprocal rank of the first judged item.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kb.evaluation.metrics import ndcg, recall, reciprocal_rank

BENCH = Path(__file__).resolve().parent
DATA = BENCH / "data"
CORPUS = BENCH.parent.parent / "shared" / "corpus"
MSMARCO = CORPUS / "retrieval" / "msmarco-5k"
MULTILINGUAL = DATA / "multilingual"
LANGUAGES = ("ar", "de", "en", "ja", "zh")


@dataclass(frozen=True)
class Document:
    """What is uploaded: `name` is the document's name in kb (a title, a passage id or a file path)."""

    name: str
    text: str | None = None  # uploaded with POST /text
    path: Path | None = None  # uploaded with POST /file
    title: str = ""  # the document's title, for benchmarks that use titles ("" when it has none)


@dataclass(frozen=True)
class Query:
    id: str
    text: str
    gains: dict[str, float] = field(default_factory=dict)  # BEIR: document name -> gain
    kind: str = ""
    document: str = ""  # quote sets: the answering document's name
    quote: str = ""  # quote sets: the text an answering chunk contains


@dataclass(frozen=True)
class Chunk:
    """A retrieved (or stored) chunk, as the HTTP API returns it."""

    chunk_id: str
    document_name: str
    text: str
    vector_distance: float = 0.0
    heading_path: tuple[str, ...] = ()


@dataclass
class EvalSet:
    name: str
    documents: list[Document]
    queries: list[Query]
    absent: list[Query]
    unit: str = "document"  # "document" (BEIR) or "chunk" (quote sets)
    language: str = "en"

    def item(self, chunk: Chunk) -> str:
        return chunk.document_name if self.unit == "document" else chunk.chunk_id

    def gain(self, query: Query, chunk: Chunk) -> float:
        if self.unit == "document":
            return query.gains.get(chunk.document_name, 0.0)
        return 1.0 if chunk.document_name == query.document and query.quote in chunk.text else 0.0

    def ideal_gains(self, query: Query, stored: Sequence[Chunk] = ()) -> list[float]:
        """Every judged item's gain, best first; quote sets need the workspace's chunks (`stored`)."""
        if self.unit == "document":
            return sorted((g for g in query.gains.values() if g > 0), reverse=True)
        return [1.0 for c in stored if self.gain(query, c) > 0]

    def ranked_items(self, chunks: Sequence[Chunk]) -> list[tuple[str, Chunk]]:
        """Distinct items in rank order, each with its first chunk."""
        seen: dict[str, Chunk] = {}
        for chunk in chunks:
            seen.setdefault(self.item(chunk), chunk)
        return list(seen.items())


# ---- metrics ---------------------------------------------------------------------------------------------------


def score(evalset: EvalSet, query: Query, chunks: Sequence[Chunk], stored: Sequence[Chunk] = (), k: int = 10) -> dict:
    """nDCG@k, recall@k and MRR@k of one ranked chunk list."""
    gains = [evalset.gain(query, c) for _, c in evalset.ranked_items(chunks)][:k]
    ideal = evalset.ideal_gains(query, stored)
    return {"ndcg": ndcg(gains, ideal, k), "recall": recall(gains, ideal, k), "mrr": reciprocal_rank(gains, k)}


# ---- loaders -----------------------------------------------------------------------------------------------------


def read_jsonl(path: Path) -> list[dict]:
    # U+2028/U+0085 occur inside msmarco passages: split on "\n" only
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    """query id -> {corpus id: grade}; a header row (BEIR) is skipped, a file without one (msmarco-5k) is read whole."""
    qrels: dict[str, dict[str, int]] = {}
    for line in path.read_text(encoding="utf-8").split("\n"):
        parts = line.strip().split("\t")
        if len(parts) != 3 or not parts[2].lstrip("-").isdigit():
            continue  # header or blank line
        qrels.setdefault(parts[0], {})[parts[1]] = int(parts[2])
    return qrels


def beir_set(name: str, folder: Path, split: str = "test", absent: Path | None = None, title_in_text: bool = False) -> EvalSet:
    """A BEIR folder: documents named by their title (or their id when untitled), queries judged in `split`.

    With `title_in_text`, a titled document's text starts with its title on a line of its own."""
    corpus = read_jsonl(folder / "corpus.jsonl")
    names = {d["_id"]: (d.get("title") or d["_id"]) for d in corpus}
    if len(set(names.values())) != len(names):
        raise ValueError(f"{folder}: document titles are not unique")
    documents = [
        Document(names[d["_id"]], (f"{d['title']}\n\n{d['text']}" if title_in_text and d.get("title") else d["text"]),
                 title=d.get("title") or "")
        for d in corpus
    ]
    qrels = read_qrels(folder / "qrels" / f"{split}.tsv")
    queries = [
        Query(q["_id"], q["text"], {names[d]: float(g) for d, g in qrels[q["_id"]].items() if g > 0},
              kind=(q.get("metadata") or {}).get("kind", ""))
        for q in read_jsonl(folder / "queries.jsonl") if q["_id"] in qrels
    ]
    absent_path = absent if absent is not None else folder / "absent.jsonl"
    absent_queries = [Query(a["_id"], a["text"]) for a in read_jsonl(absent_path)] if absent_path.exists() else []
    return EvalSet(name, documents, queries, absent_queries)


def multilingual_set(language: str) -> EvalSet:
    """One language of bench/data/multilingual: its documents (files of ../shared/corpus), questions and absent topics."""
    spec = json.loads((MULTILINGUAL / "documents.json").read_text(encoding="utf-8"))[language]
    documents = [Document(path, path=CORPUS / path, title=path) for path in spec["documents"]]
    queries = [
        Query(f"{language}-{i + 1:03d}", row["question"], document=row["document"], quote=row["quote"])
        for i, row in enumerate(read_jsonl(MULTILINGUAL / f"{language}.jsonl"))
    ]
    absent = [Query(a["_id"], a["text"]) for a in read_jsonl(MULTILINGUAL / "absent.jsonl") if a["language"] == language]
    return EvalSet(f"ml-{language}", documents, queries, absent, unit="chunk", language=language)


def load(name: str, title_in_text: bool = False) -> EvalSet:
    """A set by name: msmarco, entities-dev, entities-test, entities-known, support6, ml-<language>."""
    entities = DATA / "entities"
    if name == "msmarco":
        return beir_set(name, MSMARCO, "test", absent=DATA / "msmarco-5k" / "absent.jsonl")
    if name == "entities-dev":
        return beir_set(name, entities, "dev", title_in_text=title_in_text)
    if name == "entities-test":
        return beir_set(name, entities, "test", title_in_text=title_in_text)
    if name == "entities-known":
        return beir_set(name, entities, "known-item", title_in_text=title_in_text)
    if name == "support6":
        return beir_set(name, DATA / "support6", "test", title_in_text=title_in_text)
    if name.startswith("ml-") and name[3:] in LANGUAGES:
        return multilingual_set(name[3:])
    raise ValueError(f"unknown set {name!r}; known: {', '.join(SET_NAMES)}")


SET_NAMES = ("msmarco", "entities-dev", "entities-test", "entities-known", "support6") + tuple(f"ml-{lang}" for lang in LANGUAGES)


def corpus_key(name: str, title_in_text: bool = False) -> str:
    """Sets sharing one corpus (the three entity sets) share one workspace."""
    base = "entities" if name.startswith("entities-") else name
    return f"{base}+title" if title_in_text and base in ("entities", "support6") else base
