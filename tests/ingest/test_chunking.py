"""Chunker invariants on every corpus document, with the embedding model's real tokenizer."""

from __future__ import annotations

import json

import pytest
from ingest_testkit import CORPUS

from ingest import Block, Chunk, ParsedDocument, chunk_document, parse_text

MAX = 256
OVERLAP = 32


def unspaced(ch: str) -> bool:
    """Scripts written without spaces between words (CJK, kana, Thai, ...)."""
    cp = ord(ch)
    return (
        0x2E80 <= cp <= 0x9FFF or 0xF900 <= cp <= 0xFAFF or 0xFF00 <= cp <= 0xFFEF
        or 0x0E00 <= cp <= 0x0EFF or 0x1000 <= cp <= 0x109F or 0x1780 <= cp <= 0x17FF
    )


def word_char(ch: str) -> bool:
    return ch.isalnum() and not unspaced(ch)


def check_invariants(doc: ParsedDocument, chunks: list[Chunk], count, max_tokens: int = MAX) -> None:
    text = doc.text
    assert chunks, "a document with text must give chunks"
    for chunk in chunks:
        assert chunk.text == text[chunk.start : chunk.end]
        assert chunk.text and chunk.text == chunk.text.strip()
        real = count(chunk.text)
        assert real <= max_tokens, f"chunk of {real} tokens > {max_tokens}: {chunk.text[:80]!r}"
        assert chunk.token_count == real
        if chunk.start > 0:
            assert not (word_char(text[chunk.start - 1]) and word_char(text[chunk.start])), f"starts mid-word: {text[chunk.start - 20 : chunk.start + 20]!r}"
        if chunk.end < len(text):
            assert not (word_char(text[chunk.end - 1]) and word_char(text[chunk.end])), f"ends mid-word: {text[chunk.end - 20 : chunk.end + 20]!r}"
        first = next(b for b in doc.blocks if b.start <= chunk.start < b.end)
        assert chunk.heading_path == first.heading_path
    # In order, and together they cover every non-whitespace character of the text.
    assert [c.start for c in chunks] == sorted({c.start for c in chunks})
    assert [c.end for c in chunks] == sorted({c.end for c in chunks})
    assert not text[: chunks[0].start].strip() and not text[chunks[-1].end :].strip()
    for previous, following in zip(chunks, chunks[1:]):
        assert not text[previous.end : following.start].strip(), "text between two chunks was dropped"
    # Every heading (or run of headings) opens a chunk, and no chunk reaches across it.
    starts = {c.start for c in chunks}
    for before, block in zip([Block(0, 0, "heading")] + doc.blocks, doc.blocks):
        if block.kind == "heading" and before.kind != "heading":
            assert block.start in starts, f"heading {text[block.start : block.end]!r} does not start a chunk"
            assert not any(c.start < block.start < c.end for c in chunks), "a chunk spans two sections"


@pytest.fixture(scope="module")
def chunked(parsed, count_tokens) -> dict[str, list[Chunk]]:
    return {name: chunk_document(doc, count_tokens=count_tokens, max_tokens=MAX, overlap_tokens=OVERLAP) for name, doc in parsed.items()}


def test_invariants_on_every_corpus_document(parsed, chunked, count_tokens) -> None:
    assert len(chunked) >= 20
    for name, doc in parsed.items():
        check_invariants(doc, chunked[name], count_tokens)


def test_overlap_repeats_trailing_sentences_within_a_section(parsed, chunked, count_tokens) -> None:
    doc, chunks = parsed["epub/moby-dick.epub"], chunked["epub/moby-dick.epub"]
    same_section = [(a, b) for a, b in zip(chunks, chunks[1:]) if a.heading_path == b.heading_path]
    overlapping = [(a, b) for a, b in same_section if b.start < a.end]
    assert len(overlapping) >= 0.8 * len(same_section)
    for a, b in overlapping:
        shared = doc.text[b.start : a.end]
        assert a.text.endswith(shared) and b.text.startswith(shared)
        assert count_tokens(shared) <= OVERLAP + 2  # + [CLS] and [SEP]
    # A new chapter starts fresh: no overlap reaches back into the previous one.
    chapter_starts = [c for c in chunks if c.text.startswith("Chapter ")]
    assert len(chapter_starts) == 135


def test_without_overlap_chunks_are_disjoint(parsed, count_tokens) -> None:
    doc = parsed["pdf/GeoTopo-komprimiert.pdf"]
    chunks = chunk_document(doc, count_tokens=count_tokens, max_tokens=MAX)
    check_invariants(doc, chunks, count_tokens)
    assert all(a.end < b.start for a, b in zip(chunks, chunks[1:]))


