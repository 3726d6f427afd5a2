"""How many OpenMP threads FAISS searches use, in every thread that searches.

`faiss.omp_set_num_threads` sets the calling thread's own OpenMP setting (libgomp keeps one per
thread that is not in a parallel region): called once at start-up, it left the server's request
threads (anyio's worker pool) on the default, one thread per core, so a one-query flat search ran on
every core and waited for the slowest whenever the machine was busy (figures: BENCHMARKS.md, "The hot
path side by side"). Each store's search calls `use_search_threads`
first; it sets the thread's OpenMP count once per thread (and again after `set_search_threads` changes it).
"""

from __future__ import annotations

import threading

_wanted: int | None = None  # None: leave OpenMP's default
_version = 0
_local = threading.local()


def set_search_threads(threads: int) -> None:
    """OpenMP threads FAISS uses for searches, from now on in every thread (this one at once). One
    suits a server answering single queries on few cores (BENCHMARKS.md, "Vector stores")."""
    global _wanted, _version
    _wanted = max(1, int(threads))
    _version += 1
    use_search_threads()


def use_search_threads() -> None:
    """Apply the search thread count to the calling thread, if it has not been yet (cheap after the first call)."""
    if _wanted is None or getattr(_local, "version", None) == _version:
        return
    import faiss

    faiss.omp_set_num_threads(_wanted)
    _local.version = _version


def search_threads() -> int | None:
    return _wanted
