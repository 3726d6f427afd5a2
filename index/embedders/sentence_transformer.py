"""Embedding with a sentence-transformers model on the CPU."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence

import numpy as np

from .base import Embedder, ModelUnavailable

log = logging.getLogger(__name__)


class SentenceTransformerEmbedder(Embedder):
    """A sentence-transformers model loaded from a local path or the local Hugging Face cache.

    Nothing is downloaded: `HF_HUB_OFFLINE=1` is set before loading, so a model that is not
    on this machine fails at once with `ModelUnavailable` instead of hanging on the network.
    """

    def __init__(self, name: str, source: str, *, device: str = "cpu"):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        from sentence_transformers import SentenceTransformer

        try:
            self._model = SentenceTransformer(str(source), device=device)
        except Exception as exc:  # OSError, ValueError, HF hub errors: all mean "not loadable"
            raise ModelUnavailable(f"embedding model {name!r} could not be loaded from {source!r}: {exc}") from exc
        self.name = name
        self.source = str(source)
        self._tokenizer = self._model.tokenizer
        get_dim = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        self.dimension = int(get_dim())
        self.max_tokens = int(self._model.max_seq_length)
        self._query_prompt = self._prompt("query")
        self._document_prompt = self._prompt("document") or self._prompt("passage")

    def _prompt(self, kind: str) -> str | None:
        prompts = getattr(self._model, "prompts", None) or {}
        return prompts.get(kind)

    def count_tokens(self, text: str) -> int:
        prefix = self._document_prompt or ""
        return len(self._tokenizer(prefix + text, add_special_tokens=True, truncation=False)["input_ids"])

    def embed_documents(
        self,
        texts: Sequence[str],
        *,
        batch_size: int = 32,
        on_progress: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        parts: list[np.ndarray] = []
        for start in range(0, len(texts), batch_size):
            batch = list(texts[start : start + batch_size])
            parts.append(self._encode(batch, self._document_prompt, batch_size))
            if on_progress:
                on_progress(start + len(batch))
        return np.vstack(parts)

    def embed_query(self, text: str) -> np.ndarray:
        return self._encode([text], self._query_prompt, 1)[0]

    def _encode(self, texts: list[str], prompt: str | None, batch_size: int) -> np.ndarray:
        vectors = self._model.encode(
            texts,
            prompt=prompt,
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)
