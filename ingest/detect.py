"""Decide a file's format from its content; the name and declared type only break ties.

A PDF renamed `.txt` is still a PDF. The extension or content type is consulted only to
tell Markdown from plain text, to recognise HTML that does not start with a tag, and to
name a damaged DOCX/EPUB correctly.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import PurePosixPath

from .encoding import charset_from_content_type, decode_text
from .errors import CorruptDocument, EmptyDocument
from .formats import unsupported

_MARKDOWN_EXTENSIONS = {".md", ".markdown", ".mdown", ".mkd", ".mkdn"}
_MARKDOWN_TYPES = {"text/markdown", "text/x-markdown"}
_HTML_EXTENSIONS = {".html", ".htm", ".xhtml"}
_HTML_TYPES = {"text/html", "application/xhtml+xml"}
_ZIP_HINTS = {".docx": "docx", ".epub": "epub", "application/epub+zip": "epub",
              "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx"}

# Magic numbers of common formats we refuse, with advice for the user.
_KNOWN_BINARY = (
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "a legacy Microsoft Office file (.doc/.xls/.ppt)", "Save it as DOCX or PDF and upload again."),
    (b"{\\rtf", "an RTF document", "Save it as DOCX or PDF and upload again."),
    (b"\x89PNG", "a PNG image", "Images are not read; run OCR and upload the text or a searchable PDF."),
    (b"\xff\xd8\xff", "a JPEG image", "Images are not read; run OCR and upload the text or a searchable PDF."),
    (b"GIF8", "a GIF image", "Images are not read."),
    (b"\x1f\x8b", "a gzip archive", "Unpack it and upload the documents inside."),
    (b"7z\xbc\xaf", "a 7-Zip archive", "Unpack it and upload the documents inside."),
    (b"Rar!", "a RAR archive", "Unpack it and upload the documents inside."),
)
_ZIP_KINDS = (
    ("xl/", "an Excel spreadsheet (XLSX)", "Export it as PDF or CSV text."),
    ("ppt/", "a PowerPoint presentation (PPTX)", "Export it as PDF."),
)
_HTML_START = re.compile(
    rb"^(?:\s|<\?xml[^>]*>|<!--.*?-->)*<(?:!doctype\s+html|html|head|body)[\s>/]", re.I | re.S
)
_ANY_TAG = re.compile(r"<(?:[a-zA-Z][\w-]*|!--)[^>]*>")


def _hints(filename: str | None, content_type: str | None) -> tuple[str, str]:
    ext = PurePosixPath(filename).suffix.lower() if filename else ""
    mime = (content_type or "").split(";")[0].strip().lower()
    return ext, mime


def _zip_format(data: bytes, ext: str, mime: str) -> str:
    hint = _ZIP_HINTS.get(ext) or _ZIP_HINTS.get(mime)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = archive.namelist()
            if "word/document.xml" in names:
                return "docx"
            if "mimetype" in names and archive.read("mimetype")[:64].strip() == b"application/epub+zip":
                return "epub"
    except Exception as exc:  # BadZipFile, NotImplementedError (odd compression), EOFError, ...
        if hint:
            raise CorruptDocument(
                f"this {hint.upper()} file is damaged or truncated (its ZIP structure cannot be read: {exc}); "
                "open it in its editor, save it again and re-upload"
            ) from exc
        raise unsupported("this ZIP archive cannot be read and", "Upload the documents it contains one by one.") from exc
    if "META-INF/container.xml" in names or any(n.lower().endswith(".opf") for n in names):
        return "epub"
    for prefix, what, advice in _ZIP_KINDS:
        if any(n.startswith(prefix) for n in names):
            raise unsupported(f"this file is {what}, which", advice)
    if "mimetype" in names and any(n == "content.xml" for n in names):
        raise unsupported("this file is an OpenDocument file (ODT/ODS/ODP), which", "Save it as DOCX or PDF and upload again.")
    raise unsupported("this file is a ZIP archive that is neither DOCX nor EPUB, which", "Upload the documents it contains one by one.")


def detect_format(data: bytes, filename: str | None = None, content_type: str | None = None) -> str:
    """Return one of `SUPPORTED_FORMATS` for `data`, judged by its content."""
    if not data:
        raise EmptyDocument("the file is empty (0 bytes); upload a file that contains text")
    ext, mime = _hints(filename, content_type)
    pdf_at = data.find(b"%PDF-", 0, 1024)
    if pdf_at == 0 or (pdf_at > 0 and b"%%EOF" in data[-4096:]):  # some writers put junk before the header
        return "pdf"
    if data.startswith(b"PK\x03\x04") or data.startswith(b"PK\x05\x06"):
        return _zip_format(data, ext, mime)
    for magic, what, advice in _KNOWN_BINARY:
        if data.startswith(magic):
            raise unsupported(f"this file is {what}, which", advice)
    head = data[:2048]
    if _HTML_START.match(head.lstrip(b"\xef\xbb\xbf")):
        return "html"
    text = decode_text(data, charset_from_content_type(content_type))
    if text is None:
        raise unsupported(
            f"this file{f' ({filename})' if filename else ''} is binary data, not text or a known document type; it",
            "Check that you uploaded the right file.",
        )
    if _HTML_START.match(text[:2048].lstrip("\ufeff").encode("utf-8", "ignore")):
        return "html"  # UTF-16 HTML: the byte check above cannot see its tags
    if (ext in _HTML_EXTENSIONS or mime in _HTML_TYPES) and _ANY_TAG.search(text[:4096]):
        return "html"
    if ext in _MARKDOWN_EXTENSIONS or mime in _MARKDOWN_TYPES:
        return "markdown"
    return "txt"
