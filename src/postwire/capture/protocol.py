"""The SMTP side of the capture server, on aiosmtpd.

:class:`CaptureSMTP` is aiosmtpd's protocol with AUTH PLAIN, LOGIN and
CRAM-MD5 checked against a user/password map and its own "AUTH required"
answer; :class:`CaptureHandler` turns each accepted DATA into a
:class:`~.message.CapturedMessage` and hands it to the server to keep.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from .message import CapturedMessage

__all__ = ["CaptureHandler", "CaptureSMTP"]

log = logging.getLogger("postwire.capture")  # the logger of the whole capture server


class _QuietSession(Session):
    # aiosmtpd 1.4.6 logs a deprecation warning each time it sets login_data (on every
    # successful AUTH); keep the value without the noise.
    @property
    def login_data(self) -> Any:
        return self._login_data

    @login_data.setter
    def login_data(self, value: Any) -> None:
        self._login_data = value


class CaptureSMTP(SMTP):
    """aiosmtpd's SMTP with a password map, CRAM-MD5 and our own "AUTH required" check."""

    def __init__(
        self,
        handler: CaptureHandler,
        *,
        users: Mapping[str, str] | None,
        require_auth: bool,
        **kwargs: Any,
    ) -> None:
        self._users = dict(users) if users is not None else None
        self._require_auth = require_auth
        if users is None:
            kwargs["auth_exclude_mechanism"] = ["PLAIN", "LOGIN", "CRAM-MD5"]
        else:
            kwargs["authenticator"] = self._check_login_password
        super().__init__(handler, **kwargs)

    def _create_session(self) -> Session:
        return _QuietSession(self.loop)

    def _getparams(self, params: Sequence[str]) -> dict[str, str | bool] | None:
        # REQUIRETLS (RFC 8689) is a MAIL parameter without a value, accepted only over
        # TLS (where it is advertised); aiosmtpd refuses parameters it does not know.
        result: dict[str, str | bool] | None = super()._getparams(params)
        if result is not None and self.session is not None and self.session.ssl is not None:
            result.pop("REQUIRETLS", None)
        return result

    def _password_of(self, user: bytes) -> bytes | None:
        if self._users is None:
            return None
        try:
            password = self._users.get(user.decode("utf-8"))
        except UnicodeDecodeError:
            return None
        return None if password is None else password.encode("utf-8")

    def _check_login_password(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        # Used by aiosmtpd's built-in PLAIN (RFC 4616) and LOGIN mechanisms.
        assert isinstance(data, LoginPassword)
        expected = self._password_of(data.login)
        if expected is not None and hmac.compare_digest(expected, data.password):
            return AuthResult(success=True, auth_data=data.login.decode("utf-8"))
        # handled=False makes smtp_AUTH answer 535 itself.
        return AuthResult(success=False, handled=False)

    async def auth_CRAM__MD5(self, server: SMTP, args: list[str]) -> AuthResult:
        """CRAM-MD5 (RFC 2195); aiosmtpd maps the method name to the mechanism ``CRAM-MD5``."""
        if len(args) > 1:  # RFC 2195 has no initial response
            await self.push("501 5.5.4 CRAM-MD5 takes no initial response")
            return AuthResult(success=False, handled=True)
        challenge = f"<{secrets.randbelow(10**12)}.{int(time.time())}@{self.hostname}>".encode()
        response = await self.challenge_auth(challenge)
        if not isinstance(response, bytes):  # "*" or bad base64: already answered with 501
            return AuthResult(success=False, handled=True)
        user, _, digest = response.rpartition(b" ")
        password = self._password_of(user)
        if password is not None:
            wanted = hmac.new(password, challenge, "md5").hexdigest().encode("ascii")
            if hmac.compare_digest(wanted, digest.lower()):
                return AuthResult(success=True, auth_data=user.decode("utf-8"))
        # Must be handled=False so that 535 is sent; otherwise the client waits forever.
        return AuthResult(success=False, handled=False)

    async def check_auth_needed(self, caller_method: str) -> bool:
        # Done here instead of aiosmtpd's auth_required, which warns whenever TLS is not
        # required for AUTH (normal for a plain-text development server).
        assert self.session is not None
        if self._require_auth and not self.session.authenticated:
            await self.push("530 5.7.0 Authentication required")
            return True
        return False


class CaptureHandler:
    """aiosmtpd handler hooks; runs in the server's event-loop thread."""

    def __init__(self, record: Callable[[CapturedMessage], None], *, advertise_auth: bool) -> None:
        self._record = record
        self._advertise_auth = advertise_auth

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname  # the 5-argument hook must set it (aiosmtpd docs)
        if not self._advertise_auth:
            responses = [line for line in responses if not line.startswith("250-AUTH")]
        if session.ssl is not None:
            # RFC 8689 §4.1: REQUIRETLS is offered only in a TLS session.
            responses = [*responses[:-1], "250-REQUIRETLS", responses[-1]]
        return responses

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert envelope.original_content is not None and envelope.mail_from is not None
        transport = server.transport
        peer = session.peer
        message = CapturedMessage(
            mail_from="" if envelope.mail_from == "<>" else envelope.mail_from,
            rcpt_tos=list(envelope.rcpt_tos),
            data=bytes(envelope.original_content),
            peer=(str(peer[0]), int(peer[1])) if isinstance(peer, tuple) else None,
            tls=transport is not None and transport.get_extra_info("ssl_object") is not None,
            auth_user=session.auth_data if isinstance(session.auth_data, str) else None,
            received_at=datetime.now(timezone.utc),
            mail_options=list(envelope.mail_options),
            rcpt_options=list(envelope.rcpt_options),
        )
        try:
            self._record(message)
        except OSError:
            log.exception("could not store a message from %s", message.mail_from)
            return "451 4.3.0 Could not store the message"
        return "250 2.0.0 OK: message captured"
