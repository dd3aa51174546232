"""Mail addresses: RFC 5321/5322 validation and an RFC 5322 address-list parser.

* :func:`validate_address` checks one bare address (``user@example.com``) as
  both an RFC 5321 ``Mailbox`` and an RFC 5322 ``addr-spec`` and returns it
  normalized; internationalized local parts need ``smtputf8=True``.
* :func:`parse_address_list` parses a header field body (groups, nested
  comments, quoted strings, RFC 2047 display names) into :class:`Address` and
  :class:`Group` values, or raises ``ValueError`` saying where it failed.

Why not ``email-validator`` at run time: it rejects special-use domains such as
``localhost``, ``.test`` and ``.local`` whatever the options (its list is fixed),
normalizes some local parts to lower case, and pulls in dnspython.  That suits
web forms, not an SMTP library that must accept every address RFC 5321
accepts.  Its syntax rules are the same as ours for ordinary addresses; the
test suite checks the two against each other.  IDN domains use :mod:`idna`.

Modules: ``validate`` (the RFC 5321 envelope form), ``parser`` (RFC 5322 §3.4
address lists), ``encoded_words`` (RFC 2047) and ``header`` (the values and
their header form).
"""

from __future__ import annotations

from .header import (
    Address,
    Group,
    fold_address_field,
    fold_words,
    format_address_list,
    parse_address,
    parse_address_list,
    parse_mailboxes,
)
from .validate import normalize_domain, validate_address

__all__ = [
    "Address",
    "Group",
    "fold_address_field",
    "fold_words",
    "format_address_list",
    "normalize_domain",
    "parse_address",
    "parse_address_list",
    "parse_mailboxes",
    "validate_address",
]
