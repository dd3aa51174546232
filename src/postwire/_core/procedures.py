"""Multi-step SMTP flows as generator procedures.

A procedure is a generator that yields *effects* (:class:`Send`,
:class:`Recv`, :class:`UpgradeTLS`, :class:`SendBody`) and receives, for a
:class:`Recv`, the paired :class:`Reply`.  It decides everything the protocol
decides; a driver (sync or asyncio) only performs the effects.  So the same
logic, tested once, runs under both clients.

Drivers buffer :class:`Send` bytes and write them when a :class:`Recv` (or
another effect) comes, which is what makes a pipelined group (RFC 2920) one
write: a procedure that yields several sends before a receive pipelines them.
"""

from __future__ import annotations

import enum
from collections.abc import Generator
from dataclasses import dataclass

from . import commands as c
from .body import BdatBody, BodyEncoder, DataBody
from .connection import SMTPConnection, after_end_of_data
from .envelope import Envelope, SendResult
from .errors import (
    AuthenticationError,
    DataError,
    ExtensionNotSupported,
    GreetingError,
    HeloError,
    MessageTooLarge,
    PlaintextAuthRefused,
    ProtocolError,
    RecipientsRefused,
    SASLError,
    SenderRefused,
    ServerDisconnected,
    SMTPError,
    StartTLSError,
    TLSRequired,
    describe,
)
from .reply import Reply
from .sasl import Mechanism, decode_challenge, encode_payload, encode_response
from .state import SEND, State

__all__ = [
    "Effect",
    "Fill",
    "Recv",
    "Send",
    "SendBody",
    "UpgradeTLS",
    "Wait",
    "authenticate",
    "check_credentials_protected",
    "greet",
    "hello",
    "quit",
    "reset",
    "starttls",
    "transaction",
]


class Wait(enum.Enum):
    """Which timeout applies to a :class:`Recv`."""

    GREETING = "greeting"
    COMMAND = "command"
    #: The reply to the end of the data, which may take long for big messages
    #: (RFC 5321 §4.5.3.2.6 suggests 10 minutes).
    DATA_END = "data end"


@dataclass(frozen=True, slots=True)
class Send:
    """Write ``data``; ``secret`` marks credentials that logs and transcripts must hide."""

    data: bytes
    secret: bool = False


@dataclass(frozen=True, slots=True)
class Recv:
    wait: Wait = Wait.COMMAND


@dataclass(frozen=True, slots=True)
class Fill:
    """Wait until ``count`` replies have arrived, or no more can (error, closed).

    The procedure then takes them with ``conn.next_reply()``, which raises
    the right error if one is missing.  One Fill for a pipelined group costs
    one pass through the driver instead of one per reply.
    """

    count: int
    wait: Wait = Wait.COMMAND


@dataclass(frozen=True, slots=True)
class UpgradeTLS:
    """Do the TLS handshake on the current connection now (after STARTTLS's 220)."""


@dataclass(frozen=True, slots=True)
class SendBody:
    """Stream the message content through ``encoder``, then call its ``finish``.

    The driver feeds every chunk of the message source to ``encoder.feed`` and
    writes the result, runs the end-of-message hook, and only then writes
    ``encoder.finish()``: until then the message cannot be delivered.
    """

    encoder: BodyEncoder
    #: The message content, opaque to the core: bytes, a file, an (async) iterable.
    content: object = None


Effect = Send | Recv | Fill | UpgradeTLS | SendBody

# Replies to EHLO that mean "I do not know EHLO": fall back to HELO
# (RFC 5321 §3.2; 500/502 unknown command, 501/504 for picky old servers).
_EHLO_FALLBACK = frozenset({500, 501, 502, 504})


def _recv(wait: Wait = Wait.COMMAND) -> Generator[Effect, Reply | None, Reply]:
    reply = yield Recv(wait)
    if reply is None:  # pragma: no cover - a driver bug
        raise RuntimeError("driver resumed a Recv without a reply")
    return reply


def _closing(step: str, reply: Reply) -> ServerDisconnected:
    return ServerDisconnected(
        describe(step, reply) + " (server closing connection)", reply=reply, step=step
    )


def greet(conn: SMTPConnection, local_hostname: str) -> Generator[Effect, Reply | None, Reply]:
    """Read the 220 greeting, then EHLO (or HELO). Returns the EHLO/HELO reply."""
    reply = yield from _recv(Wait.GREETING)
    if reply.code != 220:
        # RFC 5321 §3.1: 554 instead of 220 means "no service here".
        raise GreetingError("greeting", reply)
    return (yield from hello(conn, local_hostname))


