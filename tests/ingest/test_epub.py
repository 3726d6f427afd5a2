"""EPUB conversion on the real corpus: spine order, chapter titles, no TOC, scripts intact."""

from __future__ import annotations

import zipfile
from io import BytesIO

import pytest
from ingest_testkit import read

from ingest import parse
from ingest.errors import EncryptedDocument


def heading_texts(doc) -> list[str]:
    return [doc.text[b.start : b.end] for b in doc.blocks if b.kind == "heading"]


def path_at(doc, phrase: str) -> tuple[str, ...]:
    at = doc.text.index(phrase)
    return next(b.heading_path for b in doc.blocks if b.start <= at < b.end)


def test_moby_dick_chapters_in_order_with_titles(parsed) -> None:
    doc = parsed["epub/moby-dick.epub"]
    assert doc.metadata["title"] == "Moby-Dick" and doc.metadata["author"] == "Herman Melville"
    assert doc.metadata["language"] == "en-US"
    chapters = [h for h in heading_texts(doc) if h.startswith("Chapter ")]
    assert [int(h.split()[1].rstrip(".")) for h in chapters] == list(range(1, 136))
    assert chapters[:3] == ["Chapter 1. Loomings.", "Chapter 2. The Carpet-Bag.", "Chapter 3. The Spouter-Inn."]
    text = doc.text
    assert text.index("ETYMOLOGY.") < text.index("Loomings") < text.index("The Carpet-Bag") < text.index("Epilogue")
    assert path_at(doc, "Call me Ishmael.") == ("Chapter 1. Loomings.",)
    assert path_at(doc, "It is a way I have of driving off the spleen") == ("Chapter 1. Loomings.",)
    assert path_at(doc, "The drama’s done. Why then here does any one step forth?") == ("Epilogue",)
    # The "Brief Contents" page and the navigation document are not body text.
    assert "Brief Contents" not in text and text.count("Chapter 1. Loomings.") == 1


def test_accessible_epub_skips_nav_document(parsed) -> None:
    doc = parsed["epub/accessible_epub_3.epub"]
    assert doc.metadata["author"] == "Matt Garrish"
    assert doc.text.count("Chapter 1. Introduction") == 1
    assert path_at(doc, "Don’t fall into the trap of hand-picking accessibility.")[-1] == "Preface"


def test_arabic_epub_keeps_arabic_script(parsed) -> None:
    doc = parsed["epub/regime-anticancer-arabic.epub"]
    assert doc.metadata["title"] == "Le Vrai Régime anti-cancer"
    assert doc.metadata["language"] == "ar"
    assert doc.metadata["author"] == "Pr David Khayat, Nathalie Hutter-Lardeau, Marina Khalil Fayad"
    assert "فالكائن البشري الراشد مؤلّف من نحو مليون مليار خليّة." in doc.text
    assert path_at(doc, "فالكائن البشري الراشد") == ("من أين تأتي الحياة؟",)


def test_japanese_epub_keeps_japanese_and_skips_its_toc(parsed) -> None:
    doc = parsed["epub/jlreq-in-japanese.epub"]
    assert doc.metadata["title"] == "日本語組版処理の要件（日本語版）"
    assert doc.metadata["description"].startswith("この文書は，CSS，SVGおよびXSL-FOなどの技術で")
    assert "すべての文化集団は，独自の言語，文字，書記システムを持つ．" in doc.text
    assert path_at(doc, "すべての文化集団は") == ("日本語組版処理の要件（日本語版）", "第1章 序論", "1.1 この文書の目的")
    assert "目次" not in heading_texts(doc)  # the table-of-contents document is skipped


def test_drm_protected_epub_is_encrypted() -> None:
    base = read("epub/regime-anticancer-arabic.epub")
    source = zipfile.ZipFile(BytesIO(base))
    out = BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            target.writestr(item, source.read(item.filename))
        target.writestr(
            "META-INF/encryption.xml",
            '<encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container" xmlns:enc="http://www.w3.org/2001/04/xmlenc#">'
            '<enc:EncryptedData><enc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/>'
            '<enc:CipherData><enc:CipherReference URI="EPUB/Content/C_content.xhtml"/></enc:CipherData></enc:EncryptedData></encryption>',
        )
    with pytest.raises(EncryptedDocument) as caught:
        parse(out.getvalue(), filename="drm.epub")
    assert "DRM" in caught.value.message
