"""Embedding backends behind one small interface, and a factory that loads them by name."""

from .base import Embedder, ModelUnavailable
from .sentence_transformer import SentenceTransformerEmbedder


def load_embedder(name: str, source: str) -> Embedder:
    """Load the model `name` from `source` (a local path or a Hugging Face id already cached)."""
    return SentenceTransformerEmbedder(name, source)


__all__ = ["Embedder", "ModelUnavailable", "SentenceTransformerEmbedder", "load_embedder"]
