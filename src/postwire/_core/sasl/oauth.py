"""The OAuth 2.0 bearer-token mechanisms: XOAUTH2 and OAUTHBEARER (RFC 7628)."""

from __future__ import annotations

import json

from ..errors import SASLError
from .mechanism import Mechanism
from .text import no_controls, required_text, saslname, utf8

__all__ = ["OAuthBearer", "XOAuth2"]


def _json_error(challenge: bytes) -> dict[str, object] | None:
    """The JSON object an OAuth server sends as its error challenge, if it is one."""
    try:
        value = json.loads(challenge.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


class _BearerTokenMechanism(Mechanism):
    """Shared logic: one client-first message, then at most one error challenge."""

    _error_answer: bytes

    def __init__(self) -> None:
        super().__init__()
        self._message = b""
        self._failed = False

    def initial_response(self) -> bytes | None:
        return self._message

    def _step(self, challenge: bytes) -> bytes:
        if self._failed:
            raise SASLError(f"{self.name}: the server kept challenging after its error")
        if not challenge and self._challenges == 1:
            return self._message  # the initial response was not sent
        # A non-empty challenge is the server's JSON error: answer so that the
        # server can end the exchange with its 5xx reply.
        self._failed = True
        self.error_details = _json_error(challenge)
        return self._error_answer


class XOAuth2(_BearerTokenMechanism):
    """Google/Microsoft XOAUTH2: ``user=U ^Aauth=Bearer T ^A^A``.

    After a failed token the server sends a JSON error as a 334 challenge; the
    client answers with an empty line and the server then replies 535.
    """

    name = "XOAUTH2"
    _error_answer = b""

    def __init__(self, username: str, token: str) -> None:
        super().__init__()
        user = no_controls(required_text(username, "username"), "username")
        bearer = no_controls(required_text(token, "OAuth2 token"), "OAuth2 token")
        self._message = (
            b"user="
            + utf8(user, "username")
            + b"\x01auth=Bearer "
            + utf8(bearer, "OAuth2 token")
            + b"\x01\x01"
        )


class OAuthBearer(_BearerTokenMechanism):
    """OAUTHBEARER (RFC 7628 §3.1) with a GS2 header and host/port key-values.

    The error challenge (RFC 7628 §3.2.2) is answered with a single ``^A``.
    """

    name = "OAUTHBEARER"
    _error_answer = b"\x01"

    def __init__(
        self, username: str, token: str, host: str | None = None, port: int | None = None
    ) -> None:
        super().__init__()
        # The authorization identity is optional in RFC 7628; "" leaves it out.
        user = no_controls(required_text(username, "username", allow_empty=True), "username")
        bearer = no_controls(required_text(token, "OAuth2 token"), "OAuth2 token")
        header = f"n,a={saslname(user)}," if user else "n,,"
        fields = []
        if host is not None:
            fields.append("host=" + no_controls(required_text(host, "host"), "host"))
        if port is not None:
            if isinstance(port, bool) or not isinstance(port, int):
                raise TypeError(f"the port must be int, not {type(port).__name__}")
            if not 0 <= port <= 65535:
                raise ValueError("the port must be between 0 and 65535")
            fields.append(f"port={port}")
        fields.append("auth=Bearer " + bearer)
        text = header + "\x01" + "".join(field + "\x01" for field in fields) + "\x01"
        self._message = utf8(text, "OAUTHBEARER credentials")
