"""The registered formats: converters by name, in registration order, and the views derived from them."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

from ..errors import UnsupportedFormat
from .base import Converter

_CONVERTERS: dict[str, Converter] = {}

C = TypeVar("C", bound=type[Converter])


def register_converter(cls: C) -> C:
    """Register a converter class (usable as a class decorator); a name registered again is replaced."""
    converter = cls()
    if converter.fallback and any(c.fallback and c.name != converter.name for c in _CONVERTERS.values()):
        raise ValueError(f"{cls.__name__}: only one format can be the fallback for unclaimed text")
    _CONVERTERS[converter.name] = converter
    return cls


def unregister_converter(name: str) -> None:
    """Remove a format (for tests and plug-ins that registered one)."""
    _CONVERTERS.pop(name, None)


def converters() -> list[Converter]:
    """Every registered converter, in registration order (the order detection asks them in)."""
    return list(_CONVERTERS.values())


def get_converter(name: str) -> Converter:
    return _CONVERTERS[name]


def text_converter(name: str) -> Converter | None:
    """The text format called `name` (its name or one of its `text_aliases`), or None."""
    name = name.lower()
    return next((c for c in _CONVERTERS.values() if c.text_input and (c.name == name or name in c.text_aliases)), None)


def fallback_converter() -> Converter:
    return next(c for c in _CONVERTERS.values() if c.fallback)


def preload_modules() -> list[str]:
    """The libraries the converters import, for a process that parses many files (kb's sandbox)."""
    return list(dict.fromkeys(module for c in _CONVERTERS.values() for module in c.modules))


class _FormatNames(Sequence[str]):
    """The registered format names as a live, read-only sequence that compares equal to the same tuple."""

    def __getitem__(self, index):  # type: ignore[override]
        return tuple(_CONVERTERS)[index]

    def __len__(self) -> int:
        return len(_CONVERTERS)

    def __iter__(self) -> Iterator[str]:
        return iter(tuple(_CONVERTERS))

    def __contains__(self, name: object) -> bool:
        return name in _CONVERTERS

    def __eq__(self, other: object) -> bool:
        return tuple(self) == (tuple(other) if isinstance(other, _FormatNames) else other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return repr(tuple(self))


SUPPORTED_FORMATS: Sequence[str] = _FormatNames()


def unsupported(what: str, advice: str = "") -> UnsupportedFormat:
    """An `UnsupportedFormat` whose message says what the file is and what is accepted."""
    message = f"{what} is not a supported format; supported formats are {', '.join(SUPPORTED_FORMATS)}."
    if advice:
        message += f" {advice}"
    return UnsupportedFormat(message, list(SUPPORTED_FORMATS))


def text_format_names() -> str:
    """'html, txt or markdown': the formats raw text can be given in, for messages."""
    names = [c.name for c in _CONVERTERS.values() if c.text_input]
    return " or ".join(names) if len(names) < 3 else f"{', '.join(names[:-1])} or {names[-1]}"
