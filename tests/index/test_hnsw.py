"""HNSWStore and TieredStore against exact search, with real FAISS and real sentence embeddings.

The real vectors are 1,000 msmarco passages and the 50 msmarco queries embedded with the
bundled all-MiniLM-L6-v2, cached in pytest's cache directory after the first run. Bulk vectors
(to pass thresholds) are synthetic ones made from the real vectors (bench/hnsw_recall.py).
"""

from __future__ import annotations

import threading

import faiss
import numpy as np
import pytest

from bench.hnsw_recall import embed_cached, load_msmarco, synthetic
from index.stores import FlatStore, HNSWSQ8Store, HNSWStore, TieredStore, create_store, load_store

N_REAL = 1000
K = 10


@pytest.fixture(autouse=True, scope="module")
def single_threaded_faiss():
    """Graphs built by one thread are the same at every run (several threads insert in any order)."""
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(threads)


@pytest.fixture(scope="session")
def real(request, tmp_path_factory) -> tuple[np.ndarray, np.ndarray]:
    passages, queries = load_msmarco()
    cache = getattr(request.config, "cache", None)  # None with -p no:cacheprovider: embed every run
    folder = cache.mkdir("kb-hnsw") if cache is not None else tmp_path_factory.mktemp("kb-hnsw")
    return embed_cached(passages[:N_REAL], queries, folder / "msmarco-1000.npz")


def exact(ids: np.ndarray, vectors: np.ndarray) -> FlatStore:
    store = FlatStore(vectors.shape[1])
    store.add(ids, vectors)
    return store


def assert_same_results(store, reference: FlatStore, queries: np.ndarray, allowed=None, num_candidates=256) -> None:
    """The exact top K, in order, with the exact distances.

    HNSW searches with a generous pool here: these tests check ids, distances, filters, deletes
    and switches, which must come out exact; recall at the default pool is measured in
    `test_top_results_equal_exact_search` and, at scale, by bench/hnsw_recall.py."""
    for query in queries:
        ids, distances = store.search(query, K, allowed, num_candidates=num_candidates)
        want_ids, want_distances = reference.search(query, K, allowed)
        assert ids.tolist() == want_ids.tolist()
        np.testing.assert_allclose(distances, want_distances, atol=1e-5)


def recall(store, reference: FlatStore, queries: np.ndarray, **options) -> float:
    hits = [len(np.intersect1d(store.search(q, K, **options)[0], reference.search(q, K)[0])) for q in queries]
    return sum(hits) / (K * len(queries))


def test_top_results_equal_exact_search(real):
    vectors, queries = real
    ids = np.arange(N_REAL, dtype=np.int64) * 3 + 11
    store = HNSWStore(vectors.shape[1])
    store.add(ids, vectors)
    assert len(store) == N_REAL
    reference = exact(ids, vectors)
    assert_same_results(store, reference, queries)
    assert recall(store, reference, queries) >= 0.99  # with the default pool
    # The exact distances of hits found another way come from the true vectors.
    np.testing.assert_array_equal(store.vectors_for(ids[[5, 0, 999]]), vectors[[5, 0, 999]])
    with pytest.raises(KeyError):
        store.vectors_for(np.array([12]))


def test_candidate_pool(real):
    vectors, queries = real
    ids = np.arange(N_REAL, dtype=np.int64)
    store, reference = HNSWStore(vectors.shape[1]), exact(ids, vectors)
    store.add(ids, vectors)
    assert recall(store, reference, queries, num_candidates=10) <= recall(store, reference, queries, num_candidates=400) == 1
    # efSearch = max(k, num_candidates): a pool smaller than k still yields k results.
    found, _ = store.search(queries[0], 50, num_candidates=5)
    assert len(found) == 50 and len(set(found.tolist())) == 50


def test_filter_returns_only_allowed_ids_and_equals_exact_for_small_sets(real):
    vectors, queries = real
    ids = np.arange(N_REAL, dtype=np.int64) + 1_000_000
    store, reference = HNSWStore(vectors.shape[1]), exact(ids, vectors)
    store.add(ids, vectors)
    rng = np.random.default_rng(1)
    for size in (1, 3, 40, 400):  # one document's chunks up to a large share: exact search
        allowed = rng.choice(ids, size, replace=False)
        assert_same_results(store, reference, queries, allowed)
    # Unknown ids in the filter are ignored; a filter of only unknown ids finds nothing.
    allowed = np.concatenate([ids[:5], [7, 8, 9]])
    assert set(store.search(queries[0], K, allowed)[0].tolist()) <= set(ids[:5].tolist())
    assert len(store.search(queries[0], K, np.array([7, 8]))[0]) == 0
    assert len(store.search(queries[0], K, np.zeros(0, dtype=np.int64))[0]) == 0

    # Filtered inside the HNSW search (exact path off): only allowed ids, nearly all exact hits.
    graph_only = HNSWStore(vectors.shape[1], exact_below=0, exact_scale=0)
    graph_only.add(ids, vectors)
    allowed = rng.choice(ids, 300, replace=False)
    hits = total = 0
    for query in queries:
        found, _ = graph_only.search(query, K, allowed)
        assert len(found) == K and set(found.tolist()) <= set(allowed.tolist())
        hits += len(set(found.tolist()) & set(reference.search(query, K, allowed)[0].tolist()))
        total += K
    assert hits / total >= 0.98


