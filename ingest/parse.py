"""Entry points: bytes or text in, `ParsedDocument` out, errors always `IngestError`s."""

from __future__ import annotations

from .converters import SUPPORTED_FORMATS, get_converter, text_converter, text_format_names, unsupported
from .detect import detect_format
from .errors import CorruptDocument, DocumentTooLarge, EmptyDocument, IngestError
from .limits import ParseLimits
from .types import ParsedDocument


def parse(
    data: bytes,
    filename: str | None = None,
    content_type: str | None = None,
    *,
    limits: ParseLimits | None = None,
) -> ParsedDocument:
    """Detect the format of `data` from its content and extract its text and structure."""
    converter = get_converter(detect_format(data, filename, content_type))
    try:
        return converter.convert(data, limits or ParseLimits(), content_type)
    except IngestError:
        raise
    except (MemoryError, RecursionError) as exc:
        raise DocumentTooLarge(
            f"this {converter.label} file is too large or too deeply nested to process ({type(exc).__name__}); "
            "split it into smaller files"
        ) from exc
    except Exception as exc:  # any library failure means the file is not what it claims to be
        detail = str(exc).strip() or type(exc).__name__
        raise CorruptDocument(
            f"this {converter.label} file could not be read ({detail[:200]}); it may be damaged or truncated — "
            "open it in the program that made it, save or export it again, and re-upload"
        ) from exc


def parse_text(text: str, format: str = "txt") -> ParsedDocument:
    """Structure raw text given as a string, in one of the text formats: "txt", "markdown" (headings), "html"."""
    converter = text_converter(format)
    if not text.strip():
        raise EmptyDocument("the text is empty; send some text to index")
    if converter is None:
        name = format.lower()
        if name in SUPPORTED_FORMATS:
            raise unsupported(
                f"{get_converter(name).label} given as text",
                f"Raw text can be {text_format_names()}; upload binary formats as files.",
            )
        raise unsupported(f"the text format {name!r}", f"Raw text can be {text_format_names()}.")
    try:
        return converter.convert_text(text)
    except IngestError:
        raise
    except Exception as exc:
        raise CorruptDocument(f"this {converter.name} text could not be read ({exc}); check its content and send it again") from exc
