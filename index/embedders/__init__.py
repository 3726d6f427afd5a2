"""Embedding backends behind one small interface, and a factory that loads them by name."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from .base import Embedder, ModelUnavailable
from .sentence_transformer import SentenceTransformerEmbedder

log = logging.getLogger(__name__)

BACKENDS = ("torch", "onnx", "onnx-int8")


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
    torch backend is loaded instead, with a warning saying why.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown embedding backend {backend!r}; known: {', '.join(BACKENDS)}")
    if backend != "torch":
        if onnx_cache_dir is None:
            raise ValueError("the ONNX backends need onnx_cache_dir, where the exported model is kept")
        from .onnx import OnnxEmbedder

        try:
            return OnnxEmbedder(
                name,
                source,
                Path(onnx_cache_dir) / name,
                variant="int8" if backend == "onnx-int8" else "fp32",
                query_threads=query_threads,
                batch_threads=batch_threads,
            )
        except ModelUnavailable as exc:
            log.warning("embedding model %s: the %s backend is unavailable (%s); using torch", name, backend, exc)
    return SentenceTransformerEmbedder(name, source)


__all__ = ["BACKENDS", "Embedder", "ModelUnavailable", "SentenceTransformerEmbedder", "load_embedder"]
