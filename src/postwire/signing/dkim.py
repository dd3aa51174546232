"""DKIM signing (RFC 6376) of exactly the bytes a client sends.

A :class:`DKIMSigner` given to a client (``dkim=``), a pool, the outbox or the
command line signs every message after postwire has finished with it: after
an ``EmailMessage`` is serialized and given its Date and Message-ID, and after
bare CR and LF are made CRLF and a last line is ended, which is what the data
framing would otherwise do on the way out (RFC 5321 §2.3.8, §4.1.1.4).  So the
``DKIM-Signature`` covers the very bytes the server receives, and a verifier
sees what was signed.  Dot-stuffing and BDAT framing are transport and are
undone by the server before anyone verifies.

The signature itself is dkimpy's (``pip install 'postwire[dkim]'``): RSA-SHA256
(RFC 8301) and Ed25519-SHA256 (RFC 8463).  Signing needs the whole message in
memory (the signature header goes before the body it hashes), so a streamed
file or iterable is read in full when a signer is set.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import AsyncIterable, Iterable, Sequence
from pathlib import Path
from typing import Any

from .._core.encoding import normalize_line_endings
from .._core.message import PreparedMessage, with_content
from .keys import Algorithm, PrivateKey, parse_private_key

__all__ = ["CANONICALIZATIONS", "DKIMSigner", "sign_prepared"]

#: The canonicalization algorithms of RFC 6376 §3.4.
CANONICALIZATIONS = ("simple", "relaxed")

#: Header fields that must never be signed: trace fields are added in transit
#: and would break the signature (RFC 6376 §5.4.1).
_NEVER_SIGNED = frozenset({"return-path", "received", "comments", "keywords"})


@dataclasses.dataclass(frozen=True, init=False)
class DKIMSigner:
    """Signs messages for ``domain`` with the key published at ``selector._domainkey.domain``.

    Args:
        domain: the signing domain (``d=``); for DMARC it should be the From domain
            or a parent of it.
        selector: the selector (``s=``) under which the public key is published.
        private_key: the key itself: PEM bytes (RSA or Ed25519), or the base64
            Ed25519 seed dkimpy's ``dknewkey`` writes; :meth:`from_file` reads a file.
            The algorithm (``rsa-sha256`` or ``ed25519-sha256``) follows from the key.
        headers: the header fields to sign (``h=``), in order; a name listed twice is
            signed twice, which keeps anyone from adding a second one.  ``From`` must
            be among them (RFC 6376 §5.4).  The default signs the fields RFC 6376
            §5.4.1 recommends that the message has, and ``From`` twice.
        canonicalization: ``"header/body"`` (RFC 6376 §3.4), each ``simple`` or
            ``relaxed``; the default ``relaxed/relaxed`` survives the re-folding and
            whitespace changes relays make.
        identity: the agent or user identifier (``i=``); it must end with ``domain``.
    """

    domain: str
    selector: str
    headers: tuple[str, ...] | None
    canonicalization: tuple[str, str]
    identity: str | None
    key: PrivateKey = dataclasses.field(repr=False)

    def __init__(
        self,
        domain: str,
        selector: str,
        private_key: bytes | str,
        *,
        headers: Sequence[str] | None = None,
        canonicalization: str = "relaxed/relaxed",
        identity: str | None = None,
    ) -> None:
        _require_module()
        domain = _label_text("domain", domain)
        selector = _label_text("selector", selector)
        if isinstance(private_key, str):
            private_key = private_key.encode("ascii", "replace")
        key = parse_private_key(bytes(private_key))
        checked = _headers(headers)
        canon = _canonicalization(canonicalization)
        if identity is not None:
            ident_domain = identity.rpartition("@")[2].lower()
            base = domain.lower()
            if "@" not in identity or not (
                ident_domain == base or ident_domain.endswith("." + base)
            ):
                raise ValueError(
                    f"identity {identity!r} must be an address at {domain} or one of its "
                    "subdomains (RFC 6376 §3.5, i= tag)"
                )
        set_ = object.__setattr__
        set_(self, "domain", domain)
        set_(self, "selector", selector)
        set_(self, "headers", checked)
        set_(self, "canonicalization", canon)
        set_(self, "identity", identity)
        set_(self, "key", key)

    @classmethod
    def from_file(
        cls, path: str | os.PathLike[str], domain: str, selector: str, **options: Any
    ) -> DKIMSigner:
        """A signer whose private key is read from ``path`` (see the class for ``options``)."""
        try:
            data = Path(path).expanduser().read_bytes()
        except OSError as exc:
            raise ValueError(f"cannot read the DKIM key {path}: {exc.strerror or exc}") from None
        try:
            return cls(domain, selector, data, **options)
        except ValueError as exc:
            raise ValueError(f"DKIM key {path}: {exc}") from None

    @property
    def algorithm(self) -> Algorithm:
        """``rsa-sha256`` or ``ed25519-sha256``, as the key says."""
        return self.key.algorithm

    def dns_name(self) -> str:
        """Where the public key is published: ``<selector>._domainkey.<domain>``."""
        return f"{self.selector}._domainkey.{self.domain}"

    def dns_record(self) -> str:
        """The TXT record to publish at :meth:`dns_name` (RFC 6376 §3.6.1)."""
        return self.key.dns_record()

    def signature(self, message: bytes) -> bytes:
        """The ``DKIM-Signature`` field (ending in CRLF) for ``message``, signed as it is.

        ``message`` must already be what goes on the wire: :meth:`sign` makes it so.
        """
        import dkim

        include = [h.encode("ascii") for h in self.headers] if self.headers else None
        signer = dkim.DKIM(message, linesep=b"\r\n")
        try:
            field = signer.sign(
                self.selector.encode("ascii"),
                self.domain.encode("ascii"),
                self.key.for_dkimpy,
                signature_algorithm=self.key.algorithm.encode("ascii"),
                identity=self.identity.encode("utf-8") if self.identity else None,
                canonicalize=(
                    self.canonicalization[0].encode("ascii"),
                    self.canonicalization[1].encode("ascii"),
                ),
                include_headers=include,
            )
        except dkim.DKIMException as exc:
            raise ValueError(f"cannot DKIM-sign the message: {exc}") from None
        return bytes(field)

    def sign(self, message: bytes) -> bytes:
        """``message`` as it goes on the wire, with its ``DKIM-Signature`` field on top."""
        data = wire_form(message)
        return self.signature(data) + data


def wire_form(message: bytes, *, binary: bool = False) -> bytes:
    """The content as the data framing sends it: CRLF line endings, the last line ended.

    ``binary`` content (``BODY=BINARYMIME``) travels as it is (RFC 3030 §3).
    """
    if binary:
        return message
    data = normalize_line_endings(message)
    # DATA ends an unterminated last line before the final "." (RFC 5321 §4.1.1.4);
    # ending it here too makes DATA and BDAT carry the same, signed, bytes.
    return data if data.endswith(b"\r\n") or not data else data + b"\r\n"


def sign_prepared(prepared: PreparedMessage, signer: DKIMSigner) -> PreparedMessage:
    """``prepared`` with its content read, put in wire form and signed; the envelope follows."""
    content = _read_all(prepared.content)
    data = wire_form(content, binary=prepared.envelope.binary)
    return with_content(prepared, signer.signature(data) + data)


def _read_all(content: object) -> bytes:
    if isinstance(content, (bytes, bytearray, memoryview)):
        return bytes(content)
    read = getattr(content, "read", None)
    if read is not None:
        data = read()
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError("a message file must be opened in binary mode ('rb')")
        return bytes(data)
    if isinstance(content, AsyncIterable):
        raise TypeError(
            "DKIM signing needs the whole message before it is sent: pass bytes, a file "
            "or an iterable of bytes, not an async iterable"
        )
    if isinstance(content, Iterable):
        return b"".join(bytes(chunk) for chunk in content)
    raise TypeError(f"cannot sign a {type(content).__name__}")


def _require_module() -> None:
    try:
        import dkim  # noqa: F401
    except ImportError:
        raise ImportError("DKIM signing needs dkimpy: pip install 'postwire[dkim]'") from None


def _label_text(what: str, value: str) -> str:
    # d= and s= are domain names (RFC 6376 §3.5): A-labels, dots, no spaces or ";".
    if not isinstance(value, str) or not value or not value.isascii():
        raise ValueError(f"the DKIM {what} must be a non-empty ASCII domain name: {value!r}")
    if any(ch in value for ch in " \t\r\n;=@") or value.startswith(".") or ".." in value:
        raise ValueError(f"the DKIM {what} is not a domain name: {value!r}")
    return value


def _headers(headers: Sequence[str] | None) -> tuple[str, ...] | None:
    if headers is None:
        return None
    if isinstance(headers, str):
        headers = [h.strip() for h in headers.split(":" if ":" in headers else ",")]
    names = tuple(h.strip() for h in headers)
    for name in names:
        if not name or not name.isascii() or any(ch in name for ch in " \t:\r\n"):
            raise ValueError(f"not a header field name: {name!r}")
        if name.lower() in _NEVER_SIGNED:
            raise ValueError(f"{name} must not be signed: it changes in transit (RFC 6376 §5.4.1)")
    if "from" not in (name.lower() for name in names):
        raise ValueError("the From field must be signed (RFC 6376 §5.4)")
    return names


def _canonicalization(value: str) -> tuple[str, str]:
    # "c=relaxed" alone means relaxed headers and simple body (RFC 6376 §3.5).
    header, _, body = value.strip().lower().partition("/")
    body = body or "simple"
    if header not in CANONICALIZATIONS or body not in CANONICALIZATIONS:
        raise ValueError(
            "canonicalization must be HEADER/BODY, each simple or relaxed "
            f"(RFC 6376 §3.4), not {value!r}"
        )
    return header, body
