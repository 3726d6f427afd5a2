"""EPUB → text with ebooklib: spine documents in reading order.

Navigation documents and tables of contents are skipped (they would repeat every
chapter title). A chapter without its own <h1>–<h6> gets its TOC label as heading.
"""

from __future__ import annotations

import io
import re
import warnings
import zipfile
from posixpath import normpath

from ..builder import DocumentBuilder
from ..errors import EncryptedDocument
from ..limits import ParseLimits
from ..normalize import clean_inline
from ..types import ParsedDocument
from ..zipguard import check_zip
from .base import Converter, Sample
from .htmlblocks import HEADINGS, HtmlBlockWriter, element_text, local_name
from .registry import register_converter
from .xhtml import decode_markup, find_body, parse_markup

# ebooklib warns about its own future defaults; nothing a user can act on.
warnings.filterwarnings("ignore", module=r"ebooklib(\.|$)")
_FONTS = (b".otf", b".ttf", b".woff", b".woff2")
_TOC_MARK = re.compile(r"\btoc|toc\b|table[-_ ]?of[-_ ]?contents", re.I)


@register_converter
class EpubConverter(Converter):
    name = "epub"
    label = "EPUB"
    extensions = frozenset({".epub"})
    media_types = frozenset({"application/epub+zip"})
    container = "zip"
    modules = ("ebooklib", "lxml.html")

    def sniff(self, sample: Sample) -> bool:
        if not sample.is_zip:
            return False
        names = sample.zip_names()
        if "mimetype" in names and sample.zip_read("mimetype")[:64].strip() == b"application/epub+zip":
            return True
        return "META-INF/container.xml" in names or any(n.lower().endswith(".opf") for n in names)

    def convert(self, data: bytes, limits: ParseLimits, content_type: str | None = None) -> ParsedDocument:
        return _convert(data, limits)


def _convert(data: bytes, limits: ParseLimits) -> ParsedDocument:
    from ebooklib import ITEM_DOCUMENT, epub

    check_zip(data, limits, "EPUB")
    _refuse_drm(data)
    book = epub.read_epub(io.BytesIO(data), options={"ignore_ncx": False})
    labels = _toc_labels(book.toc)
    builder = DocumentBuilder("epub")
    for idref, _linear in book.spine:
        item = book.get_item_with_id(idref)
        if item is None or item.get_type() != ITEM_DOCUMENT or isinstance(item, epub.EpubNav):
            continue
        if "nav" in (getattr(item, "properties", None) or []):
            continue
        body = find_body(parse_markup(decode_markup(item.content)))
        if _is_toc(body):
            continue
        label = labels.get(normpath(item.get_name()))
        if label and not any(local_name(e) in HEADINGS for e in body.iter()):
            builder.heading(label, 1)
        HtmlBlockWriter(builder).write(body)
    return builder.build(
        _metadata(book),
        empty_message="no text could be extracted from this EPUB; its chapters contain no text (image-only book?) — run OCR first",
    )


def _refuse_drm(data: bytes) -> None:
    """Encrypted chapters (DRM) would come out as noise; obfuscated fonts are harmless."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        if "META-INF/encryption.xml" not in archive.namelist():
            return
        manifest = archive.read("META-INF/encryption.xml")
    encrypted = re.findall(rb'<(?:\w+:)?CipherReference[^>]+URI="([^"]+)"', manifest)
    if any(not uri.lower().endswith(_FONTS) for uri in encrypted):
        raise EncryptedDocument("this EPUB is DRM-protected (its chapters are encrypted); remove the DRM or upload a DRM-free copy")


def _dc(book, name: str) -> list[str]:
    return [clean_inline(str(value)) for value, _attrs in book.get_metadata("DC", name) if value]


def _metadata(book) -> dict[str, str | None]:
    description = " ".join(_dc(book, "description"))
    if "<" in description:  # descriptions are often HTML
        description = element_text(parse_markup(description))
    return {
        "title": next(iter(_dc(book, "title")), None),
        "author": ", ".join(_dc(book, "creator")) or None,
        "description": description or None,
        "subject": ", ".join(_dc(book, "subject")) or None,
        "language": next(iter(_dc(book, "language")), None),
        "publisher": next(iter(_dc(book, "publisher")), None),
        "date": next(iter(_dc(book, "date")), None),
    }


def _toc_labels(toc) -> dict[str, str]:
    """File name → the first TOC label pointing into it."""
    labels: dict[str, str] = {}

    def walk(entries) -> None:
        for entry in entries:
            if isinstance(entry, tuple):
                walk([entry[0]])
                walk(entry[1])
                continue
            href = getattr(entry, "href", None)
            title = clean_inline(getattr(entry, "title", None) or "")
            if href and title:
                labels.setdefault(normpath(href.split("#")[0]), title)

    walk(toc)
    return labels


def _is_toc(body) -> bool:
    """A document that is mostly a table of contents (epub:type, role, class or id says so)."""
    total = len(element_text(body))
    for element in body.iter():
        marks = " ".join(str(v) for k, v in element.attrib.items() if k.split(":")[-1] in ("type", "role", "class", "id"))
        if marks and _TOC_MARK.search(marks) and len(element_text(element)) >= 0.5 * total:
            return True
    return False
