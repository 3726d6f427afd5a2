"""FAISS searches run with the configured OpenMP thread count in every thread, not only the one that set it."""

from __future__ import annotations

import threading

import faiss
import numpy as np

from index.stores import FlatStore, HNSWStore, set_search_threads
from index.stores import threads as search_threads


def _in_new_thread(fn):
    out = {}
    thread = threading.Thread(target=lambda: out.setdefault("value", fn()))
    thread.start()
    thread.join()
    return out["value"]


def _store(cls):
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(50, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    store = cls(8)
    store.add(np.arange(50, dtype=np.int64), vectors)
    return store, vectors[0]


def test_a_search_in_another_thread_uses_the_configured_threads(monkeypatch):
    monkeypatch.setattr(search_threads, "_wanted", None)
    set_search_threads(1)
    for cls in (FlatStore, HNSWStore):
        store, query = _store(cls)

        def search_then_read():
            before = faiss.omp_get_max_threads()  # a new thread starts on OpenMP's default
            ids, _ = store.search(query, 5)
            return before, faiss.omp_get_max_threads(), ids[0]

        _, after, nearest = _in_new_thread(search_then_read)
        assert after == 1 and nearest == 0, cls.__name__


def test_changing_the_count_reaches_threads_that_already_searched(monkeypatch):
    monkeypatch.setattr(search_threads, "_wanted", None)
    store, query = _store(FlatStore)
    results = []
    go_on = threading.Event()
    changed = threading.Event()

    def worker():
        store.search(query, 3)
        results.append(faiss.omp_get_max_threads())
        go_on.set()
        changed.wait(5)
        store.search(query, 3)
        results.append(faiss.omp_get_max_threads())

    set_search_threads(1)
    thread = threading.Thread(target=worker)
    thread.start()
    go_on.wait(5)
    set_search_threads(2)
    changed.set()
    thread.join()
    set_search_threads(1)
    assert results == [1, 2]
