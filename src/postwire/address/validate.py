"""RFC 5321 §4.1.2 / RFC 6531 §3.3 address validation (the envelope form of an address).

Hand-written on purpose (see :mod:`postwire.address` for why not
``email-validator``): the grammar is small, and IDN domains go through
:mod:`idna` (IDNA 2008 with UTS #46 mapping), address literals through
:mod:`ipaddress`.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata

import idna

from .._core.chars import ATEXT_CLASS, first_control

__all__ = [
    "MAX_DOMAIN",
    "MAX_LOCAL_PART",
    "MAX_PATH",
    "normalize_domain",
    "quote_local",
    "validate_address",
]

_DOT_ATOM_ASCII = re.compile(rf"[{ATEXT_CLASS}]+(?:\.[{ATEXT_CLASS}]+)*\Z")
_DOT_ATOM_UTF8 = re.compile(
    rf"[{ATEXT_CLASS}\x80-\U0010ffff]+(?:\.[{ATEXT_CLASS}\x80-\U0010ffff]+)*\Z"
)
_LDH_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\Z")
_SNUM = re.compile(r"[0-9]{1,3}\Z")

# RFC 5321 §4.5.3.1: local part 64 octets, domain 255, path (with "<>") 256.
MAX_LOCAL_PART = 64
MAX_DOMAIN = 255
MAX_PATH = 256


def quote_local(local: str, *, utf8: bool) -> str:
    """``local`` as written in an addr-spec: a dot-atom as is, anything else quoted."""
    if not utf8 and not local.isascii():
        raise ValueError(f"non-ASCII local part {local!r} needs SMTPUTF8 (use utf8=True)")
    if (_DOT_ATOM_UTF8 if utf8 else _DOT_ATOM_ASCII).match(local):
        return local
    return '"' + local.replace("\\", "\\\\").replace('"', '\\"') + '"'


def validate_address(addr: str, *, smtputf8: bool = False) -> str:
    """Check a bare address and return it normalized, or raise ``ValueError``.

    The address must be a valid RFC 5321 ``Mailbox`` (which makes it a valid
    RFC 5322 ``addr-spec``): a dot-string or quoted local part, then a domain
    name or an address literal (``[192.0.2.1]``, ``[IPv6:2001:db8::1]``).
    Limits: local part 64 octets, domain 255, whole path 256 (so 254 for the
    address).  No DNS lookups are made.

    The result is the form to put on the wire: unnecessary quotes removed, IPv6
    literals compressed, and IDN domains as A-labels (``xn--...``) unless
    ``smtputf8=True``, in which case U-labels are kept (lower-cased, NFC) and
    the local part may be internationalized (RFC 6531).
    """
    if not isinstance(addr, str):
        raise TypeError(f"validate_address: expected str, got {type(addr).__name__}")
    bad = first_control(addr, allow_tab=True)
    if bad is not None:
        raise _invalid(addr, f"control character U+{ord(bad.group()):04X}")
    if addr.startswith("<") and addr.endswith(">"):
        raise _invalid(addr, "give the bare address, without angle brackets")
    try:
        at = addr.rindex("@")
    except ValueError:
        raise _invalid(addr, "missing '@'") from None
    local = _normalize_local(addr[:at], addr, smtputf8)
    domain = normalize_domain(addr[at + 1 :], smtputf8=smtputf8, addr=addr)
    result = f"{local}@{domain}"
    if len(local.encode("utf-8")) > MAX_LOCAL_PART:
        raise _invalid(addr, f"local part longer than {MAX_LOCAL_PART} octets")
    if len(result.encode("utf-8")) > MAX_PATH - 2:
        raise _invalid(addr, f"address longer than {MAX_PATH - 2} octets")
    return result


def _invalid(addr: str, reason: str) -> ValueError:
    shown = addr if len(addr) <= 80 else addr[:77] + "..."
    return ValueError(f"validate_address: {reason}: {shown!r}")


def _check_utf8_char(ch: str, addr: str, smtputf8: bool) -> None:
    if not smtputf8:
        raise _invalid(addr, "non-ASCII local part needs SMTPUTF8 (smtputf8=True)")
    # RFC 6531 allows any UTF-8; we refuse what cannot be seen or is not a
    # character (controls, format characters except ZWNJ/ZWJ, spaces, unassigned).
    category = unicodedata.category(ch)
    if category in ("Cc", "Cs", "Co", "Cn", "Zs", "Zl", "Zp") or (
        category == "Cf" and ch not in "\u200c\u200d"
    ):
        raise _invalid(addr, f"character U+{ord(ch):04X} not allowed in a local part")


def _normalize_local(local: str, addr: str, smtputf8: bool) -> str:
    if not local:
        raise _invalid(addr, "empty local part")
    if smtputf8:
        local = unicodedata.normalize("NFC", local)  # RFC 6532 §3.1
    if local.startswith('"'):
        value = _unquote_local(local, addr, smtputf8)
        if not value:
            raise _invalid(addr, "empty local part")
    else:
        for atom in local.split("."):
            if not atom:
                raise _invalid(addr, "empty atom in local part (misplaced '.')")
            for ch in atom:
                if ch >= "\x80":
                    _check_utf8_char(ch, addr, smtputf8)
                elif not _DOT_ATOM_ASCII.match(ch):
                    raise _invalid(addr, f"character {ch!r} must be quoted in a local part")
        value = local
    return quote_local(value, utf8=smtputf8)


def _unquote_local(local: str, addr: str, smtputf8: bool) -> str:
    # Quoted-string = DQUOTE *(qtextSMTP / "\" %d32-126) DQUOTE
    out: list[str] = []
    i, end = 1, len(local)
    while i < end:
        ch = local[i]
        if ch == '"':
            if i != end - 1:
                raise _invalid(addr, "text after the closing quote of the local part")
            return "".join(out)
        if ch == "\\":
            i += 1
            if i >= end or not " " <= local[i] <= "~":
                raise _invalid(addr, "bad escape in quoted local part")
            ch = local[i]
        elif ch >= "\x80":
            _check_utf8_char(ch, addr, smtputf8)
        elif not " " <= ch <= "~":
            raise _invalid(addr, f"character U+{ord(ch):04X} not allowed in a quoted local part")
        out.append(ch)
        i += 1
    raise _invalid(addr, "unterminated quoted local part")


def normalize_domain(domain: str, *, smtputf8: bool = False, addr: str | None = None) -> str:
    """Check an RFC 5321 domain or address literal and return its wire form.

    IDNs become A-labels, or lower-case NFC U-labels with ``smtputf8=True``.
    """
    where = addr if addr is not None else domain
    if not domain:
        raise _invalid(where, "missing domain after '@'")
    if domain.startswith("["):
        return _address_literal(domain, where)
    if domain.isascii():
        ascii_form = domain
    else:
        try:
            ascii_form = idna.encode(domain, uts46=True).decode("ascii")
        except idna.IDNAError as err:
            raise _invalid(where, f"invalid internationalized domain ({err})") from None
    for label in ascii_form.split("."):
        if not _LDH_LABEL.match(label):
            raise _invalid(where, f"invalid domain label {label!r}")
        if label[2:4] == "--" and label[:2].lower() != "xn":
            # RFC 5890 §2.3.1: hyphens in positions 3-4 are reserved for A-labels.
            raise _invalid(where, f"reserved domain label {label!r}")
        if label[:4].lower() == "xn--":
            try:
                idna.decode(label)
            except idna.IDNAError as err:
                raise _invalid(where, f"invalid A-label {label!r} ({err})") from None
    if len(ascii_form) > MAX_DOMAIN:
        raise _invalid(where, f"domain longer than {MAX_DOMAIN} octets")
    if smtputf8 and not domain.isascii():
        return idna.decode(ascii_form)
    return ascii_form


def _address_literal(domain: str, where: str) -> str:
    if not domain.endswith("]") or len(domain) < 3:
        raise _invalid(where, "malformed address literal")
    inner = domain[1:-1]
    if inner[:5].lower() == "ipv6:":
        text = inner[5:]
        try:
            if "%" in text:
                raise ValueError("zone index")
            return f"[IPv6:{ipaddress.IPv6Address(text).compressed}]"
        except ValueError:
            raise _invalid(where, "invalid IPv6 address literal") from None
    if ":" in inner:
        raise _invalid(where, "unsupported address literal tag")
    parts = inner.split(".")
    if len(parts) != 4 or not all(_SNUM.match(p) and int(p) <= 255 for p in parts):
        raise _invalid(where, "invalid IPv4 address literal")
    return domain
