"""kb's search indexes per workspace and model: loaded, cached, saved and rebuilt from storage.

The vector stores and BM25 themselves are the `index` library's; this package keeps them current.
"""

from .lexical import LexicalIndex, chunk_terms, document_language, title_text
from .loaded import ChunkVectors, LoadedIndex
from .vector_indexes import HandOver, VectorIndexes

__all__ = ["ChunkVectors", "HandOver", "LexicalIndex", "LoadedIndex", "VectorIndexes", "chunk_terms", "document_language", "title_text"]
