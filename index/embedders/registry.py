"""Embedding backends by name: the registry, and `load_embedder`, which loads a model with one."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .base import Embedder, ModelUnavailable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackendOptions:
    """What `load_embedder` hands every backend besides the model's name and source."""

    cache_dir: Path | None = None  # where the backend may keep files it derives from the model
    query_threads: int = 1  # threads of `embed_query`
    batch_threads: int | None = None  # threads of `embed_documents` (None: the CPUs this process may use)


Loader = Callable[[str, str, BackendOptions], Embedder]


@dataclass(frozen=True)
class Backend:
    name: str
    load: Loader  # (model name, source, options) -> Embedder; raises ModelUnavailable
    fallback: str | None = None  # the backend loaded instead when this one raises ModelUnavailable


# backend name -> Backend, in registration order (KB_EMBED_BACKEND's accepted values)
BACKENDS: dict[str, Backend] = {}


def register_backend(name: str, *, fallback: str | None = None) -> Callable[[Loader], Loader]:
    """Register a loader function under `name` (a decorator); a name registered again is replaced."""

    def register(load: Loader) -> Loader:
        BACKENDS[name] = Backend(name, load, fallback)
        return load

    return register


def unregister_backend(name: str) -> None:
    BACKENDS.pop(name, None)


def load_embedder(
    name: str,
    source: str,
    backend: str = "torch",
    *,
    onnx_cache_dir: str | os.PathLike[str] | None = None,
    query_threads: int = 1,
    batch_threads: int | None = None,
) -> Embedder:
    """Load the model `name` from `source` (a local path or a Hugging Face id already cached).

    `backend` "onnx" or "onnx-int8" runs the model with onnxruntime, exported once into
    `onnx_cache_dir/<name>/`, with a query session of `query_threads` and a batch session of
    `batch_threads`; when that is impossible (onnxruntime missing, a model it cannot export) the
    torch backend is loaded instead, with a warning saying why. Other backends get the same
    options (`BackendOptions`: `onnx_cache_dir` is their `cache_dir`).
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown embedding backend {backend!r}; known: {', '.join(BACKENDS)}")
    options = BackendOptions(Path(onnx_cache_dir) if onnx_cache_dir is not None else None, query_threads, batch_threads)
    chosen = BACKENDS[backend]
    try:
        return chosen.load(name, source, options)
    except ModelUnavailable as exc:
        if chosen.fallback is None:
            raise
        log.warning("embedding model %s: the %s backend is unavailable (%s); using %s", name, backend, exc, chosen.fallback)
    return load_embedder(name, source, chosen.fallback, onnx_cache_dir=onnx_cache_dir,
                         query_threads=query_threads, batch_threads=batch_threads)