def test_deletes_never_come_back_and_compaction_keeps_results(real):
    vectors, queries = real
    bulk = synthetic(vectors, 2000, seed=2)
    all_vectors = np.vstack([vectors, bulk])
    ids = np.arange(len(all_vectors), dtype=np.int64)
    store = HNSWStore(vectors.shape[1], compact_fraction=0.2)
    store.add(ids, all_vectors)

    rng = np.random.default_rng(3)
    removed: set[int] = set()
    order = rng.permutation(ids)
    for batch in np.array_split(order[:1500], 6):  # 1,500 of 3,000 removed in steps of 250
        assert store.remove(batch) == len(batch)
        assert store.remove(batch) == 0  # already gone
        store.wait_for_compaction()
        removed |= set(batch.tolist())
        assert len(store) == len(ids) - len(removed)
        assert store.tombstones <= 0.2 * (len(store) + store.tombstones)
        for query in queries[:10]:
            found, _ = store.search(query, 200)
            assert not set(found.tolist()) & removed
        # A filter naming removed ids never brings them back either.
        found, _ = store.search(queries[0], K, np.array(sorted(removed))[:50])
        assert len(found) == 0
    assert store.compactions >= 2

    live = np.array(sorted(set(ids.tolist()) - removed))
    assert_same_results(store, exact(live, all_vectors[live]), queries)

    # Re-adding a removed id works: the new vector is found under it, the old one never.
    gone = int(order[0])
    store.add(np.array([gone]), -all_vectors[gone])
    assert len(store) == len(live) + 1
    assert store.search(-all_vectors[gone], 1)[0].tolist() == [gone]
    assert gone not in store.search(all_vectors[gone], 50)[0].tolist()
    np.testing.assert_array_equal(store.vectors_for(np.array([gone])), [-all_vectors[gone]])
    # Adding an id that is stored replaces its vector.
    kept = int(live[0])
    store.add(np.array([kept]), -all_vectors[kept])
    assert len(store) == len(live) + 1
    assert kept not in store.search(all_vectors[kept], 50)[0].tolist()


def test_changes_during_a_background_compaction_are_kept(real, monkeypatch):
    vectors, queries = real
    ids = np.arange(N_REAL, dtype=np.int64)
    store = HNSWStore(vectors.shape[1])
    store.add(ids[:800], vectors[:800])
    gate = threading.Event()
    finish = HNSWStore._finish_compaction

    def held_until_released(self, *args, **kwargs):
        if kwargs.get("replay", True):
            assert gate.wait(30)
        finish(self, *args, **kwargs)

    monkeypatch.setattr(HNSWStore, "_finish_compaction", held_until_released)
    store.remove(ids[:200])  # 25% tombstones: a compaction starts, and waits for the gate
    assert store.compactions == 0
    # Meanwhile the old graph answers and takes changes: new ids, removals, a removed id back.
    store.add(ids[800:], vectors[800:])
    store.remove(ids[200:300])
    store.add(ids[:10], vectors[:10])
    live = np.concatenate([ids[:10], ids[300:]])
    assert len(store) == len(live)
    assert_same_results(store, exact(live, vectors[live]), queries[:10])
    gate.set()
    store.wait_for_compaction()
    # The new graph holds the snapshot plus every change replayed; the tombstones of the
    # changes made meanwhile (100 removed ids) are all that is left.
    assert store.compactions == 1 and len(store) == len(live) and store.tombstones == 100
    assert_same_results(store, exact(live, vectors[live]), queries)
    assert sorted(store.contents()[0].tolist()) == live.tolist()


