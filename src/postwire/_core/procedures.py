"""The session's steps as generator procedures: greeting, EHLO, STARTTLS, AUTH, RSET, QUIT.

Each yields effects (:mod:`postwire._core.effects`) and decides everything
the protocol decides; the mail transaction itself is in
:mod:`postwire._core.transaction`, many pipelined messages in
:mod:`postwire._core.batch`.
"""

from __future__ import annotations

from collections.abc import Generator

from . import commands as c
from .connection import SMTPConnection
from .effects import Effect, Send, UpgradeTLS, Wait, recv
from .errors import (
    AuthenticationError,
    GreetingError,
    HeloError,
    PlaintextAuthRefused,
    ProtocolError,
    SASLError,
    StartTLSError,
    TLSRequired,
    describe,
)
from .outcomes import closing
from .reply import Reply
from .sasl import Mechanism, decode_challenge, encode_payload, encode_response
from .state import SEND

__all__ = [
    "authenticate",
    "check_credentials_protected",
    "greet",
    "hello",
    "noop",
    "quit",
    "reset",
    "starttls",
]

# Replies to EHLO that mean "I do not know EHLO": fall back to HELO
# (RFC 5321 §3.2; 500/502 unknown command, 501/504 for picky old servers).
_EHLO_FALLBACK = frozenset({500, 501, 502, 504})


def greet(conn: SMTPConnection, local_hostname: str) -> Generator[Effect, Reply | None, Reply]:
    """Read the 220 greeting, then EHLO (or HELO). Returns the EHLO/HELO reply."""
    reply = yield from recv(Wait.GREETING)
    conn.greeting = reply
    if reply.code != 220:
        # RFC 5321 §3.1: 554 instead of 220 means "no service here".
        raise GreetingError("greeting", reply)
    return (yield from hello(conn, local_hostname))


def hello(conn: SMTPConnection, local_hostname: str) -> Generator[Effect, Reply | None, Reply]:
    """EHLO, falling back to HELO when the server does not know EHLO; LHLO for LMTP."""
    if conn.lmtp:
        # RFC 2033 §4.1: LHLO replaces both, and has no fallback.
        yield Send(conn.send(c.Lhlo(local_hostname)))
        reply = yield from recv()
        if reply.code == 421:
            raise closing("LHLO", reply)
        if not reply.is_positive:
            raise HeloError("LHLO", reply)
        return reply
    yield Send(conn.send(c.Ehlo(local_hostname)))
    reply = yield from recv()
    if reply.is_positive:
        return reply
    if reply.code == 421:
        raise closing("EHLO", reply)
    if reply.code not in _EHLO_FALLBACK:
        raise HeloError("EHLO", reply)
    yield Send(conn.send(c.Helo(local_hostname)))
    helo = yield from recv()
    if not helo.is_positive:
        raise HeloError("HELO", helo, f"{describe('EHLO', reply)}; then {describe('HELO', helo)}")
    return helo


def starttls(conn: SMTPConnection, local_hostname: str) -> Generator[Effect, Reply | None, Reply]:
    """STARTTLS (RFC 3207), the handshake, and a fresh EHLO. Returns the new EHLO reply."""
    if not conn.extensions.starttls:
        raise TLSRequired(
            "TLS is required but the server does not offer STARTTLS "
            "(it may be misconfigured, or someone may be stripping STARTTLS); "
            "refusing to continue in plain text. Use tls='implicit' for a port like 465, "
            "or tls='opportunistic' or tls='none' only if plain text is really acceptable.",
            step="STARTTLS",
        )
    yield Send(conn.send(c.StartTLS()))
    reply = yield from recv()
    if reply.code != 220:
        if reply.code == 421:
            raise closing("STARTTLS", reply)
        raise StartTLSError("STARTTLS", reply)
    conn.start_tls()  # refuses bytes injected before the handshake
    yield UpgradeTLS()
    return (yield from hello(conn, local_hostname))


def check_credentials_protected(conn: SMTPConnection, *, allowed: bool, advice: str) -> None:
    """Refuse to send credentials over a connection without TLS unless ``allowed``.

    RFC 4954 §4 warns that mechanisms such as PLAIN expose the password to
    anyone on the path; RFC 8314 §3 asks submission clients to use TLS.
    Every path that logs in asks this first; ``advice`` says how to fix it there.
    """
    if not conn.tls_active and not allowed:
        raise PlaintextAuthRefused(
            f"refusing to send credentials over an unencrypted connection; {advice}",
            step="AUTH",
        )


def authenticate(
    conn: SMTPConnection, mechanism: Mechanism
) -> Generator[Effect, Reply | None, Reply]:
    """Run a SASL exchange (RFC 4954). Returns the 235 reply."""
    initial = mechanism.initial_response()
    auth = c.Auth(mechanism.name, None if initial is None else encode_payload(initial))
    yield Send(conn.send(auth), secret=initial is not None)
    reply = yield from recv()
    while reply.code == 334:
        try:
            answer = mechanism.respond(decode_challenge(reply.text))
        except SASLError as exc:
            # RFC 4954 §4: "*" cancels the exchange; the server answers 501.
            yield Send(conn.send(c.AuthResponse("*")))
            cancel = yield from recv()
            raise AuthenticationError(
                "AUTH", cancel, f"AUTH {mechanism.name} failed: {exc}; server replied {cancel}"
            ) from None
        response = c.AuthResponse(encode_response(answer))
        yield Send(conn.send(response), secret=True)
        reply = yield from recv()
    if reply.code == 421:
        raise closing(f"AUTH {mechanism.name}", reply)
    if reply.code != 235:
        message = describe(f"AUTH {mechanism.name}", reply)
        details = getattr(mechanism, "error_details", None)
        if details:
            message += f" (server said: {details})"
        raise AuthenticationError("AUTH", reply, message)
    try:
        mechanism.verify_success(None)
    except SASLError as exc:
        raise ProtocolError(f"AUTH {mechanism.name}: {exc}", reply=reply, step="AUTH") from None
    return reply


def reset(conn: SMTPConnection) -> Generator[Effect, Reply | None, Reply | None]:
    """RSET after a failed transaction, when the session still allows it."""
    if c.Rset not in _sendable(conn):
        return None
    yield Send(conn.send(c.Rset()))
    return (yield from recv())


def quit(conn: SMTPConnection) -> Generator[Effect, Reply | None, Reply | None]:
    """QUIT, if the session is open. The caller closes the connection after."""
    if c.Quit not in _sendable(conn):
        return None
    yield Send(conn.send(c.Quit()))
    return (yield from recv())


def noop(conn: SMTPConnection) -> Generator[Effect, Reply | None, Reply]:
    """NOOP (RFC 5321 §4.1.1.9): is the session alive?  Returns the reply, whatever it is."""
    yield Send(conn.send(c.Noop()))
    return (yield from recv())


def _sendable(conn: SMTPConnection) -> frozenset[type[c.Command]]:
    return frozenset(SEND[conn.state])
