"""Decide a file's format from its content; the name and declared type only break ties.

A PDF renamed `.txt` is still a PDF. Each registered converter says how its format is recognised
(`Converter.sniff` on the bytes, `Converter.sniff_text` once they are decoded as text); this module
asks them in order, and refuses, with advice, the common formats no converter reads.
"""

from __future__ import annotations

from .converters import Sample, UnreadableZip, converters, fallback_converter, unsupported
from .encoding import decode_text
from .errors import CorruptDocument, EmptyDocument, UnsupportedFormat

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
# ZIP-based formats we refuse, by a folder inside the archive.
_ZIP_KINDS = (
    ("xl/", "an Excel spreadsheet (XLSX)", "Export it as PDF or CSV text."),
    ("ppt/", "a PowerPoint presentation (PPTX)", "Export it as PDF."),
)


def detect_format(data: bytes, filename: str | None = None, content_type: str | None = None) -> str:
    """Return one of `SUPPORTED_FORMATS` for `data`, judged by its content."""
    if not data:
        raise EmptyDocument("the file is empty (0 bytes); upload a file that contains text")
    sample = Sample.of(data, filename, content_type)
    try:
        for converter in converters():
            if converter.sniff(sample):
                return converter.name
    except UnreadableZip as exc:
        raise _damaged_zip(sample, exc) from exc.__cause__
    if sample.is_zip:
        raise _unsupported_zip(sample)
    for magic, what, advice in _KNOWN_BINARY:
        if data.startswith(magic):
            raise unsupported(f"this file is {what}, which", advice)
    text = decode_text(data, sample.charset)
    if text is None:
        raise unsupported(
            f"this file{f' ({filename})' if filename else ''} is binary data, not text or a known document type; it",
            "Check that you uploaded the right file.",
        )
    for converter in converters():
        if converter.sniff_text(sample, text):
            return converter.name
    return fallback_converter().name


def _zip_formats() -> list:
    return [c for c in converters() if c.container == "zip"]


def _damaged_zip(sample: Sample, exc: UnreadableZip) -> CorruptDocument | UnsupportedFormat:
    """A ZIP whose structure cannot be read: damaged, if its name or type says which format it is."""
    hinted = next((c for c in _zip_formats() if sample.extension in c.extensions), None) or next(
        (c for c in _zip_formats() if sample.media_type in c.media_types), None
    )
    if hinted:
        return CorruptDocument(
            f"this {hinted.label} file is damaged or truncated (its ZIP structure cannot be read: {exc}); "
            "open it in its editor, save it again and re-upload"
        )
    return unsupported("this ZIP archive cannot be read and", "Upload the documents it contains one by one.")


def _unsupported_zip(sample: Sample) -> UnsupportedFormat | CorruptDocument:
    """A ZIP archive no converter claimed: say what it is, if we know."""
    try:
        names = sample.zip_names()
    except UnreadableZip as exc:
        return _damaged_zip(sample, exc)
    for prefix, what, advice in _ZIP_KINDS:
        if any(n.startswith(prefix) for n in names):
            return unsupported(f"this file is {what}, which", advice)
    if "mimetype" in names and any(n == "content.xml" for n in names):
        return unsupported("this file is an OpenDocument file (ODT/ODS/ODP), which", "Save it as DOCX or PDF and upload again.")
    labels = [c.label for c in _zip_formats()]
    neither = f"neither {', '.join(labels[:-1])} nor {labels[-1]}" if len(labels) > 1 else f"not {''.join(labels) or 'a document'}"
    return unsupported(f"this file is a ZIP archive that is {neither}, which", "Upload the documents it contains one by one.")
