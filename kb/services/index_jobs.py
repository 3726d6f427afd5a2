"""How an index's background jobs are named: their kind, and the subject that cancels them."""

INDEX_JOB = "index_document"


def index_subject(rag_index_id: str) -> str:
    """The subject of an index's jobs (to cancel them)."""
    return f"rag_index:{rag_index_id}"
