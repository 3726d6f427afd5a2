"""Embedding with a sentence-transformers model on the CPU."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence

import numpy as np

from .base import Embedder, ModelUnavailable
from .registry import BackendOptions, register_backend

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
        self._length_tokenizer = self._fixed_tokenizer()

    def _fixed_tokenizer(self):
        """A private copy of the Rust tokenizer without truncation or padding, used to count tokens.

        The HF tokenizer object changes its backend's truncation settings on every call, so two
        threads using it at once (a count here, an `encode` there) can collide; this copy is never
        changed after it is made. None for a slow (Python) tokenizer: the HF one is used then.
        """
        backend = getattr(self._tokenizer, "backend_tokenizer", None) if getattr(self._tokenizer, "is_fast", False) else None
        if backend is None:
            return None
        from tokenizers import Tokenizer

        copy = Tokenizer.from_str(backend.to_str())
        copy.no_truncation()
        copy.no_padding()
        return copy

    def _prompt(self, kind: str) -> str | None:
        prompts = getattr(self._model, "prompts", None) or {}
        return prompts.get(kind)

    def count_tokens(self, text: str) -> int:
        prefix = self._document_prompt or ""
        if self._length_tokenizer is not None:
            # encode_batch releases the GIL while it tokenizes (encode holds it)
            return len(self._length_tokenizer.encode_batch([prefix + text], add_special_tokens=True)[0].ids)
        return len(self._tokenizer(prefix + text, add_special_tokens=True, truncation=False)["input_ids"])

    def _token_lengths(self, texts: Sequence[str]) -> list[int]:
        prefix = self._document_prompt or ""
        prefixed = [prefix + t for t in texts]
        if self._length_tokenizer is not None:
            return [len(e.ids) for e in self._length_tokenizer.encode_batch(prefixed, add_special_tokens=True)]
        return [len(ids) for ids in self._tokenizer(prefixed, add_special_tokens=True, truncation=False)["input_ids"]]

    def embed_documents(
        self,
        texts: Sequence[str],
        *,
        batch_size: int = 32,
        on_progress: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Embed passages batched by token length across the whole input, returned in the input's order.

        All texts are sorted by token length (longest first) before being cut into batches, so
        each batch holds texts of similar length and little padding is computed; `encode` alone
        sorts only within the slice it is given. `on_progress(done)` runs after each batch.
        """
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        lengths = self._token_lengths(texts)
        order = sorted(range(len(texts)), key=lambda i: -lengths[i])
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            out[rows] = self._encode([texts[i] for i in rows], self._document_prompt, batch_size)
            if on_progress:
                on_progress(start + len(rows))
        return out

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


@register_backend("torch")
def load(name: str, source: str, options: BackendOptions) -> SentenceTransformerEmbedder:
    """The torch backend: sentence-transformers chooses its own threads and keeps no cache."""
    return SentenceTransformerEmbedder(name, source)
