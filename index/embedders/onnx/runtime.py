"""onnxruntime sessions, and turning a session's token embeddings into sentence vectors.

Pooling and normalisation are done here in numpy, exactly as the model's `1_Pooling/config.json`
says (mean pooling over non-padding tokens for all-MiniLM-L6-v2), then L2 normalisation (kb's
`Embedder` contract: inner product = cosine).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from .tokenizer import ModelTokenizer

# Residual Add + LayerNormalization are left apart: onnxruntime's fused SkipLayerNormalization
# kernel took a fifth of the int8 model's time on this CPU, and without it the documents model
# embeds 20% more passages per second, to the same accuracy (`bench/embedders.py`).
UNFUSED = ["SkipLayerNormFusion"]


def session(data: bytes, threads: int):
    """An `InferenceSession` of the model bytes `data` with `threads` intra-op threads, on the CPU."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Idle pool threads sleep instead of spinning, so they do not take a core from the other session.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"], disabled_optimizers=UNFUSED)


def pool(token_embeddings: np.ndarray, attention_mask: np.ndarray, modes: Sequence[str]) -> np.ndarray:
    """sentence-transformers' Pooling on right-padded float32 arrays, then L2 normalisation."""
    mask = attention_mask.astype(np.float32)[:, :, None]  # (batch, seq, 1)
    parts: list[np.ndarray] = []
    lengths = mask.sum(axis=1)  # (batch, 1)
    for mode in modes:
        if mode == "cls":
            first = attention_mask.argmax(axis=1)
            parts.append(token_embeddings[np.arange(len(first)), first])
        elif mode == "max":
            parts.append(np.where(mask > 0, token_embeddings, -np.inf).max(axis=1))
        elif mode in ("mean", "mean_sqrt_len_tokens"):
            summed = (token_embeddings * mask).sum(axis=1)
            denominator = np.clip(lengths, 1e-9, None)
            parts.append(summed / (denominator if mode == "mean" else np.sqrt(denominator)))
        elif mode == "weightedmean":
            weights = np.arange(1, token_embeddings.shape[1] + 1, dtype=np.float32)[None, :, None] * mask
            parts.append((token_embeddings * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None))
        elif mode == "lasttoken":
            last = np.maximum(attention_mask.sum(axis=1).astype(np.int64) - 1, 0)
            parts.append(token_embeddings[np.arange(len(last)), last])
    vectors = np.concatenate(parts, axis=-1) if len(parts) > 1 else parts[0]
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.ascontiguousarray(vectors / np.clip(norms, 1e-12, None), dtype=np.float32)


def run(session, tokenizer: ModelTokenizer, encodings: Sequence, modes: Sequence[str]) -> np.ndarray:
    """Sentence vectors of a batch of encodings: the session's token embeddings, pooled."""
    feed = tokenizer.feed(encodings, [i.name for i in session.get_inputs()])
    (token_embeddings,) = session.run(["token_embeddings"], feed)
    attention_mask = feed.get("attention_mask")
    if attention_mask is None:
        attention_mask = (feed["input_ids"] != tokenizer.pad_id).astype(np.int64)
    return pool(token_embeddings, attention_mask, modes)


def available_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)
