"""Racket ``net/head``'s address functions: ``extract_addresses`` and ``assemble_address_field``.

Private: import these names from :mod:`postwire.head`.  This is Racket's
heuristic comma splitter, kept for parity (its documented quirks included,
except fix 3: empty elements are skipped).  For RFC 5322 parsing use
:func:`postwire.address.parse_address_list`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Literal, overload

__all__ = ["assemble_address_field", "extract_addresses"]

_RACKET_BLANK = " \t\n\r\v"  # Racket's `blank`
_ALL_BLANK = re.compile(r"[ \t\n\r\v]*\Z")
_QUOTED_NAME = re.compile(r'[ \t\n\r\v]*("[^"]*")(.*)', re.DOTALL)
_BAD_CHARS = re.compile(r'[,"()<>]')

# Racket's other regexps backtrack quadratically on inputs such as "((((...".
# They are replaced below by string scans that give the same results in linear
# time; each says which regexp it stands for (tests compare the two).

Kind = Literal["name", "address", "full", "all"]
_KINDS = ("name", "address", "full", "all")


@overload
def extract_addresses(line: str | None, kind: Literal["name", "address", "full"]) -> list[str]: ...
@overload
def extract_addresses(line: str | None, kind: Literal["all"]) -> list[tuple[str, str, str]]: ...
def extract_addresses(line: str | None, kind: str) -> list[str] | list[tuple[str, str, str]]:
    """Split an address field and pick out names, addresses or both (Racket's heuristics).

    ``kind`` is ``"name"``, ``"address"``, ``"full"`` (``Name <addr>``) or
    ``"all"`` (a ``(name, address, full)`` tuple per address).  ``None`` or
    blank text gives ``[]``.  Unparseable text raises ``ValueError``.
    """
    return extract_addresses_any(line, kind)


def extract_addresses_any(line: str | None, kind: str) -> list[str] | list[tuple[str, str, str]]:
    """:func:`extract_addresses` without the overloads (``kind`` is any str)."""
    if not isinstance(kind, str):
        raise TypeError(_kind_error(kind))
    if kind not in _KINDS:
        raise ValueError(_kind_error(kind))
    if line is None:
        return []
    if not isinstance(line, str):
        raise TypeError(
            f"extract_addresses: contract violation\n  expected: str or None\n  given: {line!r}"
        )
    triples = [_one_address(element) for element in _split(line)]
    if kind == "all":
        return triples
    index = _KINDS.index(kind)
    return [triple[index] for triple in triples]


def _kind_error(kind: object) -> str:
    return (
        "extract_addresses: contract violation\n"
        "  expected: kind: 'name', 'address', 'full', or 'all'\n"
        f"  given: {kind!r}"
    )


def _split(line: str) -> list[str]:
    """Racket's comma loop: a comma inside the first quoted or parenthesised span
    does not split.  Fix 3: blank elements (",a@b", "a@b,,c@d") are skipped.

    Racket finds the first ``"[^"]*"`` and ``[(][^)]*[)]`` of the rest each
    time; only spans starting before the next comma matter, and once no closing
    quote (or parenthesis) is left, none will be, which keeps this linear.
    """
    elements: list[str] = []
    pos, size = 0, len(line)
    quotes_left = parens_left = True
    while not _ALL_BLANK.match(line, pos):
        start = pos
        while (comma := line.find(",", pos)) >= 0:
            spans: list[tuple[int, int]] = []
            if quotes_left and (q := line.find('"', pos, comma)) >= 0:
                close = line.find('"', q + 1)
                quotes_left = close >= 0
                if quotes_left:
                    spans.append((q, close + 1))
            if parens_left and (p := line.find("(", pos, comma)) >= 0:
                close = line.find(")", p + 1)
                parens_left = close >= 0
                if parens_left:
                    spans.append((p, close + 1))
            if not spans or min(spans)[1] <= comma:
                break
            pos = min(spans)[1]  # the comma is quoted: keep it in this element
        comma = line.find(",", pos)
        end = size if comma < 0 else comma
        element, pos = line[start:end], min(end + 1, size)
        if not _ALL_BLANK.match(element):
            elements.append(element)
    return elements


def _parened_name(s: str) -> tuple[str, str] | None:
    """Racket's ``(.*)[(]([^)]*)[)]blank*$``: (text before, comment)."""
    t = s.rstrip(_RACKET_BLANK)
    if not t.endswith(")"):
        return None
    j = t.rfind("(", 0, len(t) - 1)
    if j < 0 or ")" in t[j + 1 : -1]:
        return None
    return s[:j], t[j + 1 : -1]


