"""What a file format implements: how it is recognised, and how its bytes (or text) become a document.

A converter is one class per format, registered once (`ingest.converters.register_converter`).
Detection (`ingest.detect_format`) asks every registered converter's `sniff` (the raw bytes: magic
numbers, container structure), then, once the bytes have been decoded as text, every `sniff_text`,
in registration order; the first to claim the file names its format. The file name's extension and
the declared media type are hints only: a converter consults them (`hinted`) to break ties.
"""

from __future__ import annotations

import io
import zipfile
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import ClassVar

from ..encoding import charset_from_content_type
from ..limits import ParseLimits
from ..types import ParsedDocument

ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")


class UnreadableZip(Exception):
    """The data starts like a ZIP archive but its structure cannot be read (damaged or truncated)."""


@dataclass
class Sample:
    """A file as detection sees it: its bytes, and its name's extension and declared type as hints."""

    data: bytes
    extension: str = ""  # ".md": the file name's suffix, lower case ("" without a name)
    media_type: str = ""  # "text/markdown": the declared content type without parameters, lower case
    charset: str | None = None  # the charset the content type declares, if any
    _zip_names: list[str] | None = field(default=None, repr=False)

    @classmethod
    def of(cls, data: bytes, filename: str | None = None, content_type: str | None = None) -> "Sample":
        extension = PurePosixPath(filename).suffix.lower() if filename else ""
        media_type = (content_type or "").split(";")[0].strip().lower()
        return cls(data, extension, media_type, charset_from_content_type(content_type))

    @property
    def is_zip(self) -> bool:
        return self.data.startswith(ZIP_MAGIC)

    def zip_names(self) -> list[str]:
        """The member names of a ZIP archive (read once); raises `UnreadableZip` if it cannot be read."""
        if self._zip_names is None:
            self._zip_names = self._with_zip(lambda archive: archive.namelist())
        return self._zip_names

    def zip_read(self, name: str) -> bytes:
        """One member's bytes; raises `UnreadableZip` if it cannot be read."""
        return self._with_zip(lambda archive: archive.read(name))

    def _with_zip(self, read):
        try:
            with zipfile.ZipFile(io.BytesIO(self.data)) as archive:
                return read(archive)
        except Exception as exc:  # BadZipFile, NotImplementedError (odd compression), EOFError, ...
            raise UnreadableZip(str(exc)) from exc


class Converter(ABC):
    """One file format. Subclasses set the class attributes and implement `convert` (and, for a
    text format, `convert_text`); `sniff`/`sniff_text` say how the format is recognised.

    `convert` may raise any exception on damaged input: `ingest.parse` turns it into a
    `CorruptDocument` naming `label`. It raises `ingest.errors` (`EmptyDocument`,
    `EncryptedDocument`, `DocumentTooLarge`...) itself for what it can explain better.
    """

    name: ClassVar[str]  # "pdf": the format's name in SUPPORTED_FORMATS and ParsedDocument.format
    label: ClassVar[str]  # "PDF": how messages name it ("this PDF file could not be read")
    extensions: ClassVar[frozenset[str]] = frozenset()  # hints, lower case with the dot: {".md"}
    media_types: ClassVar[frozenset[str]] = frozenset()  # hints, without parameters: {"text/markdown"}
    container: ClassVar[str | None] = None  # "zip" for formats packaged in a ZIP archive (DOCX, EPUB)
    text_input: ClassVar[bool] = False  # accepts raw text (`ingest.parse_text`) through `convert_text`
    text_aliases: ClassVar[frozenset[str]] = frozenset()  # other names `parse_text` accepts: {"md"}
    fallback: ClassVar[bool] = False  # the format of text that no other format claims (plain text)
    modules: ClassVar[tuple[str, ...]] = ()  # libraries `convert` imports: preloaded by kb's parse sandbox

    def hinted(self, sample: Sample) -> bool:
        """Whether the file's name or declared type points to this format."""
        return sample.extension in self.extensions or sample.media_type in self.media_types

    def sniff(self, sample: Sample) -> bool:
        """Whether the bytes are this format (magic numbers, structure), before any text decoding."""
        return False

    def sniff_text(self, sample: Sample, text: str) -> bool:
        """Whether the file, decoded as `text`, is this format; asked only if no `sniff` claimed it."""
        return False

    @abstractmethod
    def convert(self, data: bytes, limits: ParseLimits, content_type: str | None = None) -> ParsedDocument:
        """The document's text and structure."""

    def convert_text(self, text: str) -> ParsedDocument:
        """The document's text and structure from raw text (text formats only, `text_input`)."""
        raise NotImplementedError(f"{self.label} cannot be given as text")
