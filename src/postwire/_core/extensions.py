"""Service extensions from the EHLO reply (RFC 5321 §4.1.1.1)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from .reply import Reply

__all__ = ["Extensions"]

_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Extensions:
    """What the server said it supports.

    ``keywords`` maps each upper-cased EHLO keyword to its parameter text;
    the typed attributes are derived from it.  ``Extensions()`` is a server
    that answered HELO (or whose knowledge was discarded after STARTTLS).
    """

    keywords: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    esmtp: bool = False
    #: The server's name and greeting text from the first line of the reply.
    server_name: str = ""

    @classmethod
    def from_reply(cls, reply: Reply) -> Extensions:
        keywords: dict[str, str] = {}
        for line in reply.lines[1:]:
            line = line.strip()
            if not line:
                # Some servers (smtp-sink) end with "250 ": an empty keyword line.
                continue
            keyword, _, param = line.partition(" ")
            key = keyword.upper()
            if key.startswith("AUTH="):
                # Old-style advertisement "AUTH=LOGIN PLAIN" from pre-RFC 2554 servers.
                param = f"{key[5:]} {param}".strip()
                key = "AUTH"
            if key == "AUTH" and "AUTH" in keywords:
                param = f"{keywords['AUTH']} {param}".strip()
            keywords[key] = param.strip()
        return cls(MappingProxyType(keywords), True, reply.lines[0].strip())

    def has(self, keyword: str) -> bool:
        return keyword.upper() in self.keywords

    @property
    def auth_mechanisms(self) -> frozenset[str]:
        return frozenset(m.upper() for m in self.keywords.get("AUTH", "").split())

    @property
    def max_size(self) -> int | None:
        """The SIZE limit (RFC 1870); 0 means "no fixed limit", None "no SIZE"."""
        if "SIZE" not in self.keywords:
            return None
        param = self.keywords["SIZE"].strip()
        return int(param) if param.isdigit() else 0

    @property
    def pipelining(self) -> bool:
        return "PIPELINING" in self.keywords

    @property
    def starttls(self) -> bool:
        return "STARTTLS" in self.keywords

    @property
    def smtputf8(self) -> bool:
        return "SMTPUTF8" in self.keywords

    @property
    def eightbitmime(self) -> bool:
        return "8BITMIME" in self.keywords

    @property
    def binarymime(self) -> bool:
        return "BINARYMIME" in self.keywords

    @property
    def chunking(self) -> bool:
        return "CHUNKING" in self.keywords

    @property
    def dsn(self) -> bool:
        return "DSN" in self.keywords

    @property
    def enhanced_status_codes(self) -> bool:
        return "ENHANCEDSTATUSCODES" in self.keywords

    @property
    def requiretls(self) -> bool:
        return "REQUIRETLS" in self.keywords
