"""PDF → text with pypdf, page by page; outline entries become headings.

pypdf's plain extraction follows the content stream, which for typeset multi-column
pages (LaTeX, Word) is column by column; "layout" mode would interleave the columns
line by line, so plain mode is used. Lines are re-joined into paragraphs: a paragraph
ends at a short line that closes a sentence; words hyphenated across a line break are
re-joined. Running headers/footers that carry the page number are dropped.
"""

from __future__ import annotations

import io
import logging
import re
import warnings

from ..builder import DocumentBuilder
from ..errors import CorruptDocument, DocumentTooLarge, EncryptedDocument
from ..limits import ParseLimits
from ..normalize import clean_inline
from ..types import ParsedDocument
from .base import Converter, Sample
from .registry import register_converter

# pypdf logs a warning per odd font or object; they say nothing the user can act on.
logging.getLogger("pypdf").setLevel(logging.ERROR)
warnings.filterwarnings("ignore", module=r"pypdf(\.|$)")

_SENTENCE_END = re.compile(r"[.!?:;。！？؟…][\"'”’»)\]]*$")
_LIST_START = re.compile(r"^(?:[•◦▪‣∙·\-–—*]\s|\(?[0-9]{1,2}[.)]\s|\(?[a-zA-Z][.)]\s)")
_HYPHEN_END = re.compile(r"(?<=\w)[-\u2010]$")
_SECTION_NUMBER = re.compile(r"(?:[0-9]+|[A-Z]|[IVXLC]+)(?:\.[0-9]+)*\.?")
_DOT_LEADERS = re.compile(r"(?:\s?\.){4,}")  # ". . . . ." in tables of contents
_CJK = re.compile(r"[\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef]")


@register_converter
class PdfConverter(Converter):
    name = "pdf"
    label = "PDF"
    extensions = frozenset({".pdf"})
    media_types = frozenset({"application/pdf"})
    modules = ("pypdf",)

    def sniff(self, sample: Sample) -> bool:
        at = sample.data.find(b"%PDF-", 0, 1024)
        return at == 0 or (at > 0 and b"%%EOF" in sample.data[-4096:])  # some writers put junk before the header

    def convert(self, data: bytes, limits: ParseLimits, content_type: str | None = None) -> ParsedDocument:
        return _convert(data, limits)


def _convert(data: bytes, limits: ParseLimits) -> ParsedDocument:
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(data), strict=False)
    if reader.is_encrypted and not reader.decrypt(""):
        raise EncryptedDocument(
            "this PDF is password-protected; remove the password (e.g. open it and print to a new PDF, "
            "or `qpdf --decrypt`) and upload again"
        )
    count = len(reader.pages)
    if count > limits.max_pages:
        raise DocumentTooLarge(
            f"this PDF has {count:,} pages, more than the limit of {limits.max_pages:,}; "
            "split it into smaller files and upload them separately"
        )
    headings = _outline_by_page(reader)
    labels = _page_labels(reader, count)
    pages: list[list[str]] = []
    failures: list[Exception] = []
    for page in reader.pages:
        try:
            raw = page.extract_text() or ""
        except Exception as exc:  # one broken page must not lose the rest of the document
            failures.append(exc)
            raw = ""
        lines = (clean_inline(_DOT_LEADERS.sub(" ", line)) for line in raw.split("\n"))
        pages.append([line for line in lines if line])
    running = _running_lines(pages, labels)
    builder = DocumentBuilder("pdf")
    for index, lines in enumerate(pages):
        _add_page(builder, _strip_furniture(lines, labels[index], running), index + 1, headings.get(index, []))
    if failures and len(failures) == count:
        raise CorruptDocument(f"no page of this PDF could be read ({failures[0]}); the file may be damaged — re-export it and upload again")
    return builder.build(
        _metadata(reader),
        pages=count,
        empty_message="no text could be extracted from this PDF; it may be a scan or contain only images — run OCR first",
    )


def _metadata(reader) -> dict[str, str | None]:
    try:
        info = reader.metadata or {}
        return {key: _text(info.get(f"/{key.capitalize()}")) for key in ("title", "author", "subject", "keywords")}
    except Exception:  # broken Info dictionaries are common and never fatal
        return {}


def _text(value: object) -> str | None:
    return str(value) if isinstance(value, str) and value.strip() else None


