"""Addresses as header fields write them (RFC 5322 §3.4): :class:`Address` and
:class:`Group` values, parsed from a field body and formatted (and folded) back.

A value's addr-spec is checked with :func:`.validate.validate_address` when it
is normalized; non-ASCII display names become RFC 2047 encoded-words in 7-bit
headers.  Every public name here is exported by :mod:`postwire.address`, whose
``__all__`` lists them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from email.headerregistry import Address as EmailAddress
from email.headerregistry import Group as EmailGroup

import idna

from .._core.chars import ATEXT_CLASS, first_control
from .encoded_words import encode_words
from .parser import RawGroup, RawMailbox, parse
from .validate import quote_local, validate_address

_PHRASE_ASCII = re.compile(rf"[{ATEXT_CLASS}]+(?: [{ATEXT_CLASS}]+)*\Z")
_PHRASE_UTF8 = re.compile(
    rf"[{ATEXT_CLASS}\x80-\U0010ffff]+(?: [{ATEXT_CLASS}\x80-\U0010ffff]+)*\Z"
)

# Longest display-name word written as is; longer names become encoded-words
# (which can be cut) so that folded lines stay short (RFC 5322 §2.1.1).
_LONGEST_WORD = 70


# ---------------------------------------------------------------------------
# values


def _check_text(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be str, not {type(value).__name__}")
    bad = first_control(value, allow_tab=True)
    if bad is not None:  # CR, LF, NUL...: never let them reach a header
        raise ValueError(f"{what} contains control character U+{ord(bad.group()):04X}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{what} contains a lone surrogate") from None
    return value


@dataclass(frozen=True)
class Address:
    """One mailbox: ``Display Name <local_part@domain>``.

    ``local_part`` is the semantic value (no quotes or escapes); ``domain`` is
    as written (a name, or a literal such as ``[127.0.0.1]``).  ``str()`` gives
    the UTF-8 form; use :meth:`format` for a 7-bit header.
    """

    display_name: str
    local_part: str
    domain: str

    def __post_init__(self) -> None:
        _check_text(self.display_name, "display_name")
        if not _check_text(self.local_part, "local_part"):
            raise ValueError("local_part is empty")
        if not _check_text(self.domain, "domain") or any(c in self.domain for c in " \t@"):
            raise ValueError(f"invalid domain {self.domain!r}")

    @property
    def addr_spec(self) -> str:
        """``local_part@domain``, quoting the local part when it is not a dot-atom."""
        return f"{quote_local(self.local_part, utf8=True)}@{self.domain}"

    def addr_spec_for(self, *, utf8: bool = False) -> str:
        """:attr:`addr_spec` for a 7-bit header (``utf8=False``: A-label domain) or UTF-8."""
        local = quote_local(self.local_part, utf8=utf8)
        return f"{local}@{self.domain if utf8 else _ascii_domain(self.domain)}"

    def format(self, *, utf8: bool = False) -> str:
        """The address as written in a header field.

        With ``utf8=False`` the result is ASCII: a non-ASCII display name becomes
        RFC 2047 encoded-words, an IDN domain its A-labels; a non-ASCII local
        part raises ``ValueError`` (it needs SMTPUTF8).
        """
        return " ".join(_item_words(self, utf8))

    def __str__(self) -> str:
        return self.format(utf8=True)

    def normalized(self, *, smtputf8: bool = False) -> Address:
        """This address with its addr-spec checked and normalized by :func:`validate_address`."""
        spec = validate_address(self.addr_spec, smtputf8=smtputf8)
        plain = parse_address(spec)
        return Address(self.display_name, plain.local_part, plain.domain)

    def to_email(self) -> EmailAddress:
        """The equivalent :class:`email.headerregistry.Address`."""
        return EmailAddress(self.display_name, self.local_part, self.domain)

    @classmethod
    def from_email(cls, address: EmailAddress) -> Address:
        """Convert an :class:`email.headerregistry.Address`."""
        return cls(address.display_name, address.username, address.domain)


@dataclass(frozen=True)
class Group:
    """An RFC 5322 group, ``Name: member, member;`` (it may have no members)."""

    display_name: str
    members: tuple[Address, ...] = field(default=())

    def __post_init__(self) -> None:
        _check_text(self.display_name, "display_name")
        members = tuple(self.members)
        if not all(isinstance(member, Address) for member in members):
            raise TypeError("group members must be Address values")
        object.__setattr__(self, "members", members)

    def format(self, *, utf8: bool = False) -> str:
        """The group as written in a header field (see :meth:`Address.format`)."""
        return " ".join(_item_words(self, utf8))

    def __str__(self) -> str:
        return self.format(utf8=True)

    def to_email(self) -> EmailGroup:
        """The equivalent :class:`email.headerregistry.Group`."""
        return EmailGroup(self.display_name, [member.to_email() for member in self.members])


# ---------------------------------------------------------------------------
# parsing


def _convert(item: RawMailbox | RawGroup) -> Address | Group:
    if isinstance(item, RawGroup):
        return Group(item.display_name, tuple(Address(*member) for member in item.members))
    return Address(*item)


def parse_address_list(text: str) -> list[Address | Group]:
    """Parse an RFC 5322 address list (a ``To:`` field body) into addresses and groups.

    Comments are dropped, RFC 2047 display names decoded, empty elements
    skipped.  Blank text gives ``[]``.  Raises ``ValueError`` naming the position.
    """
    try:
        return [_convert(item) for item in parse(text)]
    except ValueError as err:
        raise ValueError(f"parse_address_list: {err}") from None


def parse_mailboxes(text: str) -> list[Address]:
    """Like :func:`parse_address_list`, with the groups' members flattened in place."""
    result: list[Address] = []
    for item in parse_address_list(text):
        result.extend(item.members if isinstance(item, Group) else (item,))
    return result


