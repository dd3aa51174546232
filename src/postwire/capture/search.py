"""Search queries over captured messages, in Mailpit's syntax (a subset).

Words are matched, case-insensitively, anywhere in the envelope, From, To, Cc, Subject,
Message-ID and text; ``"quoted words"`` match as a phrase. Filters: ``from:``, ``to:`` (To, Cc
and envelope recipients), ``subject:``, ``message-id:``, ``mailbox:`` (postwire's listeners),
``is:read``, ``is:unread``, ``has:attachment``. A leading ``-`` or ``!`` negates a term. All
terms must hold.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass

from .parsed import ParsedMessage

__all__ = ["Query", "parse_query"]

Predicate = Callable[[ParsedMessage, bool], bool]


def _contains(getter: Callable[[ParsedMessage], str], needle: str) -> Predicate:
    return lambda m, read: needle in getter(m).lower()


def _to_text(m: ParsedMessage) -> str:
    return "\n".join([m.header("To"), m.header("Cc"), *m.captured.rcpt_tos])


def _from_text(m: ParsedMessage) -> str:
    return m.header("From") + "\n" + m.captured.mail_from


_FILTERS: dict[str, Callable[[str], Predicate]] = {
    "from": lambda v: _contains(_from_text, v),
    "to": lambda v: _contains(_to_text, v),
    "subject": lambda v: _contains(lambda m: m.subject, v),
    "message-id": lambda v: _contains(lambda m: m.header("Message-ID"), v),
    "mailbox": lambda v: lambda m, read: (m.captured.mailbox or "").lower() == v,
}


def _term(token: str) -> Predicate:
    key, sep, value = token.partition(":")
    key = key.lower()
    value = value.lower()
    if sep and key in _FILTERS and value:
        return _FILTERS[key](value)
    if sep and key == "is" and value in ("read", "unread"):
        wanted = value == "read"
        return lambda m, read: read == wanted
    if sep and key == "has" and value in ("attachment", "attachments"):
        return lambda m, read: bool(m.attachments())
    needle = token.lower()
    return lambda m, read: needle in m.search_text


@dataclass(frozen=True)
class Query:
    """A parsed search: every predicate must hold."""

    text: str
    predicates: tuple[tuple[bool, Predicate], ...]

    def matches(self, message: ParsedMessage, read: bool) -> bool:
        """Whether ``message`` (read or not) is found by this query."""
        return all(p(message, read) != negated for negated, p in self.predicates)


def parse_query(text: str) -> Query:
    """Parse a search box's text; unbalanced quotes are taken literally."""
    try:
        tokens = shlex.split(text)
    except ValueError:
        tokens = text.split()
    predicates = []
    for token in tokens:
        negated = token[:1] in ("-", "!") and len(token) > 1
        if negated:
            token = token[1:]
        predicates.append((negated, _term(token)))
    return Query(text, tuple(predicates))
