"""Embedding backends behind one small interface (`Embedder`), registered by name and loaded by
`load_embedder`.

A backend is a loader function registered with `@register_backend(name)` (registry.py) that
returns an `Embedder` (base.py). The built-in backends are the modules imported below: "torch"
(sentence_transformer.py), "onnx" and "onnx-int8" (the onnx package). Adding a backend: a new
module here with its `Embedder` subclass and registered loader, and its import below.
"""

from __future__ import annotations

from .base import Embedder, ModelUnavailable
from .registry import BACKENDS, Backend, BackendOptions, load_embedder, register_backend, unregister_backend

from .sentence_transformer import SentenceTransformerEmbedder  # noqa: E402,I001  (each module registers its backends)
from . import onnx  # noqa: E402,F401

__all__ = [
    "BACKENDS",
    "Backend",
    "BackendOptions",
    "Embedder",
    "ModelUnavailable",
    "SentenceTransformerEmbedder",
    "load_embedder",
    "register_backend",
    "unregister_backend",
]