def parse_address(text: str) -> Address:
    """Parse exactly one mailbox (``a@b`` or ``Name <a@b>``)."""
    items = parse_address_list(text)
    if len(items) != 1 or not isinstance(items[0], Address):
        raise ValueError(f"parse_address: expected exactly one mailbox in {text!r}")
    return items[0]


def format_address_list(items: Iterable[Address | Group], *, utf8: bool = False) -> str:
    """Join formatted addresses and groups with ``", "`` (no folding)."""
    return ", ".join(item.format(utf8=utf8) for item in items)


# ---------------------------------------------------------------------------
# formatting helpers


def _phrase_words(name: str, *, utf8: bool) -> list[str]:
    """A display name as an RFC 5322 phrase, as words joined by single spaces:
    atoms, one quoted string, or RFC 2047 encoded-words."""
    # A literal "=?" would be taken for an encoded-word by readers: encode it too.
    # So is a name with a word too long to fit a line (encoded-words can be cut).
    if "=?" in name or (not utf8 and not name.isascii()):
        return encode_words(name)
    if (_PHRASE_UTF8 if utf8 else _PHRASE_ASCII).match(name):
        words = name.split(" ")
        if max(len(word) for word in words) <= _LONGEST_WORD:
            return words
    elif len(name) <= _LONGEST_WORD:
        return ['"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"']
    return encode_words(name)


def _item_words(item: Address | Group, utf8: bool) -> list[str]:
    if isinstance(item, Address):
        spec = f"<{item.addr_spec_for(utf8=utf8)}>"
        if not item.display_name:
            return [spec[1:-1]]
        return [*_phrase_words(item.display_name, utf8=utf8), spec]
    words = _phrase_words(item.display_name, utf8=utf8)
    words[-1] += ":"
    for index, member in enumerate(item.members):
        member_words = _item_words(member, utf8)
        if index:
            words[-1] += ","
        words += member_words
    words[-1] += ";"
    return words


def fold_address_field(
    name: str, items: Iterable[Address | Group], *, utf8: bool = False, width: int = 78
) -> str:
    """A complete header line ``Name: item, item...`` + CRLF, folded before ``width``.

    Folds fall only between words (RFC 5322 §2.2.3), never inside a quoted
    string or an addr-spec, so unfolding gives back the exact field body.
    """
    words: list[str] = []
    for index, item in enumerate(items):
        if index:
            words[-1] += ","
        words += _item_words(item, utf8)
    return fold_words(name, words, width=width)


def fold_words(name: str, words: list[str], *, width: int = 78) -> str:
    """``Name:`` and ``words`` joined by single spaces, folded (CRLF SP) to fit ``width``.

    A fold replaces a joining space, so unfolding restores the text exactly.
    No fold goes before the first word or before an empty word (which would
    leave a line of white space only).
    """
    lines: list[str] = []
    line = name + ":"
    for index, word in enumerate(words):
        if index and word and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = " " + word
        else:
            line += " " + word
    lines.append(line)
    return "\r\n".join(lines) + "\r\n"


def _ascii_domain(domain: str) -> str:
    """A domain in ASCII: A-labels for an IDN (RFC 5890), literals unchanged."""
    if domain.isascii():
        return domain
    try:
        return idna.encode(domain, uts46=True).decode("ascii")
    except idna.IDNAError as err:
        raise ValueError(f"invalid internationalized domain {domain!r}: {err}") from None
