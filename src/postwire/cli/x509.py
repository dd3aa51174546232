"""Just enough DER (X.690) to show a certificate the ``ssl`` module would not decode.

``ssl`` only decodes the peer certificate when it verified; ``probe`` also
shows one that did not.  This reads the fields of an X.509 certificate
(RFC 5280 §4.1) that a person checks: subject, issuer, validity, the names
it is valid for, serial number and SHA-256 fingerprint.  Only the standard
library is used.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from datetime import datetime, timezone

__all__ = ["CertificateInfo", "parse_certificate"]

_NAMES = {
    "2.5.4.3": "CN",
    "2.5.4.5": "serialNumber",
    "2.5.4.6": "C",
    "2.5.4.7": "L",
    "2.5.4.8": "ST",
    "2.5.4.9": "street",
    "2.5.4.10": "O",
    "2.5.4.11": "OU",
    "1.2.840.113549.1.9.1": "emailAddress",
    "0.9.2342.19200300.100.1.25": "DC",
}
_SAN = "2.5.29.17"
_SEQUENCE, _SET, _OID, _OCTETS, _INTEGER = 0x30, 0x31, 0x06, 0x04, 0x02
_UTC_TIME, _GENERALIZED_TIME = 0x17, 0x18


@dataclass(frozen=True)
class CertificateInfo:
    """The fields of a certificate that ``probe`` shows."""

    subject: str
    issuer: str
    not_before: datetime
    not_after: datetime
    names: tuple[str, ...]
    serial: str
    sha256: str

    def as_json(self) -> dict[str, object]:
        return {
            "subject": self.subject,
            "issuer": self.issuer,
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
            "names": list(self.names),
            "serial": self.serial,
            "sha256": self.sha256,
        }


def _tlv(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, start of the value, end of the value) of the element at ``pos``."""
    if pos + 2 > len(data):
        raise ValueError("truncated DER element")
    tag, first = data[pos], data[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if not 0 < count <= 4 or pos + count > len(data):
            raise ValueError("bad DER length")
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    if pos + length > len(data):
        raise ValueError("DER element runs past its container")
    return tag, pos, pos + length


def _children(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    items = []
    while start < end:
        tag, value, stop = _tlv(data, start)
        items.append((tag, value, stop))
        start = stop
    return items


def _oid(raw: bytes) -> str:
    values: list[int] = []
    value = 0
    for byte in raw:  # base-128 arcs, high bit set on all but the last byte (X.690 §8.19)
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            values.append(value)
            value = 0
    if not values:
        raise ValueError("empty OID")
    first = min(values[0] // 40, 2)  # the first two arcs share one number
    return ".".join(str(v) for v in [first, values[0] - 40 * first, *values[1:]])


def _text(tag: int, raw: bytes) -> str:
    if tag == 0x1E:  # BMPString
        return raw.decode("utf-16-be", "replace")
    if tag == 0x1C:  # UniversalString
        return raw.decode("utf-32-be", "replace")
    if tag == 0x14:  # TeletexString: treated as Latin-1, as OpenSSL does
        return raw.decode("latin-1")
    return raw.decode("utf-8", "replace")


def _name(data: bytes, start: int, end: int) -> str:
    """A distinguished name in certificate order, e.g. ``C=DE, O=Example, CN=mail``."""
    parts = []
    for _, rdn_start, rdn_end in _children(data, start, end):
        for _, atv_start, atv_end in _children(data, rdn_start, rdn_end):
            (oid_tag, o1, o2), (value_tag, v1, v2) = _children(data, atv_start, atv_end)[:2]
            if oid_tag != _OID:
                raise ValueError("bad attribute in a name")
            oid = _oid(data[o1:o2])
            parts.append(f"{_NAMES.get(oid, oid)}={_text(value_tag, data[v1:v2])}")
    return ", ".join(parts)


def _time(tag: int, raw: bytes) -> datetime:
    text = raw.decode("ascii").rstrip("Z")
    if tag == _UTC_TIME:
        # RFC 5280 §4.1.2.5.1: YY >= 50 is 19YY, else 20YY.
        year = int(text[:2])
        text = f"{1900 + year if year >= 50 else 2000 + year}{text[2:]}"
    elif tag != _GENERALIZED_TIME:
        raise ValueError("bad time in the validity")
    return datetime.strptime(text[:14], "%Y%m%d%H%M%S").replace(tzinfo=timezone.utc)


def _alt_names(data: bytes, start: int, end: int) -> list[str]:
    names = []
    for tag, v1, v2 in _children(data, start, end):
        raw = data[v1:v2]
        if tag == 0x82:  # [2] dNSName
            names.append(f"DNS:{raw.decode('ascii', 'replace')}")
        elif tag == 0x87:  # [7] iPAddress, 4 or 16 octets
            names.append(f"IP:{ipaddress.ip_address(raw)}")
        elif tag == 0x81:  # [1] rfc822Name
            names.append(f"email:{raw.decode('ascii', 'replace')}")
        elif tag == 0x86:  # [6] uniformResourceIdentifier
            names.append(f"URI:{raw.decode('ascii', 'replace')}")
    return names


def _extensions(data: bytes, start: int, end: int) -> list[str]:
    (_, seq_start, seq_end) = _tlv(data, start)  # [3] EXPLICIT Extensions
    for _, ext_start, ext_end in _children(data, seq_start, seq_end):
        parts = _children(data, ext_start, ext_end)
        if _oid(data[parts[0][1] : parts[0][2]]) == _SAN:
            tag, o1, _ = parts[-1]
            if tag != _OCTETS:
                raise ValueError("bad subjectAltName extension")
            _, n1, n2 = _tlv(data, o1)
            return _alt_names(data, n1, n2)
    return []


def parse_certificate(der: bytes) -> CertificateInfo:
    """Read a DER certificate; ``ValueError`` when it is not one."""
    try:
        return _parse(der)
    except (IndexError, UnicodeDecodeError) as exc:
        raise ValueError(f"not a DER certificate: {exc}") from None


def _parse(der: bytes) -> CertificateInfo:
    tag, cert_start, _ = _tlv(der, 0)
    if tag != _SEQUENCE:
        raise ValueError("not a DER certificate")
    tag, tbs_start, tbs_end = _tlv(der, cert_start)
    fields = _children(der, tbs_start, tbs_end)
    if fields and fields[0][0] == 0xA0:  # [0] EXPLICIT version
        fields = fields[1:]
    serial, _algorithm, issuer, validity, subject = fields[:5]
    if serial[0] != _INTEGER or validity[0] != _SEQUENCE:
        raise ValueError("not an X.509 certificate")
    (t1, a1, b1), (t2, a2, b2) = _children(der, validity[1], validity[2])[:2]
    names: list[str] = []
    for tag, start, end in fields[6:]:
        if tag == 0xA3:  # [3] extensions
            names = _extensions(der, start, end)
    return CertificateInfo(
        subject=_name(der, subject[1], subject[2]),
        issuer=_name(der, issuer[1], issuer[2]),
        not_before=_time(t1, der[a1:b1]),
        not_after=_time(t2, der[a2:b2]),
        names=tuple(names),
        serial=(der[serial[1] : serial[2]].lstrip(b"\0") or b"\0").hex(":").upper(),
        sha256=hashlib.sha256(der).digest().hex(":").upper(),
    )
