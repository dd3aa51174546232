"""TLS contexts and errors that explain themselves."""

from __future__ import annotations

import hashlib
import ssl
from pathlib import Path
from typing import Literal, get_args

from .._core.errors import CertificateError, TLSError

__all__ = [
    "TLS_MODES",
    "TLSMode",
    "check_fingerprint",
    "describe_tls",
    "explain_tls_error",
    "make_context",
    "normalize_fingerprint",
]


#: How a client uses TLS: ``starttls`` (required, never plain text), ``implicit``
#: (from the first byte, RFC 8314), ``opportunistic`` (when offered) or ``none``.
TLSMode = Literal["starttls", "implicit", "opportunistic", "none"]
TLS_MODES: tuple[str, ...] = get_args(TLSMode)


def make_context(cafile: str | Path | None = None, *, pinned: bool = False) -> ssl.SSLContext:
    """A client context that verifies the certificate and host name (TLS 1.2+).

    With ``pinned`` (a certificate fingerprint is given) and no ``cafile``,
    the chain is not verified: the fingerprint check after the handshake
    replaces it, as msmtp's ``tls_fingerprint`` does, for self-signed servers.
    """
    ctx = ssl.create_default_context(cafile=str(cafile) if cafile is not None else None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if pinned and cafile is None:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def normalize_fingerprint(text: str) -> str:
    """A SHA-256 fingerprint as 64 lower-case hex digits (colons and case ignored)."""
    hexits = text.replace(":", "").replace(" ", "").lower()
    if len(hexits) != 64 or any(ch not in "0123456789abcdef" for ch in hexits):
        raise ValueError(
            "tls_fingerprint must be a SHA-256 fingerprint: 64 hex digits, colons allowed"
        )
    return hexits


def check_fingerprint(der: bytes | None, expected: str, peer: str) -> None:
    """Raise :class:`CertificateError` unless the certificate has the pinned fingerprint."""
    got = hashlib.sha256(der).hexdigest() if der else "(no certificate)"
    if got != expected:
        pretty = ":".join(got[i : i + 2] for i in range(0, len(got), 2)).upper()
        raise CertificateError(
            f"TLS certificate of {peer} does not match the pinned fingerprint "
            f"(server's SHA-256 is {pretty})",
            step="TLS",
        )


# OpenSSL reasons seen when one side speaks TLS and the other plain text.
_PLAINTEXT_REASONS = (
    "WRONG_VERSION_NUMBER",
    "RECORD_LAYER_FAILURE",
    "PACKET_LENGTH_TOO_LONG",
    "HTTP_REQUEST",
    "UNKNOWN_PROTOCOL",
    "record layer failure",
    "wrong version number",
)


def explain_tls_error(
    exc: BaseException, host: str, port: int, *, implicit: bool, server_hostname: str | None
) -> TLSError:
    """Turn an ``ssl`` error from a handshake into a postwire error with advice."""
    name = server_hostname or host
    if isinstance(exc, ssl.SSLCertVerificationError):
        why = exc.verify_message or str(exc)
        advice = ""
        low = why.lower()
        if "expired" in low:
            advice = "the server's certificate has expired"
        elif "hostname" in low or "ip address mismatch" in low:
            advice = (
                f"the certificate is not valid for {name!r}; connect by the name on the "
                "certificate, or pass server_hostname= with that name"
            )
        elif "self-signed" in low or "unable to get local issuer" in low or "self signed" in low:
            advice = (
                "the certificate is signed by a CA this machine does not trust; pass the CA "
                "with cafile= or an ssl_context that trusts it"
            )
        text = f"TLS certificate of {host}:{port} did not verify: {why}"
        if advice:
            text += f" ({advice})"
        return CertificateError(text, step="TLS")
    reason = getattr(exc, "reason", None) or ""
    text = str(exc)
    if any(r in reason or r in text for r in _PLAINTEXT_REASONS):
        if implicit:
            hint = (
                f"{host}:{port} answered in plain text, not TLS: it probably expects STARTTLS "
                "(ports 587 and 25); use tls='starttls'"
            )
        else:
            hint = f"the TLS handshake with {host}:{port} failed: the server did not speak TLS"
        return TLSError(f"{hint} [{reason or text}]", step="TLS")
    return TLSError(f"TLS handshake with {host}:{port} failed: {text}", step="TLS")


def describe_tls(tls: ssl.SSLSocket | ssl.SSLObject | None) -> dict[str, object] | None:
    """TLS version, cipher and the server certificate (dict and DER) of a connection."""
    if tls is None:
        return None
    cipher = tls.cipher()
    return {
        "version": tls.version(),
        "cipher": cipher[0] if cipher else None,
        "peercert": tls.getpeercert(),
        "peercert_der": tls.getpeercert(binary_form=True),
    }