def test_geotopo_chunks_carry_page_ranges(parsed, chunked) -> None:
    doc, chunks = parsed["pdf/GeoTopo-komprimiert.pdf"], chunked["pdf/GeoTopo-komprimiert.pdf"]
    body = [c for c in chunks if c.page_start is not None]
    assert len(body) >= len(chunks) - 1  # only the metadata chunk may lack pages
    assert all(c.page_start <= c.page_end for c in body)
    assert max(c.page_end for c in body) == 117
    assert any(c.page_end > c.page_start for c in body), "some chunk should span a page break"
    at = doc.text.index("Diese Gruppe heißt Fundamentalgruppe von X im Basispunkt x.")
    hit = next(c for c in chunks if c.start <= at < c.end)
    assert hit.page_start <= 52 <= hit.page_end
    assert hit.heading_path == ("3 Fundamentalgruppe und Überlagerungen", "3.2 Fundamentalgruppe")


def test_long_sentence_without_punctuation_is_cut_between_words(count_tokens) -> None:
    words = " ".join(f"word{i} alpha beta gamma" for i in range(400))
    doc = parse_text(words)
    chunks = chunk_document(doc, count_tokens=count_tokens, max_tokens=64)
    assert len(chunks) > 10
    check_invariants(doc, chunks, count_tokens, max_tokens=64)


def test_cjk_without_spaces_is_cut_between_characters(count_tokens) -> None:
    text = "日本語の組版は縦組と横組があり文字の配置には多くの規則がある" * 40
    doc = parse_text(text)
    chunks = chunk_document(doc, count_tokens=count_tokens, max_tokens=50)
    assert len(chunks) > 5
    check_invariants(doc, chunks, count_tokens, max_tokens=50)
    assert "".join(c.text for c in chunks) == text


def test_cjk_and_arabic_sentence_ends(count_tokens) -> None:
    doc = parse_text("これは最初の文です。これは二番目の文です！" * 30 + "\n\n" + "هل هذا سؤال؟ نعم هذا سؤال. " * 30)
    chunks = chunk_document(doc, count_tokens=count_tokens, max_tokens=40)
    check_invariants(doc, chunks, count_tokens, max_tokens=40)
    assert all(c.text.endswith(("。", "！", "؟", ".")) for c in chunks)


def test_a_word_longer_than_the_budget_is_still_bounded(count_tokens) -> None:
    doc = parse_text("start " + "x" * 3000 + " end")
    chunks = chunk_document(doc, count_tokens=count_tokens, max_tokens=32)
    assert all(count_tokens(c.text) <= 32 for c in chunks)
    assert "".join(c.text for c in chunks).replace(" ", "") == doc.text.replace(" ", "")


def test_any_token_counter_works() -> None:
    doc = parse_text("One two three four. Five six seven eight. Nine ten eleven twelve.\n\nThirteen fourteen.")
    chunks = chunk_document(doc, count_tokens=lambda t: len(t.split()), max_tokens=8, overlap_tokens=4)
    assert [c.text for c in chunks] == [
        "One two three four. Five six seven eight.",
        "Five six seven eight. Nine ten eleven twelve.",
        "Nine ten eleven twelve.\n\nThirteen fourteen.",  # same section: the overlap crosses the paragraph
    ]
    with_heading = parse_text("# A\n\nOne two three four five six seven.\n\n# B\n\nEight nine.", format="markdown")
    chunks = chunk_document(with_heading, count_tokens=lambda t: len(t.split()), max_tokens=8, overlap_tokens=4)
    assert [c.text for c in chunks] == ["A\n\nOne two three four five six seven.", "B\n\nEight nine."]


def test_bad_arguments(count_tokens) -> None:
    doc = parse_text("Some text.")
    with pytest.raises(ValueError):
        chunk_document(doc, count_tokens=count_tokens, max_tokens=2)
    with pytest.raises(ValueError):
        chunk_document(doc, count_tokens=count_tokens, max_tokens=100, overlap_tokens=100)


def test_msmarco_passages_and_geotopo_chunk_whole(parsed, count_tokens) -> None:
    """Speed is measured by bench/ingest_bench.py; this checks every passage chunks completely."""
    lines = (CORPUS / "retrieval" / "msmarco-5k" / "corpus.jsonl").read_text(encoding="utf-8").split("\n")
    passages = [json.loads(line)["text"] for line in lines if line.strip()]
    assert len(passages) == 5000
    total = 0
    for passage in passages:
        doc = parse_text(passage)
        chunks = chunk_document(doc, count_tokens=count_tokens, max_tokens=MAX)
        total += len(chunks)
        assert chunks[0].start == 0 and chunks[-1].end == len(doc.text)
    geotopo = parsed["pdf/GeoTopo-komprimiert.pdf"]
    pieces = chunk_document(geotopo, count_tokens=count_tokens, max_tokens=MAX, overlap_tokens=OVERLAP)
    assert total >= 5000
    assert pieces[0].start <= 100 and pieces[-1].end == len(geotopo.text.rstrip())
