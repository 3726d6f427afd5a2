"""HTML → main content with trafilatura; navigation, menus, banners and footers go.

trafilatura's "html" output keeps headings, paragraphs, lists and tables, and carries
the page metadata (title, author, date, site name, description) as <meta> tags; its
body is walked like any HTML. If trafilatura finds no main content (tiny pages, plain
fragments), the whole body minus navigation, header, footer and asides is used instead.
"""

from __future__ import annotations

from ..builder import DocumentBuilder
from ..encoding import charset_from_content_type
from ..limits import ParseLimits
from ..types import ParsedDocument
from .htmlblocks import HtmlBlockWriter, element_text, local_name
from .xhtml import decode_markup, find_body, parse_markup

_METADATA_KEYS = ("title", "author", "description", "date", "sitename", "language")
_CHROME = ("nav", "header", "footer", "aside", "form")
# trafilatura renders code blocks as <blockquote> and inline code as <pre> inside <p>.
_TRAFILATURA_VERBATIM = frozenset({"pre", "blockquote", "code"})
# Below this many characters trafilatura has not found an article (its MIN_EXTRACTED_SIZE).
_MIN_MAIN_TEXT = 250
_EMPTY = "no text could be extracted from this HTML page; it may be built by JavaScript — save the rendered page or paste its text"


def convert(data: bytes, limits: ParseLimits, content_type: str | None = None) -> ParsedDocument:
    return convert_text(decode_markup(data, charset_from_content_type(content_type)))


def convert_text(markup: str) -> ParsedDocument:
    import trafilatura

    extracted = trafilatura.extract(
        markup,
        output_format="html",
        with_metadata=True,
        include_tables=True,
        include_comments=False,
        include_images=False,
        include_links=False,
        include_formatting=False,
        deduplicate=False,
    )
    metadata: dict[str, str | None] = {}
    main = DocumentBuilder("html")
    if extracted:
        # An HTML parser would close the paragraph at an inline <pre>; <code> keeps it inline.
        tree = parse_markup(extracted.replace("<pre>", "<code>").replace("</pre>", "</code>"))
        metadata = {m.get("name"): m.get("content") for m in tree.iter("meta") if m.get("name") in _METADATA_KEYS}
        body = find_body(tree)
        HtmlBlockWriter(main, _TRAFILATURA_VERBATIM).write(body)
        if len(element_text(body)) >= _MIN_MAIN_TEXT:
            return main.build(metadata, empty_message=_EMPTY)
    # Little or no main content: trafilatura then falls back to flattening the whole page.
    # A short page is better read whole, structure kept, minus its navigation chrome.
    tree = parse_markup(markup)
    whole = DocumentBuilder("html")
    body = find_body(tree)
    for element in [e for e in body.iter() if local_name(e) in _CHROME]:
        element.drop_tree()
    HtmlBlockWriter(whole).write(body)
    return (whole if whole.has_text else main).build(metadata or _page_metadata(trafilatura, tree), empty_message=_EMPTY)


def _page_metadata(trafilatura, tree) -> dict[str, str | None]:
    try:
        found = trafilatura.extract_metadata(tree)
    except Exception:  # metadata is a bonus; the text matters
        return {}
    return {key: getattr(found, key, None) for key in _METADATA_KEYS} if found else {}
