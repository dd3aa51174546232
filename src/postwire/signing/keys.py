"""DKIM private keys: what a key file holds, and the public key record it calls for.

Two key types are signed with (RFC 8301 §3.1 and RFC 8463):

- RSA, from a PEM file in PKCS #1 (``BEGIN RSA PRIVATE KEY``, as ``opendkim-genkey``
  writes) or PKCS #8 (``BEGIN PRIVATE KEY``, as ``openssl genpkey`` writes);
- Ed25519, from a PKCS #8 PEM file (``openssl genpkey -algorithm ed25519``) or as the
  base64 32-byte seed that dkimpy's ``dknewkey`` writes.

The DER is read here, by hand, only as far as telling the two apart and taking the Ed25519
seed out; the RSA arithmetic is dkimpy's.  The public key is worked out too, so that
:meth:`PrivateKey.dns_record` can say what to publish at ``selector._domainkey.domain``.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["Algorithm", "PrivateKey", "parse_private_key"]

Algorithm = Literal["rsa-sha256", "ed25519-sha256"]

#: AlgorithmIdentifier of rsaEncryption (1.2.840.113549.1.1.1) with NULL parameters.
_RSA_ALGORITHM = bytes.fromhex("300d06092a864886f70d0101010500")
#: AlgorithmIdentifier of id-Ed25519 (1.3.101.112, RFC 8410 §3): no parameters.
_ED25519_ALGORITHM = bytes.fromhex("300506032b6570")
#: RFC 8410 §7: the private key is an OCTET STRING holding an OCTET STRING of 32 bytes.
_ED25519_SEED = bytes.fromhex("04220420")
#: Keys shorter than this are refused by verifiers (RFC 8301 §3.2: at least 1024 bits).
MIN_RSA_BITS = 1024

_PEM = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\s*(.*?)\s*-----END \1-----", re.DOTALL)


@dataclass(frozen=True)
class PrivateKey:
    """A signing key: its algorithm and the form dkimpy takes it in (never shown in ``repr``)."""

    algorithm: Algorithm
    #: PEM (RSA) or base64 seed (Ed25519), as dkimpy's ``sign`` wants it.
    for_dkimpy: bytes = field(repr=False)
    #: The public key as the ``p=`` tag carries it (RFC 6376 §3.6.1, RFC 8463 §4).
    public: bytes = field(repr=False)
    bits: int = 0

    def dns_record(self) -> str:
        """The TXT record to publish at ``<selector>._domainkey.<domain>`` (RFC 6376 §3.6.1)."""
        kind = "rsa" if self.algorithm == "rsa-sha256" else "ed25519"
        return f"v=DKIM1; k={kind}; p={self.public.decode('ascii')}"


def parse_private_key(data: bytes) -> PrivateKey:
    """Read an RSA or Ed25519 private key (see the module docstring). Raises ``ValueError``."""
    match = _PEM.search(data)
    if match is None:
        return _raw_ed25519(data)
    label = match.group(1).decode("ascii")
    try:
        der = base64.b64decode(b"".join(match.group(2).split()), validate=True)
    except binascii.Error:
        raise ValueError(f"the {label} block of the key is not valid base64") from None
    if label == "RSA PRIVATE KEY":
        return _rsa(der)
    if label == "PRIVATE KEY":
        return _pkcs8(der)
    if label == "ENCRYPTED PRIVATE KEY":
        raise ValueError(
            "the DKIM key is encrypted; write it out unencrypted "
            "(openssl pkey -in KEY -out PLAIN) and keep that file private"
        )
    raise ValueError(f"not a private key: the file holds a {label}")


def _raw_ed25519(data: bytes) -> PrivateKey:
    text = data.strip()
    try:
        seed = base64.b64decode(text, validate=True)
    except binascii.Error:
        seed = b""
    if len(seed) != 32:
        raise ValueError(
            "not a DKIM private key: expected a PEM private key (RSA or Ed25519) "
            "or the base64 Ed25519 seed that dknewkey writes"
        )
    return _ed25519(seed)


def _ed25519(seed: bytes) -> PrivateKey:
    try:
        import nacl.signing
    except ImportError:
        raise ImportError("Ed25519 DKIM keys need PyNaCl: pip install 'postwire[dkim]'") from None
    public = bytes(nacl.signing.SigningKey(seed).verify_key)
    return PrivateKey("ed25519-sha256", base64.b64encode(seed), base64.b64encode(public), bits=256)


def _pkcs8(der: bytes) -> PrivateKey:
    # RFC 5208 §5 / RFC 5958 §2: SEQUENCE { version, AlgorithmIdentifier, OCTET STRING, ... }
    body = _contents(der, 0x30)
    _, rest = _element(body, 0x02)
    algorithm, rest = _element(rest, 0x30, whole=True)
    inner, _ = _element(rest, 0x04)
    if algorithm == _RSA_ALGORITHM:
        return _rsa(inner)
    if algorithm == _ED25519_ALGORITHM:
        if not inner.startswith(_ED25519_SEED[2:]) or len(inner) != 34:
            raise ValueError("the Ed25519 key is malformed")
        return _ed25519(inner[2:])
    raise ValueError("the key is neither RSA nor Ed25519 (DKIM signs with those two only)")


def _rsa(der: bytes) -> PrivateKey:
    # RFC 8017 A.1.2: RSAPrivateKey ::= SEQUENCE { version, modulus, publicExponent, ... }
    body = _contents(der, 0x30)
    _, rest = _element(body, 0x02)
    modulus, rest = _element(rest, 0x02)
    exponent, _ = _element(rest, 0x02)
    bits = int.from_bytes(modulus, "big").bit_length()
    if bits < MIN_RSA_BITS:
        raise ValueError(
            f"the RSA key has {bits} bits; verifiers refuse keys under {MIN_RSA_BITS} "
            "(RFC 8301 §3.2): use 2048"
        )
    # SubjectPublicKeyInfo (RFC 5280 §4.1) around RSAPublicKey (RFC 8017 A.1.1): the p= tag.
    rsa_public = _der(0x30, _der(0x02, modulus) + _der(0x02, exponent))
    spki = _der(0x30, _RSA_ALGORITHM + _der(0x03, b"\0" + rsa_public))
    pem = (
        b"-----BEGIN RSA PRIVATE KEY-----\n"
        + b"\n".join(base64.encodebytes(der).split())
        + b"\n-----END RSA PRIVATE KEY-----\n"
    )
    return PrivateKey("rsa-sha256", pem, base64.b64encode(spki), bits=bits)


# -- a little DER (X.690), only what the two key formats need -------------------------------


def _element(data: bytes, tag: int, *, whole: bool = False) -> tuple[bytes, bytes]:
    """The first element of ``data`` (which must have ``tag``): its contents, and the rest.

    ``whole`` returns the element with its tag and length instead of its contents.
    """
    if len(data) < 2 or data[0] != tag:
        raise ValueError("the key is not well-formed DER")
    length, start = data[1], 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or len(data) < 2 + count:
            raise ValueError("the key is not well-formed DER")
        length = int.from_bytes(data[2 : 2 + count], "big")
        start = 2 + count
    end = start + length
    if end > len(data):
        raise ValueError("the key is cut short")
    return (data[:end] if whole else data[start:end]), data[end:]


def _contents(data: bytes, tag: int) -> bytes:
    contents, rest = _element(data, tag)
    if rest:
        raise ValueError("the key has trailing bytes")
    return contents


def _der(tag: int, contents: bytes) -> bytes:
    size = len(contents)
    if size < 0x80:
        return bytes([tag, size]) + contents
    octets = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(octets)]) + octets + contents