def test_serialisation_round_trip_keeps_tombstones(real, tmp_path):
    vectors, queries = real
    ids = np.arange(N_REAL, dtype=np.int64) * 2
    store = HNSWStore(vectors.shape[1], m=16, ef_construction=100)
    store.add(ids, vectors)
    store.remove(ids[:100])  # 10%: below the compaction fraction, kept as tombstones
    assert store.tombstones == 100

    store.save(tmp_path / "store.faiss")
    for loaded in (HNSWStore.from_bytes(store.to_bytes()), load_store(tmp_path / "store.faiss")):
        assert isinstance(loaded, HNSWStore)
        assert (len(loaded), loaded.tombstones, loaded.m, loaded.ef_construction) == (N_REAL - 100, 100, 16, 100)
        for query in queries:
            assert loaded.search(query, K)[0].tolist() == store.search(query, K)[0].tolist()
        assert not set(loaded.search(queries[0], 500)[0].tolist()) & set(ids[:100].tolist())
        np.testing.assert_array_equal(loaded.vectors_for(ids[100:110]), vectors[100:110])
        loaded.remove(ids[100:250])  # and it keeps working: now past 20%, compacted
        loaded.wait_for_compaction()
        assert loaded.compactions == 1 and loaded.tombstones == 0 and len(loaded) == N_REAL - 250


def test_tiered_store_switches_at_the_threshold(real, tmp_path):
    vectors, queries = real
    bulk = synthetic(vectors, 1000, seed=4)
    ids = np.arange(N_REAL + len(bulk), dtype=np.int64) + 500
    all_vectors = np.vstack([vectors, bulk])
    store = TieredStore(vectors.shape[1], hnsw_threshold=1500)  # back to flat below 750

    store.add(ids[:N_REAL], vectors)
    assert store.holds == "flat"
    assert_same_results(store, exact(ids[:N_REAL], vectors), queries)
    store.add(ids[N_REAL:1400], all_vectors[N_REAL:1400])
    assert store.holds == "flat"
    store.add(ids[1400:], all_vectors[1400:])
    assert store.holds == "hnsw" and len(store) == len(ids)
    reference = exact(ids, all_vectors)
    assert_same_results(store, reference, queries)
    assert_same_results(store, reference, queries, allowed=ids[::7])
    np.testing.assert_array_equal(store.vectors_for(ids[[3, 1999]]), all_vectors[[3, 1999]])

    store.save(tmp_path / "tiered.faiss")
    loaded = load_store(tmp_path / "tiered.faiss", "auto")
    assert isinstance(loaded, TieredStore) and loaded.holds == "hnsw" and loaded.hnsw_threshold == 1500
    assert isinstance(load_store(tmp_path / "tiered.faiss"), TieredStore)  # the file says what it holds
    assert_same_results(loaded, reference, queries)

    # Shrinking below half the threshold goes back to exact search, ids preserved.
    store.remove(ids[:800])
    assert store.holds == "hnsw" and len(store) == 1200
    store.remove(ids[800:1300])
    assert store.holds == "flat" and len(store) == 700
    assert_same_results(store, exact(ids[1300:], all_vectors[1300:]), queries)
    assert TieredStore.from_bytes(store.to_bytes()).holds == "flat"


def test_auto_reads_flat_files(real, tmp_path):
    vectors, queries = real
    ids = np.arange(N_REAL, dtype=np.int64)
    flat = exact(ids, vectors)
    flat.save(tmp_path / "old.faiss")
    assert isinstance(load_store(tmp_path / "old.faiss"), FlatStore)
    store = load_store(tmp_path / "old.faiss", "auto")
    assert isinstance(store, TieredStore) and store.holds == "flat" and len(store) == N_REAL
    assert_same_results(store, flat, queries)


def test_searches_run_while_the_store_changes(real):
    vectors, queries = real
    ids = np.arange(N_REAL, dtype=np.int64)
    store = TieredStore(vectors.shape[1], hnsw_threshold=600, hnsw_options={"compact_fraction": 0.1})
    store.add(ids[:500], vectors[:500])
    removed: set[int] = set()
    errors: list[BaseException] = []
    done = threading.Event()

    def search() -> None:
        try:
            while not done.is_set():
                for query in queries[:5]:
                    gone = set(removed)  # removed before this search started: must not appear
                    found, _ = store.search(query, 20)
                    assert not set(found.tolist()) & gone
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=search) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        # Grows past the threshold (to HNSW), then shrinks with compactions back below 300 (to flat).
        for start in range(500, N_REAL, 50):
            store.add(ids[start : start + 50], vectors[start : start + 50])
            batch = ids[start - 500 : start - 480]
            store.remove(batch)
            removed |= set(batch.tolist())
        assert store.holds == "hnsw"
        for start in range(200, 900, 100):
            batch = ids[start : start + 100]
            store.remove(batch)
            removed |= set(batch.tolist())
        assert store.holds == "flat"
    finally:
        done.set()
        for thread in threads:
            thread.join()
    assert not errors, errors[0]
    assert len(store) == N_REAL - len(removed)


