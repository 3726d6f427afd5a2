"""Entry points: bytes or text in, `ParsedDocument` out, errors always `IngestError`s."""

from __future__ import annotations

from collections.abc import Callable

from .detect import detect_format
from .errors import CorruptDocument, DocumentTooLarge, EmptyDocument, IngestError
from .formats import SUPPORTED_FORMATS, unsupported
from .limits import ParseLimits
from .types import ParsedDocument

Converter = Callable[[bytes, ParseLimits, "str | None"], ParsedDocument]


def _converter(format: str) -> Converter:
    # Imported on use: each converter pulls in a heavy library (pypdf, lxml, trafilatura...).
    if format == "pdf":
        from .converters.pdf import convert
    elif format == "docx":
        from .converters.docx import convert
    elif format == "epub":
        from .converters.epub import convert
    elif format == "html":
        from .converters.html import convert
    elif format == "markdown":
        from .converters.markdown import convert
    else:
        from .converters.text import convert
    return convert


_LABELS = {"txt": "text", "markdown": "Markdown"}


def parse(
    data: bytes,
    filename: str | None = None,
    content_type: str | None = None,
    *,
    limits: ParseLimits | None = None,
) -> ParsedDocument:
    """Detect the format of `data` from its content and extract its text and structure."""
    format = detect_format(data, filename, content_type)
    convert = _converter(format)
    label = _LABELS.get(format, format.upper())
    try:
        return convert(data, limits or ParseLimits(), content_type)
    except IngestError:
        raise
    except (MemoryError, RecursionError) as exc:
        raise DocumentTooLarge(
            f"this {label} file is too large or too deeply nested to process ({type(exc).__name__}); split it into smaller files"
        ) from exc
    except Exception as exc:  # any library failure means the file is not what it claims to be
        detail = str(exc).strip() or type(exc).__name__
        raise CorruptDocument(
            f"this {label} file could not be read ({detail[:200]}); it may be damaged or truncated — "
            "open it in the program that made it, save or export it again, and re-upload"
        ) from exc


def parse_text(text: str, format: str = "txt") -> ParsedDocument:
    """Structure raw text given as a string: "txt", "markdown" (headings) or "html"."""
    format = {"text": "txt", "md": "markdown", "htm": "html"}.get(format.lower(), format.lower())
    if not text.strip():
        raise EmptyDocument("the text is empty; send some text to index")
    if format == "txt":
        from .converters.text import convert_text
    elif format == "markdown":
        from .converters.markdown import convert_text
    elif format == "html":
        from .converters.html import convert_text
    elif format in SUPPORTED_FORMATS:
        raise unsupported(f"{format.upper()} given as text", "Raw text can be txt, markdown or html; upload binary formats as files.")
    else:
        raise unsupported(f"the text format {format!r}", "Raw text can be txt, markdown or html.")
    try:
        return convert_text(text)
    except IngestError:
        raise
    except Exception as exc:
        raise CorruptDocument(f"this {format} text could not be read ({exc}); check its content and send it again") from exc
