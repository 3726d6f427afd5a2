"""The interface every embedding backend implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

import numpy as np


class ModelUnavailable(Exception):
    """The embedding model cannot be loaded (not installed, not downloaded, broken)."""


class Embedder(ABC):
    """Turns text into L2-normalised float32 vectors, so inner product is cosine similarity.

    Everything kb uses of a loaded model is declared here. A backend's embedder sets these
    attributes in its constructor and raises `ModelUnavailable` there if the model cannot be run;
    its methods may be called from several threads at once.
    """

    name: str  # the model's name in kb
    source: str  # where the model was loaded from (a folder, or a Hugging Face id)
    dimension: int  # length of every vector
    max_tokens: int  # longest input, in the model's own tokens, that is embedded without truncation
    backend: str = "torch"  # the backend's registered name: "torch", "onnx" (fp32), "onnx-int8", ...

    @abstractmethod
    def count_tokens(self, text: str) -> int:
        """Tokens the model sees for `text`, special tokens included."""

    @abstractmethod
    def embed_documents(
        self,
        texts: Sequence[str],
        *,
        batch_size: int = 32,
        on_progress: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Embed passages; `on_progress(n)` is called with the number done after each batch."""

    @abstractmethod
    def embed_query(self, text: str) -> np.ndarray:
        """Embed one search query (some models use a different prompt for queries)."""
