"""One mail transaction: MAIL, RCPT..., DATA or BDAT, the content, the end of data.

What the replies decide is in :mod:`postwire._core.outcomes`, shared with
the pipelined batch (:mod:`postwire._core.batch`).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from types import MappingProxyType
from typing import NoReturn

from . import commands as c
from .body import BdatBody, DataBody
from .connection import SMTPConnection
from .effects import Effect, Send, SendBody, Wait, recv
from .envelope import Envelope, SendResult
from .errors import (
    ExtensionNotSupported,
    MessageTooLarge,
    PossiblyDelivered,
    RecipientsRefused,
    SenderRefused,
    SMTPError,
    TLSRequired,
)
from .outcomes import (
    DataVerdict,
    TransactionReplies,
    after_end_of_data,
    before_end_of_data,
    closing,
)
from .procedures import reset
from .reply import Reply
from .state import State

__all__ = ["MAX_UNANSWERED", "check_binary", "mail_params", "transaction"]

#: Commands written at most before their replies are read.  RFC 2920 §3.1 sets
#: no limit, but a server may stop reading while its replies go unread, and
#: then both sides wait for ever (a message to thousands of recipients); msmtp
#: uses the same bound.
MAX_UNANSWERED = 100


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
                "the addresses are UTF-8 but the server does not offer SMTPUTF8", step="MAIL"
            )
        params.append(("SMTPUTF8", None))
    elif envelope.utf8_headers and ext.smtputf8:
        # RFC 6532 §3.2/RFC 6531 §3.4: raw UTF-8 in header fields is an
        # internationalized message, which SMTPUTF8 announces.  A server
        # without SMTPUTF8 still gets it as 8BITMIME content, as before
        # (mailx and sendmail do the same): no error, the receiver decides.
        params.append(("SMTPUTF8", None))
    if envelope.dsn is not None:
        if not ext.dsn:
            # RFC 3461 §4: the parameters may only go to a server that offers DSN;
            # sending the mail without them would silently drop the request.
            raise ExtensionNotSupported(
                "a delivery status notification (DSN, RFC 3461) was asked for but the "
                "server does not offer DSN",
                step="MAIL",
            )
        params.extend(envelope.dsn.mail_params())
    if envelope.requiretls:
        # RFC 8689 §4.1: REQUIRETLS goes only over TLS, to a server that offers it
        # (it is advertised only after STARTTLS).
        if not conn.tls_active:
            raise TLSRequired(
                "REQUIRETLS (RFC 8689) was asked for but this session has no TLS", step="MAIL"
            )
        if not ext.requiretls:
            raise ExtensionNotSupported(
                "REQUIRETLS (RFC 8689) was asked for but the server does not offer it",
                step="MAIL",
            )
        params.append(("REQUIRETLS", None))
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
    # LMTP answers the end of the data once per recipient (RFC 2033 §4.2); that is
    # defined for DATA, so LMTP transactions use DATA.
    bdat = bdat and not conn.lmtp
    check_binary(envelope, bdat)
    replies = TransactionReplies(envelope.recipients)

    yield Send(conn.send(c.mail(envelope.sender, params)))
    if not pipe:
        mail_reply = yield from recv()
        if not mail_reply.is_positive:
            yield from _fail_reset(conn, mail_reply)
            raise SenderRefused("MAIL", mail_reply)

    for sent, rcpt in enumerate(envelope.recipients, 1):
        yield Send(conn.send(c.rcpt(rcpt, envelope.rcpt_params_for(rcpt))))
        if not pipe:
            r = yield from recv()
            replies.take_rcpt(rcpt, r)
            if r.code == 421:
                raise closing("RCPT", r)
            if replies.refused and require_all:
                break
        elif conn.unanswered >= MAX_UNANSWERED:
            yield from take_pipelined(replies, sent)

    if require_all and pipe:
        # Collect MAIL and RCPT replies before any content is committed.
        yield from take_pipelined(replies, len(envelope.recipients))
        if replies.mail_refused:
            assert replies.mail is not None
            yield from _fail_reset(conn, replies.mail)
            raise SenderRefused("MAIL", replies.mail)
        replies.mail = None  # accepted: from here on as in lock-step
        pipe = False

    if (not pipe and not replies.accepted) or (require_all and replies.refused):
        yield from reset(conn)
        raise RecipientsRefused(replies.refused)

    if bdat:
        return (yield from _send_bdat(conn, envelope, content, pipe, replies))

    yield Send(conn.send(c.Data()))
    if pipe:
        yield from take_pipelined(replies, len(envelope.recipients))
    verdict = replies.after_data((yield from recv()))
    if isinstance(verdict, BaseException):
        yield from reset(conn)
        raise verdict
    if verdict is DataVerdict.LONE_DOT:
        # Nothing can be delivered by an empty message: a failure now is no risk.
        yield Send(conn.end_data())
        try:
            final = yield from recv(Wait.DATA_END)
        except (SMTPError, OSError) as exc:
            _raise_converted(exc, before_end_of_data)
    elif conn.lmtp:
        return (yield from _lmtp_data_end(conn, content, replies))
    else:
        yield SendBody(DataBody(conn), content)
        try:
            final = yield from recv(Wait.DATA_END)
        except (SMTPError, OSError) as exc:
            _raise_converted(exc, after_end_of_data)
    outcome = replies.after_end_of_data(final, verdict)
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


def _lmtp_data_end(
    conn: SMTPConnection, content: object, replies: TransactionReplies
) -> Generator[Effect, Reply | None, SendResult]:
    """LMTP: the content, then one reply per accepted recipient (RFC 2033 §4.2)."""
    body = DataBody(conn, replies=len(replies.accepted))
    yield SendBody(body, content)
    finals: list[Reply] = []
    try:
        for _ in range(body.replies):
            finals.append((yield from recv(Wait.DATA_END)))
    except (SMTPError, OSError) as exc:
        if finals:
            # Some recipients already had their message: whatever the cause (a 421
            # included), the others may have too.  What is known is kept.
            error = _possibly_delivered(exc)
            known = replies.after_lmtp_data(finals, partial=True)
            if isinstance(known, SendResult):
                error.delivered = tuple(known.accepted)
            error.refused = MappingProxyType(dict(_refused_of(known)))
            error.unknown = tuple(replies.accepted[len(finals) :])
            raise error from exc
        _raise_converted(exc, after_end_of_data)
    outcome = replies.after_lmtp_data(finals)
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


def _refused_of(known: SendResult | SMTPError) -> Mapping[str, Reply]:
    if isinstance(known, SendResult):
        return known.refused
    return known.refused if isinstance(known, RecipientsRefused) else {}


def _possibly_delivered(exc: BaseException) -> PossiblyDelivered:
    return PossiblyDelivered(
        f"{exc}; this happened after some recipients' LMTP replies, so the message may "
        "have been delivered to the others",
        step="end of data",
    )


def _send_bdat(
    conn: SMTPConnection,
    envelope: Envelope,
    content: object,
    pipe: bool,
    replies: TransactionReplies,
) -> Generator[Effect, Reply | None, SendResult]:
    body = BdatBody(conn, normalize=not envelope.binary)
    # RFC 3030 §4.2 with RFC 2920: MAIL, RCPT and the chunks in one go.
    yield SendBody(body, content)
    chunk_replies: list[Reply] = []
    try:
        if pipe:
            yield from take_pipelined(replies, len(envelope.recipients))
        for i in range(body.replies):
            last = i == body.replies - 1
            r = yield from recv(Wait.DATA_END if last else Wait.COMMAND)
            if r.code == 421:
                raise closing("BDAT", r)
            chunk_replies.append(r)
        # An extra reply that shifted the pairing shows now, before any outcome.
        conn.raise_protocol_error()
    except (SMTPError, OSError) as exc:
        _raise_converted(exc, after_end_of_data)
    outcome = replies.after_bdat(chunk_replies)
    if isinstance(outcome, BaseException):
        yield from reset(conn)
        raise outcome
    return outcome


def take_pipelined(replies: TransactionReplies, upto: int) -> Generator[Effect, Reply | None, None]:
    """Take the pipelined MAIL reply (once) and the RCPT replies up to recipient ``upto``."""
    if replies.mail is None:
        replies.mail = yield from recv()
    for rcpt in replies.recipients[replies.answered : upto]:
        replies.take_rcpt(rcpt, (yield from recv()))


def _raise_converted(
    exc: SMTPError | OSError, convert: Callable[[BaseException], BaseException]
) -> NoReturn:
    """Raise what a failure at the end of data means (the original kept as the cause)."""
    error = convert(exc)
    if error is exc:
        raise exc
    raise error from exc


def _fail_reset(conn: SMTPConnection, reply: Reply) -> Generator[Effect, Reply | None, None]:
    if reply.code == 421:
        raise closing(reply.command or "MAIL", reply)
    if conn.state is not State.CLOSED:
        yield from reset(conn)