def _page_labels(reader, count: int) -> list[str]:
    try:
        labels = list(reader.page_labels)
    except Exception:
        labels = []
    return labels if len(labels) == count else [str(i + 1) for i in range(count)]


def _outline_by_page(reader) -> dict[int, list[tuple[int, str]]]:
    """Map 0-based page index → [(level, title)] in outline order."""
    found: dict[int, list[tuple[int, str]]] = {}

    def walk(items: list, level: int) -> None:
        for item in items:
            if isinstance(item, list):
                walk(item, level + 1)
                continue
            try:
                page = reader.get_destination_page_number(item)
                title = clean_inline(str(item.title or ""))
            except Exception:
                continue
            if page is not None and page >= 0 and title:
                found.setdefault(page, []).append((level, title))

    try:
        walk(reader.outline, 1)
    except Exception:  # a damaged outline only costs us the headings
        return {}
    return found


def _without_label(line: str, label: str) -> str | None:
    """The line minus a leading or trailing page label ("4 1.1. TOPOLOGISCHE RÄUME"), else None."""
    if len(line) > 80:
        return None
    if line.startswith(label + " "):
        return line[len(label) + 1 :]
    if line.endswith(" " + label):
        return line[: -len(label) - 1]
    return None


def _running_lines(pages: list[list[str]], labels: list[str]) -> set[str]:
    """Header/footer texts that appear, next to the page number, on more than one page."""
    seen: dict[str, int] = {}
    for lines, label in zip(pages, labels):
        for line in {lines[0], lines[-1]} if lines else ():
            rest = _without_label(line, label)
            if rest:
                seen[rest] = seen.get(rest, 0) + 1
    return {rest for rest, n in seen.items() if n > 1}


def _strip_furniture(lines: list[str], label: str, running: set[str]) -> list[str]:
    """Drop a first/last line that is the page number alone or a running header/footer."""

    def furniture(line: str) -> bool:
        number = rf"[-–—\s]*(?:page\s*)?{re.escape(label)}(?:\s*(?:/|of)\s*\d+)?[-–—\s]*"
        return re.fullmatch(number, line, re.I) is not None or _without_label(line, label) in running

    if lines and furniture(lines[0]):
        lines = lines[1:]
    if lines and furniture(lines[-1]):
        lines = lines[:-1]
    return lines


def _heading_line(line: str, title: str) -> bool:
    """The outline title as printed, possibly after its section number ("1.2 Foo" for "Foo")."""
    line, title = line.casefold(), title.casefold()
    return line == title or (line.endswith(" " + title) and _SECTION_NUMBER.fullmatch(line[: -len(title) - 1]) is not None)


def _add_page(builder: DocumentBuilder, lines: list[str], page: int, headings: list[tuple[int, str]]) -> None:
    # Outline entries whose title is not printed on the page open their section at its top.
    pending = []
    for level, title in headings:
        if any(_heading_line(line, title) for line in lines):
            pending.append((level, title))
        else:
            builder.heading(title, level, page)
    width = _typical_width(lines)
    paragraph: list[str] = []

    def flush() -> None:
        if paragraph:
            builder.add(_join_lines(paragraph), page=page)
            paragraph.clear()

    for line in lines:
        match = next((h for h in pending if _heading_line(line, h[1])), None) if pending else None
        if match:
            flush()
            pending.remove(match)
            builder.heading(line, match[0], page)
            continue
        if paragraph and _LIST_START.match(line):
            flush()
        paragraph.append(line)
        if _SENTENCE_END.search(line) and len(line) < 0.8 * width:
            flush()
    flush()


def _typical_width(lines: list[str]) -> int:
    if not lines:
        return 0
    lengths = sorted(len(line) for line in lines)
    return max(20, lengths[int(0.8 * (len(lengths) - 1))])


def _join_lines(lines: list[str]) -> str:
    out = lines[0]
    for line in lines[1:]:
        if _HYPHEN_END.search(out) and line[:1].isalpha():
            # "adip-" + "iscing" → "adipiscing"; "Zariski-" + "Topologie" keeps its hyphen.
            out = (out[:-1] if line[0].islower() else out) + line
        elif _CJK.match(out[-1]) and _CJK.match(line[0]):
            out += line
        else:
            out += " " + line
    return out
