"""The retrieval query of a conversation turn: a short follow-up ("and on Sundays?") is searched in the
context of the previous user turn. Strategies compared in BENCHMARKS.md ("Follow-up questions")."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import InvalidRequest

ROLES = ("user", "agent", "assistant")
MAX_MESSAGES = 50
MAX_MESSAGE_CHARS = 10_000
STRATEGIES = ("last", "concat", "short")
# "short": the previous user turn is added only when the new message has at most this many words.
SHORT_WORDS = 8


@dataclass(frozen=True)
class Message:
    role: str  # "user" | "agent" | "assistant"
    content: str


def check_messages(messages: Sequence[Message]) -> None:
    if len(messages) > MAX_MESSAGES:
        raise InvalidRequest(f"messages: at most {MAX_MESSAGES} messages (the recent turns are enough)")
    for i, message in enumerate(messages):
        if message.role not in ROLES:
            raise InvalidRequest(f"messages[{i}].role must be one of {', '.join(ROLES)}")
        if len(message.content) > MAX_MESSAGE_CHARS:
            raise InvalidRequest(f"messages[{i}].content is longer than {MAX_MESSAGE_CHARS} characters")


def previous_user_turn(query: str, messages: Sequence[Message]) -> str | None:
    """The last user message before the current one (`query`, which may also be the last message)."""
    current = " ".join(query.split())
    for message in reversed(messages):
        text = " ".join(message.content.split())
        if message.role == "user" and text and text != current:
            return text
    return None


def contextual_query(query: str, messages: Sequence[Message], strategy: str = "short") -> str:
    """The text to retrieve with: the query, or the previous user turn followed by the query."""
    if strategy not in STRATEGIES:
        raise InvalidRequest(f"query rewriting strategy must be one of {', '.join(STRATEGIES)}")
    query = query.strip()
    previous = previous_user_turn(query, messages) if strategy != "last" else None
    if previous is None:
        return query
    if strategy == "short" and len(query.split()) > SHORT_WORDS:
        return query
    return f"{previous}\n{query}"