def _simple_name(s: str) -> tuple[str, str] | None:
    """Racket's ``^blank*(nonblank.*)(<.*>)blank*$``: (name part, angle part)."""
    t = s.rstrip(_RACKET_BLANK)
    lead = len(s) - len(s.lstrip(_RACKET_BLANK))
    if not t.endswith(">"):
        return None
    j = t.rfind("<", 0, len(t) - 1)
    if j <= lead:
        return None
    return s[lead:j], t[j:]


def _one_address(orig: str) -> tuple[str, str, str]:
    """Racket's ``extract-one-name``, as a (name, address, full) triple."""
    # Trailing comments are peeled iteratively (Racket recurses), so that
    # "a(b)(c)(d)..." cannot exhaust the Python stack.
    comments: list[str] = []
    s = orig
    while (found := _parened_name(s)) is not None:
        s, comment = found
        comments.append(comment)
    triple = _one_plain(s, orig)
    for comment in reversed(comments):
        name, addr, full = triple
        triple = (comment if name == addr else name, addr, f"{full} ({comment})")
    return triple


def _one_plain(s: str, orig: str) -> tuple[str, str, str]:
    m = _QUOTED_NAME.match(s)
    if m is not None:
        name = m.group(1)
        addr = _angle_addr(m.group(2), s)
        return name, addr, f"{name} <{addr}>"
    simple = _simple_name(s)
    if simple is not None:
        name = simple[0].rstrip(_RACKET_BLANK)
        addr = _angle_addr(simple[1], s)
        return name, addr, f"{name} <{addr}>"
    addr = _angle_addr(s, orig) if ("<" in s or ">" in s) else _simple_addr(s, orig)
    return addr, addr, addr


def _angle_addr(s: str, orig: str) -> str:
    # Racket: <.*< or >.*> (two of either) is an error, then the first
    # blank*<([^>]*)>blank* gives the address.
    if s.count("<") > 1 or s.count(">") > 1:
        raise ValueError(f"extract_addresses: too many angle brackets: {s}")
    left = s.find("<")
    right = s.find(">", left + 1) if left >= 0 else -1
    if right < 0:
        raise ValueError(f"extract_addresses: cannot parse address: {orig}")
    return _simple_addr(s[left + 1 : right], orig)


def _simple_addr(s: str, orig: str) -> str:
    # No syntax check, as in Racket: "john doe@x" and "" (from "<>") pass.
    if _BAD_CHARS.search(s):
        raise ValueError(f"extract_addresses: cannot parse address: {orig}")
    return s.strip(_RACKET_BLANK)


def assemble_address_field(addresses: Iterable[str]) -> str:
    """Join addresses with ``", "``, folding (CRLF TAB) before a line would reach 72.

    As in Racket, the length of the field name (``"To: "``) is not counted.
    """
    if isinstance(addresses, (str, bytes)) or not isinstance(addresses, Iterable):
        raise TypeError(
            "assemble_address_field: contract violation\n"
            f"  expected: a list of strings\n  given: {addresses!r}"
        )
    items = list(addresses)
    for item in items:
        if not isinstance(item, str):
            raise TypeError(
                "assemble_address_field: contract violation\n"
                f"  expected: a list of strings\n  given: {addresses!r}"
            )
    if not items:
        return ""
    parts = [items[0]]
    length = len(items[0])
    for addr in items[1:]:
        if length + len(addr) >= 72:
            parts.append(",\r\n\t" + addr)
            length = len(addr)
        else:
            parts.append(", " + addr)
            length += len(addr) + 2
    return "".join(parts)
