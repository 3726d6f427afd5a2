"""Lexical search: a multilingual analyzer and an incremental BM25 index.

`analyze(text, language)` turns a document's text into index terms, `analyze_query(text,
languages)` a query into terms for an index holding documents of `languages`, and
`BM25Index` stores term lists by id and answers the best ids for query terms.
"""

from .analyzer import SUPPORTED_LANGUAGES, analyze, analyze_query, detect_language
from .bm25 import BM25Index

__all__ = ["BM25Index", "SUPPORTED_LANGUAGES", "analyze", "analyze_query", "detect_language"]
