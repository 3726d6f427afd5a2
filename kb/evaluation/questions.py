"""The questions file of `kb eval`: one JSON object a line.

    {"id": "refund-1", "query": "how long do I have to return a product",
     "expected_documents": ["Refunds"], "expected_passages": ["within 30 days"]}

`query` is required. `expected_documents` names documents (their id or their name) that answer it;
`expected_passages` gives text an answering chunk holds, compared ignoring case and runs of whitespace:
a chunk holds a passage when it contains it, or, for a passage longer than a chunk or split by a chunk
boundary, when it holds a contiguous run of at least half of the passage and 40 characters. With
passages, chunks are judged (each passage is found once; with documents too, only in those
documents); with documents only, documents are judged (a document's first chunk counts).
A question with neither is one the workspace should not answer: it counts for "absent emptied".
`id` is optional (default: the line number).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidRequest

FIELDS = ("id", "query", "expected_documents", "expected_passages")
MAX_QUERY_CHARS = 10_000


@dataclass(frozen=True)
class Question:
    id: str
    query: str
    expected_documents: tuple[str, ...] = ()
    expected_passages: tuple[str, ...] = ()

    @property
    def answerable(self) -> bool:
        return bool(self.expected_documents or self.expected_passages)


def _strings(value: object, where: str, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise InvalidRequest(f"{where}: {name} must be a list of non-empty strings")
    return tuple(dict.fromkeys(v.strip() for v in value))


def parse_questions(text: str, source: str = "questions") -> list[Question]:
    """Questions from JSONL text; an error names the line and the field."""
    questions: list[Question] = []
    seen: set[str] = set()
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        where = f"{source} line {number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidRequest(f"{where}: not JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise InvalidRequest(f"{where}: each line must be a JSON object with a query")
        unknown = sorted(set(row) - set(FIELDS))
        if unknown:
            raise InvalidRequest(f"{where}: unknown field(s) {', '.join(unknown)}; known: {', '.join(FIELDS)}")
        query = row.get("query")
        if not isinstance(query, str) or not query.strip():
            raise InvalidRequest(f"{where}: query must be a non-empty string")
        if len(query) > MAX_QUERY_CHARS:
            raise InvalidRequest(f"{where}: query is longer than {MAX_QUERY_CHARS} characters")
        qid = row.get("id", str(number))
        if not isinstance(qid, (str, int)) or isinstance(qid, bool):
            raise InvalidRequest(f"{where}: id must be a string or a number")
        qid = str(qid)
        if qid in seen:
            raise InvalidRequest(f"{where}: id {qid!r} is used twice")
        seen.add(qid)
        questions.append(Question(qid, query.strip(), _strings(row.get("expected_documents"), where, "expected_documents"),
                                  _strings(row.get("expected_passages"), where, "expected_passages")))
    if not any(q.answerable for q in questions):
        raise InvalidRequest(f"{source}: no question with expected_documents or expected_passages")
    return questions


def load_questions(path: Path) -> list[Question]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"{path}: cannot read it ({exc})") from None
    return parse_questions(text, str(path))
