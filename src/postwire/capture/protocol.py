"""The SMTP side of the capture server, on aiosmtpd.

:class:`CaptureSMTP` is aiosmtpd's protocol with AUTH PLAIN, LOGIN and
CRAM-MD5 checked against a user/password map and its own "AUTH required"
answer, a transcript of each session, and the fault script of its listener;
:class:`CaptureHandler` turns each accepted DATA into a
:class:`~.message.CapturedMessage` and hands it to the server to keep.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from .faults import FaultScript
from .message import CapturedMessage
from .session import SessionLog

__all__ = ["CaptureHandler", "CaptureSMTP"]

_log = logging.getLogger("postwire.capture")  # the logger of the whole capture server

# The common reverse- or forward-path, <dot-atom@domain> (RFC 5321 section 4.1.2 Mailbox with a
# Dot-string local part), read without aiosmtpd's general RFC 5322 parser, which costs more
# than the rest of a transaction; anything else still goes through that parser.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_SIMPLE_PATH = re.compile(
    rf"<({_ATOM}(?:\.{_ATOM})*@[A-Za-z0-9](?:[A-Za-z0-9.-]{{0,251}}[A-Za-z0-9])?)>"
)


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
    """aiosmtpd's SMTP with a password map, CRAM-MD5, our own "AUTH required" check,
    a session transcript and a fault script (``faults`` is asked afresh at each step)."""

    def __init__(
        self,
        handler: CaptureHandler,
        *,
        users: Mapping[str, str] | None,
        require_auth: bool,
        faults: Callable[[], FaultScript] = FaultScript,
        **kwargs: Any,
    ) -> None:
        self._users = dict(users) if users is not None else None
        self._require_auth = require_auth
        self._faults = faults
        self.log = SessionLog()
        self.drop_before_reply = False
        if users is None:
            kwargs["auth_exclude_mechanism"] = ["PLAIN", "LOGIN", "CRAM-MD5"]
        else:
            kwargs["authenticator"] = self._check_login_password
        super().__init__(handler, **kwargs)
        # Every command goes through one table: wrap its entries to write the transcript.
        for name, method in list(self._smtp_methods.items()):
            self._smtp_methods[name] = self._logged(name, method)

    def _logged(self, name: str, method: Callable[[str | None], Any]) -> Callable[..., Any]:
        async def run(arg: str | None) -> None:
            self.log.client(name, arg)
            await method(arg)

        return run

    def _create_session(self) -> Session:
        return _QuietSession(self.loop)

    def _getparams(self, params: Sequence[str]) -> dict[str, str | bool] | None:
        # REQUIRETLS (RFC 8689) is a MAIL parameter without a value, accepted only over
        # TLS (where it is advertised); aiosmtpd refuses parameters it does not know.
        result: dict[str, str | bool] | None = super()._getparams(params)
        if result is not None and self.session is not None and self.session.ssl is not None:
            result.pop("REQUIRETLS", None)
        return result

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        match = _SIMPLE_PATH.match(arg) if arg else None
        rest = arg[match.end() :].lstrip(" \t") if match is not None else ""
        if match is None or rest.startswith("("):  # a comment: the general parser's job
            result: tuple[str | None, str | None] = super()._getaddr(arg)
            return result
        local = match.group(1).rpartition("@")[0]
        if self.local_part_limit and len(local) > self.local_part_limit:
            return None, None
        return match.group(1), rest

    @property
    def faults(self) -> FaultScript:
        """The fault script in force now."""
        return self._faults()

    async def push(self, status: Any) -> None:
        """Send a reply line, noting it in the transcript (or drop the connection instead)."""
        text = status.decode("utf-8", "replace") if isinstance(status, bytes) else str(status)
        if self.drop_before_reply and self.transport is not None:
            self.drop_before_reply = False
            self.log.note("connection dropped instead of the reply (fault script)")
            transport: Any = self.transport
            transport.abort()  # a Transport, not only a BaseTransport: abort() exists
            return
        self.log.server(text)
        await super().push(status)

    async def _handle_client(self) -> None:
        if self.faults.greeting_421 and self.transport is not None:
            # RFC 5321 section 3.1: a server that will not serve answers 421 and closes.
            await super().push(f"421 4.3.2 {self.hostname} not accepting mail (fault script)")
            self.transport.close()
            return
        self.note_tls()  # implicit TLS: the handshake came before the greeting
        await super()._handle_client()

    async def smtp_AUTH(self, arg: str) -> None:
        refusal = self.faults.auth_reply
        assert self.session is not None
        # The fault answers only where a real AUTH would be tried: after EHLO, not yet done.
        if refusal and arg and self.session.extended_smtp and not self.session.authenticated:
            await self.push(refusal)
            return
        await super().smtp_AUTH(arg)

    async def challenge_auth(
        self, challenge: str | bytes, encode_to_b64: bool = True, log_client_response: bool = False
    ) -> Any:
        response = await super().challenge_auth(challenge, encode_to_b64, False)
        self.log.auth_response()
        return response

    def note_tls(self) -> None:
        """Note the TLS handshake in the transcript."""
        facts = tls_facts(self.transport)
        if facts is not None:
            self.log.note(f"TLS started: {facts[0]}, {facts[1]}")

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


def tls_facts(transport: Any) -> tuple[str, str] | None:
    """(version, cipher) of the TLS session on ``transport``, or None without TLS."""
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    if ssl_object is None:
        return None
    cipher = ssl_object.cipher()
    return str(ssl_object.version()), str(cipher[0]) if cipher else "?"


class CaptureHandler:
    """aiosmtpd handler hooks; runs in the server's event-loop thread.

    ``mailbox`` names the listener (None for the server's own port); ``faults`` gives the
    listener's fault script at each step.
    """

    def __init__(
        self,
        record: Callable[[CapturedMessage], None],
        *,
        advertise_auth: bool,
        mailbox: str | None = None,
        faults: Callable[[], FaultScript] = FaultScript,
    ) -> None:
        self._record = record
        self._advertise_auth = advertise_auth
        self._mailbox = mailbox
        self._faults = faults

    def handle_STARTTLS(self, server: SMTP, session: Session, envelope: Envelope) -> bool:
        # aiosmtpd calls this hook without awaiting it, after the handshake.
        if isinstance(server, CaptureSMTP):
            server.note_tls()
        return True

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        refusal = self._faults().recipient_reply(address, len(envelope.rcpt_tos))
        if refusal is not None:
            return refusal
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

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
        facts = tls_facts(transport)
        log = server.log if isinstance(server, CaptureSMTP) else None
        if log is not None:
            log.note(f"{len(envelope.original_content)} bytes of content")
        message = CapturedMessage(
            mail_from="" if envelope.mail_from == "<>" else envelope.mail_from,
            rcpt_tos=list(envelope.rcpt_tos),
            data=bytes(envelope.original_content),
            peer=(str(peer[0]), int(peer[1])) if isinstance(peer, tuple) else None,
            tls=facts is not None,
            auth_user=session.auth_data if isinstance(session.auth_data, str) else None,
            received_at=datetime.now(timezone.utc),
            mail_options=list(envelope.mail_options),
            rcpt_options=list(envelope.rcpt_options),
            helo=session.host_name if isinstance(session.host_name, str) else None,
            tls_version=facts[0] if facts else None,
            tls_cipher=facts[1] if facts else None,
            transcript=log.take() if log is not None else (),
            mailbox=self._mailbox,
        )
        faults = self._faults()
        try:
            self._record(message)
        except OSError:
            _log.exception("could not store a message from %s", message.mail_from)
            return "451 4.3.0 Could not store the message"
        if faults.delay_data_reply:
            await asyncio.sleep(faults.delay_data_reply)
        if faults.drop_after_data and isinstance(server, CaptureSMTP):
            server.drop_before_reply = True
        return "250 2.0.0 OK: message captured"