def hello(conn: SMTPConnection, local_hostname: str) -> Generator[Effect, Reply | None, Reply]:
    """EHLO, falling back to HELO when the server does not know EHLO."""
    yield Send(conn.send(c.Ehlo(local_hostname)))
    reply = yield from _recv()
    if reply.is_positive:
        return reply
    if reply.code == 421:
        raise _closing("EHLO", reply)
    if reply.code not in _EHLO_FALLBACK:
        raise HeloError("EHLO", reply)
    yield Send(conn.send(c.Helo(local_hostname)))
    helo = yield from _recv()
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
            "or tls='opportunistic'/'none' only if plain text is really acceptable.",
            step="STARTTLS",
        )
    yield Send(conn.send(c.StartTLS()))
    reply = yield from _recv()
    if reply.code != 220:
        if reply.code == 421:
            raise _closing("STARTTLS", reply)
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
    reply = yield from _recv()
    while reply.code == 334:
        try:
            answer = mechanism.respond(decode_challenge(reply.text))
        except SASLError as exc:
            # RFC 4954 §4: "*" cancels the exchange; the server answers 501.
            yield Send(conn.send(c.AuthResponse("*")))
            cancel = yield from _recv()
            raise AuthenticationError(
                "AUTH", cancel, f"AUTH {mechanism.name} failed: {exc}; server replied {cancel}"
            ) from None
        response = c.AuthResponse(encode_response(answer))
        yield Send(conn.send(response), secret=True)
        reply = yield from _recv()
    if reply.code == 421:
        raise _closing(f"AUTH {mechanism.name}", reply)
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
    return (yield from _recv())


def quit(conn: SMTPConnection) -> Generator[Effect, Reply | None, Reply | None]:
    """QUIT, if the session is open. The caller closes the connection after."""
    if c.Quit not in _sendable(conn):
        return None
    yield Send(conn.send(c.Quit()))
    return (yield from _recv())


def _sendable(conn: SMTPConnection) -> frozenset[type[c.Command]]:
    return frozenset(SEND[conn.state])


def mail_params(conn: SMTPConnection, envelope: Envelope) -> c.Params:
    """MAIL parameters for ``envelope`` given what the server offers.

    Raises before anything is sent when the message needs an extension the
    server lacks, or is larger than its SIZE limit.
    """
    ext = conn.extensions
    params: list[tuple[str, str | None]] = []
    limit = ext.max_size
    if envelope.size is not None and limit is not None:
        if limit and envelope.size > limit:
            raise MessageTooLarge(
                f"message is {envelope.size} bytes; the server accepts at most {limit} (SIZE)",
                step="MAIL",
            )
        params.append(("SIZE", str(envelope.size)))
    if envelope.binary:
        # RFC 3030 §3: binary content needs BINARYMIME, which needs BDAT.
        if not (ext.binarymime and ext.chunking):
            raise ExtensionNotSupported(
                "the message is binary (it has NUL octets, or BODY=BINARYMIME was asked for) "
                "but the server does not offer BINARYMIME with CHUNKING",
                step="MAIL",
            )
        params.append(("BODY", "BINARYMIME"))
    elif envelope.eight_bit is None:
        if ext.eightbitmime:
            params.append(("BODY", "8BITMIME"))
    elif envelope.eight_bit:
        if not ext.eightbitmime:
            raise ExtensionNotSupported(
                "the message has 8-bit content but the server does not offer 8BITMIME "
                "(encode it as 7-bit, e.g. with quoted-printable or base64)",
                step="MAIL",
            )
        params.append(("BODY", "8BITMIME"))
    if envelope.smtputf8:
        if not ext.smtputf8:
            raise ExtensionNotSupported(
                "the addresses or headers are UTF-8 but the server does not offer SMTPUTF8",
                step="MAIL",
            )
        params.append(("SMTPUTF8", None))
    names = {k.upper() for k, _ in params}
    params.extend(p for p in envelope.mail_params if p[0].upper() not in names)
    return tuple(params)


def check_binary(envelope: Envelope, bdat: bool) -> None:
    """Binary content can only go by BDAT (RFC 3030 §3)."""
    if envelope.binary and not bdat:
        raise ExtensionNotSupported(
            "a binary message needs BDAT, and chunking was turned off", step="MAIL"
        )


