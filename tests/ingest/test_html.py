"""HTML conversion: main content, metadata, structure; navigation and footers go."""

from __future__ import annotations

import pytest

from ingest import parse, parse_text


@pytest.mark.parametrize(
    ("name", "kept", "dropped"),
    [
        (
            "html/caktusgroup.com.django.html",
            "I had run the test in isolation and it passed but when run in the full suite it failed.",
            ["Toggle navigation", "Case studies", "solutions@caktusgroup.com"],
        ),
        (
            "html/creativecommons.org.html",
            "Creative Commons Affiliate Network includes over 500 researchers",
            ["Search the Commons", "CC Store", "PO Box 1866"],
        ),
        (
            "html/dw.com.colonial.html",
            "The most notorious of the three is Carl Peters",
            ["MEDIA CENTER", "All media content", "A - Z Index"],
        ),
        (
            "html/boingboing.net.millenials.html",
            "Cartoonist Matt Bors got a spot on CNN for his great, scathing critique",
            ["Read the rules you agree to by using this website", "Amazon Services LLC Associates Program"],
        ),
        (
            "html/blog.python.org.html",
            "Python 3.6.0 is the newest major release of the Python language",
            [],
        ),
    ],
)
def test_article_kept_navigation_dropped(parsed, name: str, kept: str, dropped: list[str]) -> None:
    text = parsed[name].text
    assert kept in text
    for chrome in dropped:
        assert chrome not in text, f"navigation/footer text {chrome!r} leaked into {name}"


def test_metadata_block_and_fields(parsed) -> None:
    doc = parsed["html/blog.python.org.html"]
    assert doc.metadata["title"] == "Python 3.6.0 is now available!"
    assert doc.metadata["author"] == "Ned Deily"
    assert doc.metadata["date"] == "2016-12-23"
    assert doc.metadata["sitename"] == "blog.python.org"
    assert doc.text.startswith("Title: Python 3.6.0 is now available!\nAuthor: Ned Deily\nDescription: ")
    assert doc.blocks[0].kind == "metadata"


def test_headings_become_heading_path(parsed) -> None:
    doc = parsed["html/caktusgroup.com.django.html"]
    at = doc.text.index("Digging into this problem, it became clear")
    block = next(b for b in doc.blocks if b.start <= at < b.end)
    assert block.heading_path == ("Fixing at the Source",)
    # Inline code stays inside its sentence.
    assert "a problem with the STATICFILES_DIRS setting but was a problem with using override_settings with" in doc.text


def test_chinese_page_keeps_chinese(parsed) -> None:
    text = parsed["html/chineselyrics4u.com.zhineng.html"].text
    assert "爱 逝去的爱 讨不回来" in text and "我还有话想对你说" in text


def test_small_fragment_falls_back_to_whole_body() -> None:
    page = b"<html><head><title>Tiny</title></head><body><nav>Home | About</nav><h1>Hello</h1><p>Just one line.</p></body></html>"
    doc = parse(page, filename="tiny.html")
    assert "Just one line." in doc.text and "Home | About" not in doc.text


def test_lists_and_tables_are_kept() -> None:
    page = """<!DOCTYPE html><html><head><title>Specs</title></head><body><article>
    <h1>Device specifications</h1>
    <p>This page lists the technical specifications of the device in detail, so that buyers can compare it.
    Every value below was measured in our laboratory under standard conditions over several weeks.</p>
    <h2>Features</h2><ul><li>Waterproof to fifty metres of depth</li><li>Battery lasting two full weeks</li></ul>
    <h2>Measurements</h2>
    <table><tr><th>Property</th><th>Value</th></tr><tr><td>Weight</td><td>120 g</td></tr><tr><td>Height</td><td>4 cm</td></tr></table>
    <p>All measurements were repeated three times and averaged to reduce the error of each single reading.</p>
    </article></body></html>"""
    doc = parse_text(page, "html")
    kinds = {doc.text[b.start : b.end]: (b.kind, b.heading_path) for b in doc.blocks}
    assert kinds["Waterproof to fifty metres of depth"] == ("list", ("Device specifications", "Features"))
    table = next(text for text, (kind, _) in kinds.items() if kind == "table")
    assert "Weight | 120 g" in table and "Height | 4 cm" in table


def test_meta_charset_of_a_legacy_page_is_honoured() -> None:
    body = "<p>Москва — столица России. Это тестовая страница в старой кодировке windows-1251.</p>" * 3
    page = f'<html><head><meta charset="windows-1251"><title>Тест</title></head><body>{body}</body></html>'
    doc = parse(page.encode("cp1251"), filename="legacy.html")
    assert "Москва — столица России." in doc.text
