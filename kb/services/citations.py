"""Speakable citations: a short phrase a speech engine can read ("from the Returns policy, page 3,
section Refunds"), built from a hit's document name and provenance, in the document's language."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from index.lexical.analyzer import detect_language

from ..records import Document
from ..storage import Database
from ..storage.repositories import AttributeStore, DocumentStore


@dataclass(frozen=True)
class Template:
    source: str  # "{name}"
    source_generic: str  # "{name}" when the name is a generic kind of document ("the Returns policy")
    page: str
    pages: str
    section: str


TEMPLATES: dict[str, Template] = {
    "en": Template("from {name}", "from the {name}", "page {page}", "pages {first} to {last}", "section {section}"),
    "de": Template("aus {name}", "aus {name}", "Seite {page}", "Seiten {first} bis {last}", "Abschnitt {section}"),
    "fr": Template("d'après {name}", "d'après {name}", "page {page}", "pages {first} à {last}", "section {section}"),
    "es": Template("según {name}", "según {name}", "página {page}", "páginas {first} a {last}", "sección {section}"),
    "it": Template("da {name}", "da {name}", "pagina {page}", "pagine da {first} a {last}", "sezione {section}"),
    "pt": Template("de {name}", "de {name}", "página {page}", "páginas {first} a {last}", "secção {section}"),
    "nl": Template("uit {name}", "uit {name}", "pagina {page}", "pagina's {first} tot {last}", "sectie {section}"),
}
FALLBACK = "en"
# The analyzer's language names (kb.indexes.lexical.document_language) → template codes.
LANGUAGE_NAMES = {"english": "en", "german": "de", "french": "fr", "spanish": "es", "italian": "it",
                  "portuguese": "pt", "dutch": "nl"}
# Names ending in one of these read as a kind of document in English: "from the Returns policy".
GENERIC_NOUNS = {"policy", "policies", "guide", "manual", "handbook", "faq", "terms", "conditions", "document",
                 "report", "agreement", "notes", "page", "catalogue", "catalog", "brochure", "contract", "rules",
                 "instructions", "overview", "price list", "glossary", "checklist"}
MAX_SECTION_CHARS = 60
_EXTENSION = re.compile(r"\.(pdf|docx?|epub|html?|txt|md|markdown)$", re.I)


def template_code(language: str | None) -> str | None:
    """The template code of a language ("de-DE", "fr_FR", "German", "de"), None when kb has none."""
    if not isinstance(language, str) or not language.strip():
        return None
    value = language.strip().lower()
    code = LANGUAGE_NAMES.get(value) or re.split(r"[-_]", value)[0]
    return code if code in TEMPLATES else None


def language_code(metadata_language: str | None, text: str = "") -> str:
    """A template code: the document's declared language ("de-DE", "fr_FR", "German") where known,
    else the language detected from `text`, else English."""
    code = template_code(metadata_language)
    if code is not None:
        return code
    if text:
        return LANGUAGE_NAMES.get(detect_language(text), FALLBACK)
    return FALLBACK


def speakable_name(name: str) -> str:
    """The name as spoken: no file extension, underscores and dashes between words as spaces."""
    spoken = _EXTENSION.sub("", name.strip())
    spoken = re.sub(r"[_]+|(?<=\w)-(?=\w)", " ", spoken) if " " not in spoken else spoken.replace("_", " ")
    return " ".join(spoken.split()) or name


def _short(section: str) -> str:
    section = " ".join(section.split())
    if len(section) <= MAX_SECTION_CHARS:
        return section
    return section[:MAX_SECTION_CHARS].rsplit(" ", 1)[0]


def speakable_citation(document_name: str, page_start: int | None, page_end: int | None,
                       heading_path: list[str], language: str = FALLBACK) -> str:
    """"from the Returns policy, page 3, section Refunds": the document, its page(s) and the most
    specific heading, each part only when known."""
    template = TEMPLATES.get(language, TEMPLATES[FALLBACK])
    name = speakable_name(document_name)
    words = name.lower().split()
    generic = 0 < len(words) <= 4 and (words[-1] in GENERIC_NOUNS or " ".join(words[-2:]) in GENERIC_NOUNS)
    parts = [(template.source_generic if generic else template.source).format(name=name)]
    if page_start is not None:
        last = page_end if page_end is not None else page_start
        parts.append(template.page.format(page=page_start) if last == page_start
                     else template.pages.format(first=page_start, last=last))
    # a heading that only repeats the document's name ("Returns policy" under "# Returns policy") says nothing
    headings = [h for h in heading_path if h and h.strip() and " ".join(h.split()).lower() != name.lower()]
    if headings:
        parts.append(template.section.format(section=_short(headings[-1])))
    return ", ".join(parts)


def with_citations(chunks: list, documents: dict[str, Document], detected: dict[str, str] | None = None) -> list:
    """The hits (`RetrievedChunk`s), each with its `citation` in its document's language: the one its
    metadata declares (DOCX, EPUB), else the one detected from its whole text (`detected`: document id
    -> the automatic `language` attribute), else the one detected from the hit's text; English when kb
    has no template for it. One document's hits are all cited in the same language."""
    cited = []
    for hit in chunks:
        doc = documents.get(hit.document_id)
        declared = (doc.metadata or {}).get("language") if doc else None
        known = (detected or {}).get(hit.document_id)
        language = template_code(declared)
        if language is None:
            language = (template_code(known) or FALLBACK) if known else language_code(None, hit.text)
        cited.append(replace(hit, citation=speakable_citation(
            hit.document_name, hit.page_start, hit.page_end, hit.heading_path, language)))
    return cited


class Citations:
    """Adds speakable citations to retrieved hits (one query for their documents' languages)."""

    def __init__(self, db: Database, documents: DocumentStore, attributes: AttributeStore | None = None):
        self.db = db
        self.documents = documents
        self.attributes = attributes

    def attach(self, workspace_id: str, chunks: list) -> list:
        if not chunks:
            return chunks
        ids = list({c.document_id for c in chunks})
        with self.db.read() as tx:
            found = self.documents.get_many(tx, workspace_id, ids)
            stored = self.attributes.of_documents(tx, workspace_id, ids) if self.attributes else {}
        detected = {doc_id: values["language"].text for doc_id, values in stored.items()
                    if "language" in values and values["language"].text}
        return with_citations(chunks, {d.id: d for d in found}, detected)
