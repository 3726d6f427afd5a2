"""The text an LLM reads from kb's MCP tools: numbered passages headed by their source, ready to cite."""

from __future__ import annotations

from .tools import DocumentEntry, DocumentList, DocumentText, SearchResults


def _pages(start: int | None, end: int | None) -> str | None:
    if start is None:
        return None
    return f"page {start}" if end in (None, start) else f"pages {start}-{end}"


def render_search(found: SearchResults) -> str:
    if not found.results:
        return (f"No passage of the knowledge base answers {found.query!r} closely enough. Try other words, "
                "a larger max_vector_distance, or list_documents to see what is there.")
    blocks = [f"{len(found.results)} passages for {found.query!r}, best first. Cite them by [number] and source."]
    for hit in found.results:
        source = [f'"{hit.document_name}"', _pages(hit.page_start, hit.page_end),
                  " > ".join(hit.heading_path) or None]
        head = f"[{hit.rank}] " + ", ".join(p for p in source if p)
        facts = [f"document_id: {hit.document_id}", f"distance: {hit.vector_distance:.3f}"]
        if hit.url:
            facts.insert(1, f"url: {hit.url}")
        blocks.append(f"{head}\n({'; '.join(facts)})\n{hit.text.strip()}")
    return "\n\n".join(blocks)


def render_entry(doc: DocumentEntry) -> str:
    where = f", {doc.url}" if doc.url else ""
    return f'"{doc.name}" (id {doc.id}, {doc.type}{where}, {doc.characters} characters)'


def render_document_list(page: DocumentList) -> str:
    if not page.documents:
        return "No documents."
    lines = [f"- {render_entry(d)}" for d in page.documents]
    if page.has_more:
        lines.append(f"More: call list_documents with cursor={page.next_cursor!r}.")
    return "\n".join(lines)


def render_document(piece: DocumentText) -> str:
    end = piece.offset + len(piece.text)
    head = f'"{piece.name}" (id {piece.document_id}), characters {piece.offset}-{end} of {piece.total_characters}'
    tail = (f"\n\n[continues: call get_document with offset={piece.next_offset}]" if piece.next_offset is not None
            else "\n\n[end of document]")
    return f"{head}\n\n{piece.text}{tail}"