def test_ids_stay_right_through_slices_removes_and_readds(real):
    """Adds a slice at a time (growing id tables, the sorted table extended in place), interleaved with
    removes, re-adds of removed ids, replacements and out-of-order ids: every id maps to its latest
    vector, removed ids are gone, and searches return the latest copies only."""
    vectors, queries = real
    store = HNSWStore(vectors.shape[1], m=16, ef_construction=64, ef_search=256, background_compaction=False)
    expected: dict[int, int] = {}  # id -> row of `vectors` it holds now
    rng = np.random.default_rng(5)
    next_id, row = 0, 0

    def add(ids: np.ndarray) -> None:
        nonlocal row
        rows = (row + np.arange(len(ids))) % len(vectors)
        row += len(ids)
        store.add(ids, vectors[rows])
        expected.update(zip(ids.tolist(), rows.tolist()))

    for step in range(60):
        add(np.arange(next_id, next_id + 16, dtype=np.int64))  # growing keys, as kb's chunks
        next_id += 16
        if step % 7 == 3:
            gone = rng.choice(sorted(expected), 5, replace=False)
            assert store.remove(gone) == 5
            assert store.remove(gone) == 0
            with pytest.raises(KeyError):
                store.vectors_for(gone[:1])
            for i in gone.tolist():
                del expected[i]
            assert len(store) == len(expected)
        if step % 11 == 5:
            add(np.array([next_id + 5000, next_id - 3], dtype=np.int64))  # out of order / a replacement
        if step % 13 == 8:
            missing = [i for i in range(next_id) if i not in expected][:3]
            if missing:
                add(np.array(missing, dtype=np.int64))  # removed ids come back
    ids = np.array(sorted(expected), dtype=np.int64)
    assert len(store) == len(expected)
    np.testing.assert_array_equal(store.vectors_for(ids), vectors[[expected[i] for i in ids.tolist()]])
    stored_ids, _ = store.contents()
    assert sorted(stored_ids.tolist()) == ids.tolist()
    truth = exact(ids, vectors[[expected[i] for i in ids.tolist()]])
    for q in queries[:20]:
        found, _ = store.search(q, K)
        assert set(found.tolist()) <= set(expected)
        assert len(set(found.tolist()) & set(truth.search(q, K)[0].tolist())) >= K - 1


def test_sq8_storage_searches_deletes_filters_and_round_trips(real, tmp_path):
    """HNSW over 8-bit quantised vectors: a quarter of the vector memory, results close to exact search,
    deletes, small filters (searched exactly on decoded vectors) and its file, as the "hnsw-sq8" kind
    and as the storage of an "auto" store past its threshold."""
    vectors, queries = real
    bulk = np.vstack([vectors, synthetic(vectors, 4000, seed=3)])
    ids = np.arange(len(bulk), dtype=np.int64) * 3 + 1
    flat = HNSWStore(bulk.shape[1], background_compaction=False)
    flat.add(ids, bulk)
    store = create_store(bulk.shape[1], "hnsw-sq8", background_compaction=False)
    assert isinstance(store, HNSWSQ8Store) and store.storage == "sq8"
    store.add(ids, bulk)
    assert store.memory_bytes() < 0.45 * flat.memory_bytes()
    np.testing.assert_allclose(store.vectors_for(ids[:50]), bulk[:50], atol=0.01)
    truth = exact(ids, bulk)
    hits = sum(len(set(store.search(q, K, num_candidates=128)[0].tolist()) & set(truth.search(q, K)[0].tolist()))
               for q in queries)
    assert hits >= 0.9 * K * len(queries)
    gone = ids[:200]
    assert store.remove(gone) == 200
    allowed = ids[100:400]  # half removed: the rest searched exactly
    for q in queries[:10]:
        found, _ = store.search(q, K)
        assert not set(found.tolist()) & set(gone.tolist())
        found, _ = store.search(q, K, allowed_ids=allowed)
        assert set(found.tolist()) <= set(allowed[100:].tolist())
        np.testing.assert_array_equal(found, truth_of(ids[200:400], store, q))
    path = tmp_path / "sq8.faiss"
    store.save(path)
    loaded = load_store(path, "flat")
    assert isinstance(loaded, HNSWSQ8Store) and len(loaded) == len(store)
    for q in queries[:10]:
        np.testing.assert_array_equal(loaded.search(q, K)[0], store.search(q, K)[0])
    tiered = TieredStore(bulk.shape[1], hnsw_threshold=2000, hnsw_options={"storage": "sq8"})
    tiered.add(ids, bulk)
    assert tiered.holds == "hnsw" and tiered.inner.storage == "sq8"
    tiered.save(path)
    assert load_store(path, "auto").inner.storage == "sq8"


def truth_of(ids: np.ndarray, store, q: np.ndarray) -> np.ndarray:
    """Exact top K of `ids` over the store's own (decoded) vectors."""
    scores = store.vectors_for(ids) @ q
    order = np.argsort(-scores, kind="stable")[:K]
    return ids[order]
