"""The password mechanisms that send or hash the password as given: PLAIN, LOGIN, CRAM-MD5."""

from __future__ import annotations

import hmac

from ..errors import SASLError
from .mechanism import Mechanism
from .text import required_text, utf8

__all__ = ["CramMD5", "Login", "Plain"]


class Plain(Mechanism):
    """PLAIN (RFC 4616): ``authzid NUL authcid NUL passwd`` in UTF-8."""

    name = "PLAIN"

    def __init__(self, username: str, password: str, authzid: str = "") -> None:
        super().__init__()
        parts = (
            required_text(authzid, "authorization identity", allow_empty=True),
            required_text(username, "username"),
            required_text(password, "password"),
        )
        if any("\0" in part for part in parts):
            # RFC 4616 §2: NUL is the separator and may not appear inside a field.
            raise ValueError("PLAIN credentials must not contain NUL characters")
        encoded = [utf8(part, "credentials") for part in parts]
        self._message = b"\0".join(encoded)

    def initial_response(self) -> bytes | None:
        return self._message

    def _step(self, challenge: bytes) -> bytes:
        # Only reached when the initial response was not sent: the server asks
        # for it with an empty challenge (RFC 4954 §4).  Answer that once.
        if self._challenges > 1:
            raise SASLError("PLAIN: unexpected further challenge")
        return self._message


class Login(Mechanism):
    """LOGIN (draft-murchison-sasl-login): user name, then password.

    Challenges are answered by their order, not their text, since servers
    word them differently ("Username:", "User Name\\0" from aiosmtpd...).
    """

    name = "LOGIN"

    def __init__(self, username: str, password: str) -> None:
        super().__init__()
        self._answers = (
            utf8(required_text(username, "username"), "username"),
            utf8(required_text(password, "password"), "password"),
        )

    def _step(self, challenge: bytes) -> bytes:
        if self._challenges > len(self._answers):
            raise SASLError("LOGIN: unexpected third challenge")
        return self._answers[self._challenges - 1]


class CramMD5(Mechanism):
    """CRAM-MD5 (RFC 2195): ``user SP hex(HMAC-MD5(password, challenge))``."""

    name = "CRAM-MD5"

    def __init__(self, username: str, password: str) -> None:
        super().__init__()
        self._user = utf8(required_text(username, "username"), "username")
        self._key = utf8(required_text(password, "password"), "password")

    def _step(self, challenge: bytes) -> bytes:
        if self._challenges > 1:
            raise SASLError("CRAM-MD5: unexpected further challenge")
        if not challenge:
            raise SASLError("CRAM-MD5: the server sent an empty challenge")
        digest = hmac.new(self._key, challenge, "md5").hexdigest()
        return self._user + b" " + digest.encode("ascii")
