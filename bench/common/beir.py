"""The msmarco-5k BEIR set: passages, queries and graded judgements, and in-process embeddings of the passages."""

from __future__ import annotations

import json
import time
from pathlib import Path

from .report import log


def load_msmarco(corpus: Path) -> tuple[list[dict], list[dict], dict[str, dict[str, int]]]:
    """(passages, queries, {query id: {passage id: grade}}) of `corpus`/retrieval/msmarco-5k."""
    base = corpus / "retrieval" / "msmarco-5k"
    # U+0085 occurs inside passages: split on "\n" only (str.splitlines() would break records).
    passages = [json.loads(l) for l in (base / "corpus.jsonl").read_text(encoding="utf-8").split("\n") if l.strip()]
    queries = [json.loads(l) for l in (base / "queries.jsonl").read_text(encoding="utf-8").split("\n") if l.strip()]
    qrels: dict[str, dict[str, int]] = {}
    for line in (base / "qrels" / "test.tsv").read_text(encoding="utf-8").split("\n"):  # no header row
        if not line.strip():
            continue
        qid, pid, grade = line.split("\t")
        qrels.setdefault(qid, {})[pid] = int(grade)
    return passages, queries, qrels


class Msmarco:
    """The corpus, plus lazily computed in-process embeddings (shared by the msmarco and backends parts)."""

    def __init__(self, corpus: Path, cache: Path | None = None):
        passages, queries, qrels = load_msmarco(corpus)
        self.cache = cache
        self.passages = passages
        self.queries = queries
        self.qrels = qrels
        self.judged = [q for q in queries if q["_id"] in qrels]
        self.text_of = {p["_id"]: p["text"] for p in passages}
        self._model = None
        self.vectors = None  # passage embeddings in passage order
        self.encode_secs = None  # wall time of model.encode(passages, batch_size=32), when measured here

    def model(self):
        if self._model is None:
            import transformers
            from sentence_transformers import SentenceTransformer

            from kb.settings import bundled_model_path

            transformers.logging.set_verbosity_error()
            self._model = SentenceTransformer(bundled_model_path(), device="cpu")
        return self._model

    def _cache_key(self) -> str:
        import hashlib

        from kb.settings import bundled_model_path

        digest = hashlib.sha256("\n".join(p["text"] for p in self.passages).encode("utf-8"))
        digest.update(bundled_model_path().encode("utf-8"))
        return digest.hexdigest()

    def encode_passages(self, force_timing: bool = False):
        """Plain sentence-transformers: model.encode(passages, batch_size=32), default settings, timed.

        With `--embed-cache FILE.npz`, vectors of an earlier run are reused (not when a timing is needed)."""
        import numpy as np

        if self.vectors is not None and (self.encode_secs is not None or not force_timing):
            return self.vectors
        if self.cache and self.cache.exists() and not force_timing:
            data = np.load(self.cache, allow_pickle=False)
            if str(data["key"]) == self._cache_key():
                log(f"passage embeddings from {self.cache}")
                self.vectors = data["vectors"]
                return self.vectors
        model = self.model()
        texts = [p["text"] for p in self.passages]
        model.encode(texts[:64], batch_size=32)  # warm-up
        log(f"encoding {len(texts)} passages in-process (sentence-transformers, batch 32)...")
        started = time.perf_counter()
        raw = model.encode(texts, batch_size=32)
        self.encode_secs = time.perf_counter() - started
        vectors = np.asarray(raw, dtype=np.float32)
        self.vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        log(f"  {len(texts) / self.encode_secs:.1f} passages/s")
        if self.cache:
            np.savez(self.cache, key=np.array(self._cache_key()), vectors=self.vectors)
        return self.vectors

    def encode_queries(self, texts: list[str]):
        return self.model().encode(texts, batch_size=32, normalize_embeddings=True)
