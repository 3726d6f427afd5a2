"""Embedding with onnxruntime: a sentence-transformers model exported to ONNX on this machine.

One job per module: model_dir.py reads the model folder, tokenizer.py sets up its tokenizer,
cache.py keeps the exported files with their manifests and the exporters' lock, export.py exports
(and fuses) the transformer, quantize.py makes the int8 models, runtime.py runs onnxruntime
sessions and pools their output, and embedder.py's `OnnxEmbedder` composes them. The backends
"onnx" (fp32) and "onnx-int8" are registered here; both fall back to "torch" when the model
cannot be run with onnxruntime.
"""

from __future__ import annotations

from ..registry import BackendOptions, register_backend
from .cache import CACHE_FORMAT
from .embedder import VARIANTS, OnnxEmbedder
from .export import OPSET
from .runtime import pool


@register_backend("onnx", fallback="torch")
def load_fp32(name: str, source: str, options: BackendOptions) -> OnnxEmbedder:
    return _load(name, source, options, "fp32")


@register_backend("onnx-int8", fallback="torch")
def load_int8(name: str, source: str, options: BackendOptions) -> OnnxEmbedder:
    return _load(name, source, options, "int8")


def _load(name: str, source: str, options: BackendOptions, variant: str) -> OnnxEmbedder:
    if options.cache_dir is None:
        raise ValueError("the ONNX backends need onnx_cache_dir, where the exported model is kept")
    return OnnxEmbedder(
        name,
        source,
        options.cache_dir / name,
        variant=variant,
        query_threads=options.query_threads,
        batch_threads=options.batch_threads,
    )


__all__ = ["CACHE_FORMAT", "OPSET", "VARIANTS", "OnnxEmbedder", "load_fp32", "load_int8", "pool"]
