"""Embedders, vector stores and retrieval limits. Knows nothing of HTTP, storage or ingestion."""
