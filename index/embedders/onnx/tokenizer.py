"""The model's fast (Rust) tokenizer, set up as sentence-transformers uses it, and the int64 arrays
a batch of its encodings becomes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..base import ModelUnavailable
from .model_dir import ModelFolder


class ModelTokenizer:
    """Counting and encoding with private copies of the Rust tokenizer (thread-safe: never changed).

    The Hugging Face wrapper changes its backend's truncation settings on every call, which is not
    safe across threads; the copies here have fixed settings: one without truncation (counting, as
    the torch backend counts), one truncating at `max_tokens` (embedding; a safety net only, kb's
    chunker keeps passages within `max_tokens`).
    """

    def __init__(self, folder: ModelFolder, name: str):
        try:
            from transformers import AutoTokenizer

            kwargs = {}
            if folder.st_config.get("max_seq_length"):
                kwargs["model_max_length"] = int(folder.st_config["max_seq_length"])
            tokenizer = AutoTokenizer.from_pretrained(str(folder.transformer_dir), use_fast=True, **kwargs)
        except Exception as exc:
            raise ModelUnavailable(f"tokenizer of {name!r} could not be loaded from {folder.transformer_dir}: {exc}") from exc
        if not getattr(tokenizer, "is_fast", False):
            raise ModelUnavailable(f"the ONNX backend needs a fast (Rust) tokenizer; {name!r} has none")
        max_positions = folder.hf_config.get("max_position_embeddings")
        if "model_max_length" not in kwargs and max_positions and max_positions != -1:
            tokenizer.model_max_length = min(tokenizer.model_max_length, int(max_positions))
        if folder.st_config.get("do_lower_case"):
            from tokenizers.normalizers import Lowercase, Sequence as NormalizerSequence

            backend = tokenizer.backend_tokenizer
            if "Lowercase" not in repr(backend.normalizer):
                current = [backend.normalizer] if backend.normalizer is not None else []
                backend.normalizer = NormalizerSequence([Lowercase(), *current])
        self.max_tokens = int(tokenizer.model_max_length)
        self.hf = tokenizer  # the Hugging Face tokenizer (its model_input_names decide the export's inputs)
        from tokenizers import Tokenizer

        serialized = tokenizer.backend_tokenizer.to_str()
        self._count = Tokenizer.from_str(serialized)
        self._count.no_truncation()
        self._count.no_padding()
        self._embed = Tokenizer.from_str(serialized)
        self._embed.no_padding()
        self._embed.enable_truncation(self.max_tokens)
        self.pad_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0)
        self.pad_type_id = int(getattr(tokenizer, "pad_token_type_id", 0) or 0)

    def count(self, text: str) -> int:
        """Tokens of `text`, special tokens included, without truncation. Through `encode_batch`,
        which releases the GIL while it tokenizes (`encode` holds it): chunking a large document in a
        worker thread then leaves the request threads free."""
        return len(self._count.encode_batch([text], add_special_tokens=True)[0].ids)

    def encode_batch(self, texts: Sequence[str]) -> list:
        """Encodings truncated at `max_tokens` (their `overflowing` says whether they were cut)."""
        return self._embed.encode_batch(list(texts), add_special_tokens=True)

    def feed(self, encodings: Sequence, names: Sequence[str]) -> dict[str, np.ndarray]:
        """Right-padded int64 arrays (the session inputs called `names`) for a batch of encodings."""
        length = max(len(e.ids) for e in encodings)
        ids = np.full((len(encodings), length), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(encodings), length), dtype=np.int64)
        types = np.full((len(encodings), length), self.pad_type_id, dtype=np.int64)
        for row, encoding in enumerate(encodings):
            n = len(encoding.ids)
            ids[row, :n] = encoding.ids
            mask[row, :n] = 1
            types[row, :n] = encoding.type_ids
        arrays = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        return {name: arrays[name] for name in names}
