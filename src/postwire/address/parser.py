"""A strict RFC 5322 §3.4 address-list parser.  Private: use :mod:`postwire.address`.

Why a hand-written parser and not the standard library: ``email.utils.getaddresses``
is a lenient best-effort splitter (the subject of CVE-2023-27043), and the
only public door to the strict grammar, ``email.headerregistry``, records
problems as "defects" while still returning partial addresses (``"a@b, c"``
yields a second address with no domain), behaves differently across Python
versions, and raises ``IndexError`` on some inputs (``"a@"`` on 3.11).  We need
"exact structured result or ``ValueError`` with a position", so this small
recursive-descent parser implements the grammar directly.  RFC 2047 decoding
is in :mod:`.encoded_words`.

Accepted beyond the strict grammar, as RFC 5322 §4 asks of parsers: the
obsolete forms (dots in display names, CFWS around local-part words and
domain labels, source routes in angle brackets, empty list elements), UTF-8
per RFC 6532, and encoded-words filling a whole quoted display name.
"""

from __future__ import annotations

import re
from typing import NamedTuple, NoReturn

from .._core.chars import ATEXT, CONTROL_EXCEPT_TAB
from .encoded_words import ENCODED_WORD, ENCODED_WORD_RUN, decode_encoded_word

__all__ = ["RawGroup", "RawMailbox", "parse"]

_FOLD = re.compile(r"\r?\n(?=[ \t])")  # RFC 5322 §2.2.3 unfolding (bare-LF folds tolerated)

# Separators recorded before a word: nothing, white space only, or a comment.
_NONE, _SPACE, _COMMENT = 0, 1, 2


class RawMailbox(NamedTuple):
    """One parsed mailbox, before it becomes a :class:`~postwire.address.Address`."""

    display_name: str
    local_part: str
    domain: str


class RawGroup(NamedTuple):
    """One parsed group and its mailboxes, before it becomes a :class:`~postwire.address.Group`."""

    display_name: str
    members: list[RawMailbox]


class _Word(NamedTuple):
    kind: str  # "atom", "quoted" or "dot"
    text: str  # the semantic value (quotes and escapes removed)
    sep: int  # what separated it from the previous word


def _is_atext(ch: str) -> bool:
    return ch in ATEXT or ch >= "\x80"  # RFC 6532 §3.2: UTF-8 is atext


def parse(text: str) -> list[RawMailbox | RawGroup]:
    """Parse an RFC 5322 ``address-list`` (a header field body, folded or not)."""
    if not isinstance(text, str):
        raise TypeError(f"expected an address list as str, got {type(text).__name__}")
    unfolded = _FOLD.sub("", text)
    bad = CONTROL_EXCEPT_TAB.search(unfolded)
    if bad is not None:
        raise ValueError(
            f"control character U+{ord(bad.group()):04X} at position {bad.start()} "
            f"in {_preview(unfolded)}"
        )
    return _Parser(unfolded).address_list()


def _preview(text: str, start: int = 0) -> str:
    piece = text[start : start + 40]
    return repr(piece + ("..." if len(text) > start + 40 else ""))


