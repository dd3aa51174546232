"""SCRAM-SHA-256 (RFC 5802, RFC 7677): a password mechanism that also authenticates the server."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets

from ..errors import SASLError
from .mechanism import Mechanism
from .saslprep import prepared
from .text import printable, required_text, saslname, utf8

__all__ = ["MAX_SCRAM_ITERATIONS", "ScramSHA256"]

#: A server-chosen SCRAM iteration count is CPU time the client spends before
#: the server has proved anything; 10 million is ~2 s of PBKDF2 on a laptop
#: and far above any deployed setting (RFC 7677 §4 asks for at least 4096).
MAX_SCRAM_ITERATIONS = 10_000_000

# RFC 5802 §7: printable = %x21-2B / %x2D-7E (printable ASCII except ",").
_NONCE = re.compile(r"[\x21-\x2b\x2d-\x7e]+")
_ITERATIONS = re.compile(r"[1-9][0-9]{0,9}")


def _scram_attributes(message: bytes) -> list[tuple[str, str]]:
    """Split a SCRAM server message into its ``a=value`` attributes."""
    try:
        text = message.decode("utf-8")
    except UnicodeDecodeError:
        raise SASLError("SCRAM: server message is not UTF-8") from None
    attrs = []
    for part in text.split(","):
        if len(part) < 2 or part[1] != "=" or not ("a" <= part[0].lower() <= "z"):
            raise SASLError("SCRAM: malformed server message")
        attrs.append((part[0], part[2:]))
    return attrs


def _decode_base64(value: str, what: str) -> bytes:
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raise SASLError(f"SCRAM: the {what} is not valid base64") from None


class ScramSHA256(Mechanism):
    """SCRAM-SHA-256 (RFC 5802, RFC 7677) without channel binding (GS2 flag "n").

    The user name and password go through SASLprep (see :func:`saslprep`).
    The server's signature is checked; :meth:`verify_success` raises if the
    exchange ended without that proof.  ``nonce`` exists for test vectors.
    """

    name = "SCRAM-SHA-256"
    _GS2_HEADER = b"n,,"

    def __init__(self, username: str, password: str, nonce: str | None = None) -> None:
        super().__init__()
        user = prepared(required_text(username, "username"), "username")
        password = prepared(required_text(password, "password"), "password")
        self._password = utf8(password, "password")
        if nonce is None:
            nonce = secrets.token_urlsafe(24)  # 32 characters from [A-Za-z0-9_-]
        elif not isinstance(nonce, str) or not _NONCE.fullmatch(nonce):
            raise ValueError("the SCRAM nonce must be printable ASCII without ','")
        self._nonce = nonce
        self._client_first_bare = utf8(f"n={saslname(user)},r={nonce}", "username")
        self._server_signature: bytes | None = None  # set once server-first is answered
        self._verified = False

    def initial_response(self) -> bytes | None:
        return self._GS2_HEADER + self._client_first_bare

    def _step(self, challenge: bytes) -> bytes:
        if self._verified:
            raise SASLError("SCRAM: unexpected challenge after the server's proof")
        if self._server_signature is not None:
            self._check_server_final(challenge, self._server_signature)
            return b""  # RFC 4954 §4: no data with success, so answer the 334 empty
        if not challenge:
            return self._GS2_HEADER + self._client_first_bare  # the initial response was not sent
        return self._client_final(challenge)

    def _client_final(self, server_first: bytes) -> bytes:
        attrs = _scram_attributes(server_first)
        if attrs[0][0] == "m":
            raise SASLError("SCRAM: the server requires an unsupported extension")
        if [key for key, _ in attrs[:3]] != ["r", "s", "i"]:
            raise SASLError("SCRAM: malformed server-first-message")
        nonce, salt_text, count = (value for _, value in attrs[:3])
        # RFC 5802 §5.1: the server's nonce extends ours with its own part.
        if not (_NONCE.fullmatch(nonce) and nonce.startswith(self._nonce) and nonce != self._nonce):
            raise SASLError("SCRAM: the server nonce does not extend the client nonce")
        salt = _decode_base64(salt_text, "salt")
        if not _ITERATIONS.fullmatch(count) or int(count) > MAX_SCRAM_ITERATIONS:
            raise SASLError("SCRAM: the iteration count is invalid or too large")

        # RFC 5802 §3.
        salted = hashlib.pbkdf2_hmac("sha256", self._password, salt, int(count))
        self._password = b""  # not needed any more
        client_key = hmac.digest(salted, b"Client Key", "sha256")
        stored_key = hashlib.sha256(client_key).digest()
        without_proof = b"c=" + base64.b64encode(self._GS2_HEADER) + b",r=" + nonce.encode()
        auth_message = self._client_first_bare + b"," + server_first + b"," + without_proof
        signature = hmac.digest(stored_key, auth_message, "sha256")
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        server_key = hmac.digest(salted, b"Server Key", "sha256")
        self._server_signature = hmac.digest(server_key, auth_message, "sha256")
        return without_proof + b",p=" + base64.b64encode(proof)

    def _check_server_final(self, server_final: bytes, expected: bytes) -> None:
        key, value = _scram_attributes(server_final)[0]
        if key == "e":
            raise SASLError(f"SCRAM: the server reported an error: {printable(value)}")
        if key != "v":
            raise SASLError("SCRAM: malformed server-final-message")
        if not hmac.compare_digest(_decode_base64(value, "server signature"), expected):
            raise SASLError("SCRAM: server signature mismatch (the server is not who it claims)")
        self._verified = True

    def verify_success(self, data: bytes | None) -> None:
        """Raise :class:`SASLError` unless the server's signature was verified.

        SMTP has no "additional data with success" (RFC 4954 §4), so the
        proof normally came in a last 334.  In case a server puts it in the
        235 text instead, ``data`` is checked too, raw or base64.
        """
        if self._verified:
            return
        if data and self._server_signature is not None:
            candidate = data.strip()
            if not candidate.startswith((b"v=", b"e=")):
                try:
                    candidate = base64.b64decode(candidate, validate=True)
                except binascii.Error:
                    candidate = b""
            if candidate.startswith((b"v=", b"e=")):
                self._check_server_final(candidate, self._server_signature)
                return
        raise SASLError("SCRAM: the server signature was never verified")
