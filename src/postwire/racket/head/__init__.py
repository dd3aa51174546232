"""Racket's ``net/head`` for Python, plus bridges to :mod:`email` and a modern header builder.

The twelve names of Racket's ``head^`` signature behave as in Racket 8.7 on
``str`` and ``bytes`` headers (see the project's spec), with five fixes:
TAB-folded lines stay continuations even with a colon; ``extract_all_fields``
skips TABs after the colon; empty address-list elements are skipped;
``validate_header`` rejects empty field names and bare CR/LF inside lines;
errors name the function and are ``ValueError``/``TypeError``.

Beyond Racket: :func:`compose_message` (header + body lines -> CRLF bytes),
:func:`header_to_message` / :func:`message_to_header` (to and from
:class:`email.message.EmailMessage`) and :func:`modern_message_header`
(Message-ID, MIME, RFC 2047, validated addresses).  Address tools live in
:mod:`postwire.address`.

Modules: ``fields`` (the header functions), ``addresses`` (Racket's address
heuristics), ``compose``, ``email_bridge``, ``modern`` and ``unit`` (Racket's
``head^`` and ``head@``).
"""

from __future__ import annotations

from .addresses import assemble_address_field, extract_addresses
from .compose import compose_message
from .email_bridge import header_to_message, message_to_header, message_to_parts
from .fields import (
    append_headers,
    data_lines_to_data,
    empty_header,
    extract_all_fields,
    extract_field,
    insert_field,
    remove_field,
    replace_field,
    standard_message_header,
    validate_header,
)
from .modern import modern_message_header
from .unit import HeadSignature, head_unit

__all__ = [
    "HeadSignature",
    "append_headers",
    "assemble_address_field",
    "compose_message",
    "data_lines_to_data",
    "empty_header",
    "extract_addresses",
    "extract_all_fields",
    "extract_field",
    "head_unit",
    "header_to_message",
    "insert_field",
    "message_to_header",
    "message_to_parts",
    "modern_message_header",
    "remove_field",
    "replace_field",
    "standard_message_header",
    "validate_header",
]