class _Parser:
    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0

    # -- helpers -----------------------------------------------------------

    def fail(self, problem: str) -> NoReturn:
        if self.i >= len(self.s):
            raise ValueError(f"{problem} at the end of {_preview(self.s)}")
        raise ValueError(f"{problem} at position {self.i}: {_preview(self.s, self.i)}")

    def peek(self) -> str:
        return self.s[self.i] if self.i < len(self.s) else ""

    def cfws(self) -> int:
        """Skip white space and comments; say what was skipped."""
        seen = _NONE
        while self.i < len(self.s):
            ch = self.s[self.i]
            if ch in " \t":
                self.i += 1
                seen = max(seen, _SPACE)
            elif ch == "(":
                self.comment()
                seen = _COMMENT
            else:
                break
        return seen

    def comment(self) -> None:
        # Nested comments are tracked with a depth counter, not recursion.
        depth = 0
        while True:
            ch = self.peek()
            if ch == "":
                self.fail("unterminated comment")
            if ch == "\\":
                if self.i + 1 >= len(self.s):
                    self.fail("unterminated comment")
                self.i += 2
                continue
            self.i += 1
            if ch == "(":
                depth += 1
            elif ch == ")":
                depth -= 1
                if depth == 0:
                    return

    def quoted_string(self) -> str:
        start = self.i
        self.i += 1
        out: list[str] = []
        while True:
            ch = self.peek()
            if ch == "":
                self.i = start
                self.fail("unterminated quoted string")
            self.i += 1
            if ch == '"':
                return "".join(out)
            if ch == "\\":
                if self.peek() == "":
                    self.i = start
                    self.fail("unterminated quoted string")
                ch = self.s[self.i]
                self.i += 1
            out.append(ch)

    def atom(self) -> str:
        start = self.i
        while self.i < len(self.s) and _is_atext(self.s[self.i]):
            self.i += 1
        return self.s[start : self.i]

    def words(self) -> list[_Word]:
        """``*(word / "." / CFWS)``: a phrase, or the local part of an addr-spec."""
        found: list[_Word] = []
        while True:
            sep = self.cfws()
            ch = self.peek()
            if ch == '"':
                found.append(_Word("quoted", self.quoted_string(), sep))
            elif ch == ".":
                self.i += 1
                found.append(_Word("dot", ".", sep))
            elif ch and _is_atext(ch):
                found.append(_Word("atom", self.atom(), sep))
            else:
                return found

    # -- grammar -----------------------------------------------------------

    def address_list(self) -> list[RawMailbox | RawGroup]:
        items: list[RawMailbox | RawGroup] = []
        while True:
            self.cfws()
            ch = self.peek()
            if ch == "":
                return items
            if ch == ",":  # obs-addr-list: empty elements are skipped
                self.i += 1
                continue
            items.append(self.address(in_group=False))
            self.cfws()
            ch = self.peek()
            if ch == ",":
                self.i += 1
            elif ch != "":
                self.fail("expected ',' between addresses")

    def address(self, *, in_group: bool) -> RawMailbox | RawGroup:
        words = self.words()
        ch = self.peek()
        if ch == "<":
            local, domain = self.angle_addr()
            return RawMailbox(_display_name(words), local, domain)
        if ch == ":":
            if in_group:
                self.fail("a group cannot contain a group")
            if not words:
                self.fail("a group needs a display name")
            self.i += 1
            return RawGroup(_display_name(words), self.group_members())
        if ch == "@":
            local = self.local_part(words)
            self.i += 1
            return RawMailbox("", local, self.domain())
        if not words:
            self.fail("expected an address")
        self.fail("expected '@', '<' or ':' after a word")

    def group_members(self) -> list[RawMailbox]:
        members: list[RawMailbox] = []
        while True:
            self.cfws()
            ch = self.peek()
            if ch == ";":
                self.i += 1
                return members
            if ch == "":
                self.fail("group is missing its closing ';'")
            if ch == ",":
                self.i += 1
                continue
            member = self.address(in_group=True)
            assert isinstance(member, RawMailbox)  # in_group forbids groups
            members.append(member)
            self.cfws()
            if self.peek() == ",":
                self.i += 1
            elif self.peek() not in (";", ""):
                self.fail("expected ',' or ';' in a group")

    def angle_addr(self) -> tuple[str, str]:
        self.i += 1  # "<"
        self.cfws()
        if self.peek() == "@":
            self.obs_route()
        if self.peek() == ">":
            self.fail("empty address '<>'")
        local = self.local_part(self.words())
        if self.peek() != "@":
            self.fail("expected '@' in angle brackets")
        self.i += 1
        domain = self.domain()
        if self.peek() != ">":
            self.fail("expected '>'")
        self.i += 1
        return local, domain

    def obs_route(self) -> None:
        # RFC 5322 §4.4 obs-route "@a,@b:" before the addr-spec; it is discarded.
        while True:
            self.cfws()
            ch = self.peek()
            if ch == ",":
                self.i += 1
            elif ch == "@":
                self.i += 1
                self.domain()
            elif ch == ":":
                self.i += 1
                self.cfws()
                return
            else:
                self.fail("malformed source route")

    def local_part(self, words: list[_Word]) -> str:
        # dot-atom / quoted-string / obs-local-part: word *("." word)
        if not words:
            self.fail("missing local part before '@'")
        previous = "dot"
        for word in words:
            if word.kind == "dot" and previous == "dot":
                self.fail("misplaced '.' in local part")
            if word.kind != "dot" and previous != "dot":
                self.fail("words in a local part must be separated by '.' (quote it)")
            previous = word.kind
        if previous == "dot":
            self.fail("local part ends with '.'")
        return "".join(word.text for word in words)

    def domain(self) -> str:
        self.cfws()
        if self.peek() == "[":
            literal = self.domain_literal()
            self.cfws()
            return literal
        labels = [self.atom()]
        if not labels[0]:
            self.fail("missing domain")
        while True:
            self.cfws()
            if self.peek() != ".":
                return ".".join(labels)
            self.i += 1
            self.cfws()
            label = self.atom()
            if not label:
                self.fail("empty label in domain")
            labels.append(label)

    def domain_literal(self) -> str:
        start = self.i
        self.i += 1
        out = ["["]
        while True:
            ch = self.peek()
            if ch == "":
                self.i = start
                self.fail("unterminated domain literal")
            self.i += 1
            if ch == "]":
                return "".join(out) + "]"
            if ch == "[":
                self.fail("'[' inside a domain literal")
            if ch == "\\":  # obs-dtext quoted-pair: kept escaped, the domain is as written
                if self.peek() == "":
                    self.fail("unterminated domain literal")
                out.append(ch + self.s[self.i])
                self.i += 1
            elif ch not in " \t":  # FWS inside the brackets is not part of the domain
                out.append(ch)


def _display_name(words: list[_Word]) -> str:
    """The phrase's text: words joined by one space, RFC 2047 encoded-words decoded."""
    parts: list[str] = []
    previous_encoded = False
    for index, word in enumerate(words):
        decoded = None
        if word.kind == "atom" and ENCODED_WORD.fullmatch(word.text):
            decoded = decode_encoded_word(word.text)
        elif word.kind == "quoted" and ENCODED_WORD_RUN.fullmatch(word.text):
            # Not allowed by RFC 2047 §5, but common: decode if every piece decodes.
            pieces = [decode_encoded_word(w) for w in word.text.split()]
            if all(piece is not None for piece in pieces):
                decoded = "".join(piece for piece in pieces if piece is not None)
        # RFC 2047 §6.2: white space between two encoded-words is dropped.
        joined = decoded is not None and previous_encoded and word.sep == _SPACE
        if index and word.sep != _NONE and not joined:
            parts.append(" ")
        parts.append(word.text if decoded is None else decoded)
        previous_encoded = decoded is not None
    return "".join(parts)