def transaction(
    conn: SMTPConnection,
    envelope: Envelope,
    content: object = None,
    *,
    pipelining: bool | None = None,
    chunking: bool | None = None,
    require_all: bool = False,
) -> Generator[Effect, Reply | None, SendResult]:
    """One mail transaction: MAIL, RCPT..., DATA or BDAT, content, end of data.

    With PIPELINING (RFC 2920) MAIL, every RCPT and DATA go out in one
    write; with CHUNKING too (RFC 3030) the content joins them, so the
    whole message costs one round trip.  Succeeds when the end of data is
    answered 2xx and at least one recipient was accepted; refused
    recipients are reported in the result.  With ``require_all`` one
    refused recipient abandons the message (Racket's behaviour): then the
    content is only sent once every RCPT has been answered.
    """
    ext = conn.extensions
    pipe = ext.pipelining if pipelining is None else (pipelining and ext.pipelining)
    params = mail_params(conn, envelope)
    bdat = ext.chunking if chunking is None else (chunking and ext.chunking)
    check_binary(envelope, bdat)

    yield Send(conn.send(c.mail(envelope.sender, params)))
    mail_reply: Reply | None = None
    if not pipe:
        mail_reply = yield from _recv()
        if not mail_reply.is_positive:
            yield from _fail_reset(conn, mail_reply)
            raise SenderRefused("MAIL", mail_reply)
        mail_reply = None  # from here on, mail_reply is a *pipelined* MAIL reply

    accepted: list[str] = []
    refused: dict[str, Reply] = {}
    for rcpt in envelope.recipients:
        yield Send(conn.send(c.rcpt(rcpt, envelope.rcpt_params)))
        if not pipe:
            r = yield from _recv()
            _record(rcpt, r, accepted, refused)
            if r.code == 421:
                raise _closing("RCPT", r)
            if refused and require_all:
                break

    if require_all and pipe:
        # Collect MAIL and RCPT replies before any content is committed.
        mail_reply = yield from _recv()
        for rcpt in envelope.recipients:
            _record(rcpt, (yield from _recv()), accepted, refused)
        if not mail_reply.is_positive:
            yield from _fail_reset(conn, mail_reply)
            raise SenderRefused("MAIL", mail_reply)
        mail_reply = None
        pipe = False

    if (not pipe and not accepted) or (require_all and refused):
        yield from reset(conn)
        raise RecipientsRefused(refused)

    if bdat:
        return (yield from _send_bdat(conn, envelope, content, pipe, accepted, refused))

    yield Send(conn.send(c.Data()))
    if pipe:
        mail_reply = yield from _recv()
        for rcpt in envelope.recipients:
            r = yield from _recv()
            _record(rcpt, r, accepted, refused)
    data_reply = yield from _recv()
    if data_reply.code == 421:
        raise _closing("DATA", data_reply)
    if data_reply.is_positive:
        raise ProtocolError(
            f"DATA: the server answered {data_reply} (expected 354): replies are out of step",
            reply=data_reply,
            step="DATA",
        )
    if data_reply.code != 354:
        yield from reset(conn)
        if mail_reply is not None and not mail_reply.is_positive:
            raise SenderRefused("MAIL", mail_reply)
        if not accepted:
            raise RecipientsRefused(refused)
        raise DataError("DATA", data_reply)
    if not accepted or (mail_reply is not None and not mail_reply.is_positive):
        # RFC 2920 §3.1: DATA was accepted though nothing else was; end it
        # with an empty message that the server must refuse.
        yield Send(conn.end_data())
        yield from _recv(Wait.DATA_END)
        if mail_reply is not None and not mail_reply.is_positive:
            raise SenderRefused("MAIL", mail_reply)
        raise RecipientsRefused(refused)
    body = DataBody(conn)
    yield SendBody(body, content)
    try:
        final = yield from _recv(Wait.DATA_END)
    except (SMTPError, OSError) as exc:
        raise after_end_of_data(exc) from exc
    if not final.is_positive:
        if final.code == 421:
            raise _closing("end of data", final)
        raise DataError("end of data", final)
    return SendResult(accepted, refused, final)


def _send_bdat(
    conn: SMTPConnection,
    envelope: Envelope,
    content: object,
    pipe: bool,
    accepted: list[str],
    refused: dict[str, Reply],
) -> Generator[Effect, Reply | None, SendResult]:
    body = BdatBody(conn, normalize=not envelope.binary)
    mail_reply: Reply | None = None
    # RFC 3030 §4.2 with RFC 2920: MAIL, RCPT and the chunks in one go.
    yield SendBody(body, content)
    failure: Reply | None = None
    final: Reply | None = None
    try:
        if pipe:
            mail_reply = yield from _recv()
            for rcpt in envelope.recipients:
                r = yield from _recv()
                _record(rcpt, r, accepted, refused)
        for i in range(body.replies):
            last = i == body.replies - 1
            r = yield from _recv(Wait.DATA_END if last else Wait.COMMAND)
            if r.code == 421:
                raise _closing("BDAT", r)
            if not r.is_positive and failure is None:
                failure = r
            final = r
    except (SMTPError, OSError) as exc:
        raise after_end_of_data(exc) from exc
    assert final is not None
    if failure is not None or (mail_reply is not None and not mail_reply.is_positive):
        yield from reset(conn)
        if mail_reply is not None and not mail_reply.is_positive:
            raise SenderRefused("MAIL", mail_reply)
        if not accepted:
            raise RecipientsRefused(refused)
        assert failure is not None
        raise DataError("BDAT", failure)
    if not accepted:  # pragma: no cover - a server that took data for no recipient
        raise RecipientsRefused(refused)
    return SendResult(accepted, refused, final)


def _record(rcpt: str, reply: Reply, accepted: list[str], refused: dict[str, Reply]) -> None:
    # RFC 5321 §3.3 / Racket difference 4: any 2xx (251, 252 too) accepts.
    if reply.is_positive:
        accepted.append(rcpt)
    else:
        refused[rcpt] = reply


def _fail_reset(conn: SMTPConnection, reply: Reply) -> Generator[Effect, Reply | None, None]:
    if reply.code == 421:
        raise _closing(reply.command or "MAIL", reply)
    if conn.state is not State.CLOSED:
        yield from reset(conn)
