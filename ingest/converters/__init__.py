"""One converter per format, each in its own module, registered by name.

A converter subclasses `Converter` (base.py) and is registered with `@register_converter`; the
built-in formats are the modules imported below, in the order `SUPPORTED_FORMATS` lists them.
Adding a format: a new module here with its `Converter` subclass, and its name on the import line.
Each converter imports its heavy library (pypdf, python-docx, ebooklib, trafilatura) only when it
converts; `preload_modules()` names them for a process that wants them loaded up front.
"""

from .base import Converter, Sample, UnreadableZip
from .registry import (
    SUPPORTED_FORMATS,
    converters,
    fallback_converter,
    get_converter,
    preload_modules,
    register_converter,
    text_converter,
    text_format_names,
    unregister_converter,
    unsupported,
)

from . import pdf, docx, epub, html, text, markdown  # noqa: E402,F401,I001  (each registers its converter)

__all__ = [
    "SUPPORTED_FORMATS",
    "Converter",
    "Sample",
    "UnreadableZip",
    "converters",
    "fallback_converter",
    "get_converter",
    "preload_modules",
    "register_converter",
    "text_converter",
    "text_format_names",
    "unregister_converter",
    "unsupported",
]
