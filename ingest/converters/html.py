"""HTML → main content with trafilatura; navigation, menus, banners and footers go.

trafilatura's "html" output keeps headings, paragraphs, lists and tables, and carries
the page metadata (title, author, date, site name, description) as <meta> tags; its
body is walked like any HTML. If trafilatura finds no main content (tiny pages, plain
fragments), the whole body minus navigation, header, footer and asides is used instead.
"""

from __future__ import annotations

import re

from ..builder import DocumentBuilder
from ..encoding import charset_from_content_type
from ..limits import ParseLimits
from ..types import ParsedDocument
from .base import Converter, Sample
from .htmlblocks import HtmlBlockWriter, element_text, local_name
from .registry import register_converter
from .xhtml import decode_markup, find_body, parse_markup

_METADATA_KEYS = ("title", "author", "description", "date", "sitename", "language")
_CHROME = ("nav", "header", "footer", "aside", "form")
# trafilatura renders code blocks as <blockquote> and inline code as <pre> inside <p>.
_TRAFILATURA_VERBATIM = frozenset({"pre", "blockquote", "code"})
# Below this many characters trafilatura has not found an article (its MIN_EXTRACTED_SIZE).
_MIN_MAIN_TEXT = 250
_EMPTY = "no text could be extracted from this HTML page; it may be built by JavaScript — save the rendered page or paste its text"
_HTML_START = re.compile(
    rb"^(?:\s|<\?xml[^>]*>|<!--.*?-->)*<(?:!doctype\s+html|html|head|body)[\s>/]", re.I | re.S
)
_ANY_TAG = re.compile(r"<(?:[a-zA-Z][\w-]*|!--)[^>]*>")


@register_converter
class HtmlConverter(Converter):
    name = "html"
    label = "HTML"
    extensions = frozenset({".html", ".htm", ".xhtml"})
    media_types = frozenset({"text/html", "application/xhtml+xml"})
    text_input = True
    text_aliases = frozenset({"htm"})
    modules = ("trafilatura", "lxml.html")

    def sniff(self, sample: Sample) -> bool:
        return _HTML_START.match(sample.data[:2048].lstrip(b"\xef\xbb\xbf")) is not None

    def sniff_text(self, sample: Sample, text: str) -> bool:
        if _HTML_START.match(text[:2048].lstrip("\ufeff").encode("utf-8", "ignore")):
            return True  # UTF-16 HTML: the byte check cannot see its tags
        # HTML that does not start with a tag: trusted when its name or type says so and it has tags
        return self.hinted(sample) and _ANY_TAG.search(text[:4096]) is not None

    def convert(self, data: bytes, limits: ParseLimits, content_type: str | None = None) -> ParsedDocument:
        return self.convert_text(decode_markup(data, charset_from_content_type(content_type)))

    def convert_text(self, text: str) -> ParsedDocument:
        return _convert_markup(text)


def _convert_markup(markup: str) -> ParsedDocument:
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
