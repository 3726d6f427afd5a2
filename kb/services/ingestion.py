"""From what a user sends (text, file bytes, a URL) to parsed content ready to store.

Parsing of files and of raw text runs in a killable child process (`sandbox`), except short plain text,
whose parser is one linear split (a child costs more than the parse); URLs are fetched with the
address guard of `ingest.fetch_url`. Nothing is stored here. This is where kb calls the `ingest`
library, so its errors become kb's `InvalidDocument` here (same code and message).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

import ingest
from ingest.errors import BlockedAddress, EmptyDocument, IngestError

from ..errors import DocumentTooLarge, InvalidDocument, from_ingest_error, ingest_errors_as_kb_errors
from ..settings import IngestSettings
from .names import file_name
from .sandbox import parse_isolated, parse_text_isolated


# Plain text up to this many characters is parsed in the server process; longer text, and Markdown and HTML
# (whose parsers are larger), in the sandbox.
IN_PROCESS_TEXT_MAX_CHARS = 256_000


@dataclass(frozen=True)
class Prepared:
    """Parsed content and where it came from. `index_failure` explains content with nothing to index."""

    data: bytes
    parsed: ingest.ParsedDocument
    default_name: str
    filename: str | None = None
    content_type: str | None = None
    url: str | None = None
    index_failure: str | None = None


class Ingestion:
    def __init__(self, settings: IngestSettings):
        self.settings = settings

    def check_size(self, size: int) -> None:
        limit = self.settings.max_upload_bytes
        if size > limit:
            raise DocumentTooLarge(f"the upload is {size} bytes, over the limit of {limit} bytes (KB_MAX_UPLOAD_BYTES)")

    def from_text(self, text: str, name: str | None = None, fmt: str | None = None) -> Prepared:
        """Raw text: Markdown when the name ends in .md (or `fmt` says so), else plain text."""
        data = text.encode("utf-8")
        self.check_size(len(data))
        with ingest_errors_as_kb_errors():
            if not text.strip():
                raise EmptyDocument("the text is empty: send some text to add to the knowledge base")
            fmt = fmt or ("markdown" if (name or "").lower().endswith((".md", ".markdown")) else "txt")
            if fmt == "txt" and len(text) <= IN_PROCESS_TEXT_MAX_CHARS:
                parsed = ingest.parse_text(text, fmt)
            else:
                parsed = parse_text_isolated(text, fmt, timeout_secs=self.settings.parse_timeout_secs,
                                             memory_bytes=self.settings.parse_memory_mb * 1024 * 1024)
            return Prepared(data, parsed, " ".join(text[:1000].split())[:60] or "Untitled text")

    def from_file(self, data: bytes, filename: str | None, content_type: str | None) -> Prepared:
        self.check_size(len(data))
        try:
            parsed = parse_isolated(data, filename, content_type, **self._sandbox())
        except EmptyDocument as exc:
            if not data or ingest.detect_format(data, filename, content_type) != "pdf":
                raise from_ingest_error(exc) from exc
            # A scanned PDF is a real document with no text layer: keep it, and say why it is not searchable.
            return Prepared(data, ingest.ParsedDocument("", [], "pdf"), file_name(filename) or "Untitled PDF", filename,
                            content_type, index_failure=exc.message)
        except IngestError as exc:
            raise from_ingest_error(exc) from exc
        return Prepared(data, parsed, file_name(filename) or parsed.title or "Untitled file", filename, content_type)

    def from_url(self, url: str) -> Prepared:
        fetched = self.fetch(url)
        filename = unquote(Path(urlparse(fetched.final_url).path).name) or None
        parsed = self.parse(fetched.data, filename, fetched.content_type)
        return Prepared(
            fetched.data, parsed, parsed.title or fetched.final_url, content_type=fetched.content_type,
            url=fetched.final_url,
        )

    def fetch(self, url: str) -> ingest.FetchedResource:
        try:
            return ingest.fetch_url(
                url,
                timeout=self.settings.url_timeout_secs,
                max_bytes=self.settings.max_upload_bytes,
                max_redirects=self.settings.url_max_redirects,
                allow_hosts=self.settings.url_allow_hosts,
            )
        except BlockedAddress as exc:
            raise InvalidDocument(f"{exc.message} by listing it in KB_URL_ALLOW_HOSTS", code=exc.code) from exc
        except IngestError as exc:
            raise from_ingest_error(exc) from exc

    def parse(self, data: bytes, filename: str | None, content_type: str | None) -> ingest.ParsedDocument:
        """Parse bytes in the sandbox (no size check: the caller decides)."""
        with ingest_errors_as_kb_errors():
            return parse_isolated(data, filename, content_type, **self._sandbox())

    def crawl_parser(self):
        """A parser for crawled pages: like uploads, in the sandbox, raising the ingest library's own
        errors (the crawler counts them as failed pages)."""
        sandbox = self._sandbox()

        def parse(data: bytes, filename: str | None, content_type: str | None) -> ingest.ParsedDocument:
            return parse_isolated(data, filename, content_type, **sandbox)

        return parse

    def _sandbox(self) -> dict:
        return {
            "limits": self.settings.parse_limits,
            "timeout_secs": self.settings.parse_timeout_secs,
            "memory_bytes": self.settings.parse_memory_mb * 1024 * 1024,
        }
