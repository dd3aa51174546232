"""What happened to a message: the outcome rules every send path shares.

A one-message transaction (:func:`~postwire._core.procedures.transaction`), a
pipelined batch (:func:`~postwire._core.batch.send_batch`), the pools and the
lock-step fallback all decide here what the server's replies mean for a
message: delivered (a :class:`SendResult`), refused (the error that says by
whom), not delivered because the connection failed (and so safe to send
elsewhere), or possibly delivered (never to be resent blindly).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from .envelope import SendResult
from .errors import (
    ConnectError,
    DataError,
    ExtensionNotSupported,
    PossiblyDelivered,
    ProtocolError,
    RecipientsRefused,
    SenderRefused,
    ServerDisconnected,
    SMTPError,
    describe,
)
from .message import PreparedMessage
from .reply import Reply

__all__ = [
    "DataVerdict",
    "RecipientOutcome",
    "RecipientVerdict",
    "TransactionReplies",
    "after_end_of_data",
    "before_end_of_data",
    "closing",
    "content_rereadable",
    "may_resend_elsewhere",
    "may_resend_in_lock_step",
    "never_started",
    "not_sent",
    "out_of_step",
    "recipient_outcomes",
    "retry_after",
    "too_many_recipients",
]


def closing(step: str, reply: Reply) -> ServerDisconnected:
    """A 421 reply: the server is closing the transmission channel (RFC 5321 §3.8)."""
    return ServerDisconnected(
        describe(step, reply) + " (server closing connection)", reply=reply, step=step
    )


def out_of_step(reply: Reply) -> ProtocolError:
    """DATA answered 2xx: replies and commands are out of step, nothing can be trusted.

    DATA is answered 354 or an error (RFC 5321 §4.1.1.4); a 2xx means an extra
    reply line came somewhere before it.
    """
    return ProtocolError(
        f"DATA: the server answered {reply} (expected 354): replies are out of step",
        reply=reply,
        step="DATA",
    )


class DataVerdict(enum.Enum):
    """What to send after DATA was answered 354."""

    #: The message content, then the final ".".
    CONTENT = "content"
    #: Only the final ".": DATA was accepted though MAIL or every RCPT was not
    #: (RFC 2920 §3.1), so end it with an empty message the server must refuse.
    LONE_DOT = "lone dot"


@dataclass(slots=True)
class TransactionReplies:
    """The replies to one transaction's MAIL and RCPT commands, and what they decide.

    ``mail`` is None when MAIL was answered in lock-step and accepted (the
    transaction only went on because of that), or not yet paired.
    """

    recipients: Sequence[str]
    mail: Reply | None = None
    accepted: list[str] = field(default_factory=list)
    refused: dict[str, Reply] = field(default_factory=dict)
    #: How many RCPT replies were taken (recipients may repeat: not len(refused)).
    answered: int = 0

    def take_rcpt(self, rcpt: str, reply: Reply) -> None:
        # RFC 5321 §3.3 / Racket difference 4: any 2xx (251, 252 too) accepts.
        self.answered += 1
        if reply.is_positive:
            self.accepted.append(rcpt)
        else:
            self.refused[rcpt] = reply

    @property
    def mail_refused(self) -> bool:
        return self.mail is not None and not self.mail.is_positive

    @property
    def deliverable(self) -> bool:
        """MAIL and at least one RCPT were accepted: the content may go."""
        mail = self.mail
        return (mail is None or mail.is_positive) and bool(self.accepted)

    def refusal(self) -> SMTPError:
        """The error of a transaction whose sender or every recipient was refused."""
        if self.mail_refused:
            assert self.mail is not None
            return SenderRefused("MAIL", self.mail)
        return RecipientsRefused(self.refused)

    def after_data(self, reply: Reply) -> DataVerdict | SMTPError:
        """What the reply to DATA decides: send the content, a lone ".", or fail.

        Raises when the connection cannot go on: a 421, or a 2xx (out of step).
        """
        if reply.code == 421:
            raise closing("DATA", reply)
        if reply.is_positive:
            raise out_of_step(reply)
        deliverable = self.deliverable
        if reply.code == 354:
            return DataVerdict.CONTENT if deliverable else DataVerdict.LONE_DOT
        return DataError("DATA", reply) if deliverable else self.refusal()

    def after_end_of_data(self, final: Reply, verdict: DataVerdict) -> SendResult | SMTPError:
        """What the reply to the final "." decides (RFC 5321 §4.1.1.4).

        Raises for a 421: the server closed and delivered nothing.
        """
        if verdict is DataVerdict.LONE_DOT:
            return self.refusal()
        if final.code == 421:
            raise closing("end of data", final)
        if final.is_positive:
            return SendResult(self.accepted, self.refused, final)
        return DataError("end of data", final)

    def after_lmtp_data(
        self, finals: Sequence[Reply], *, partial: bool = False
    ) -> SendResult | SMTPError:
        """What LMTP's replies after the final "." decide: one per accepted recipient.

        RFC 2033 §4.2: each reply is that recipient's delivery, in the order the
        RCPTs were accepted; the message is sent if any recipient got it.
        ``partial``: ``finals`` are the first replies only (the connection broke).
        """
        delivered: list[str] = []
        refused = dict(self.refused)
        last: Reply | None = None
        for rcpt, reply in zip(self.accepted, finals, strict=not partial):
            if reply.is_positive:
                delivered.append(rcpt)
                last = reply
            else:
                refused[rcpt] = reply
        if last is None:
            return RecipientsRefused(refused, step="end of data")
        return SendResult(delivered, refused, last)

    def after_bdat(self, replies: Sequence[Reply]) -> SendResult | SMTPError:
        """What the replies to a transaction's BDAT commands decide (RFC 3030 §2, §4.2).

        Every chunk is answered; the first failure names the error and the
        last reply is the transaction's.  Raises for a 421.
        """
        failure: Reply | None = None
        for reply in replies:
            if reply.code == 421:
                raise closing("BDAT", reply)
            if failure is None and not reply.is_positive:
                failure = reply
        if not self.deliverable:
            return self.refusal()
        if failure is not None:
            return DataError("BDAT", failure)
        return SendResult(self.accepted, self.refused, replies[-1])


# --- failures of the connection -------------------------------------------------------------


def after_end_of_data(exc: BaseException) -> BaseException:
    """What a failure while waiting for the reply to a sent end of data means.

    The server may have taken the message: report :class:`PossiblyDelivered`
    (wrapping the cause), unless the server had announced with 421 that it
    processed nothing more.
    """
    if isinstance(exc, PossiblyDelivered) or not isinstance(exc, (SMTPError, OSError)):
        return exc
    if isinstance(exc, SMTPError) and exc.reply is not None and exc.reply.code == 421:
        return exc
    step = exc.step if isinstance(exc, SMTPError) else "end of data"
    err = PossiblyDelivered(
        f"{exc}; this happened after the end of the message was sent, so the message "
        "may have been delivered",
        step=step,
    )
    err.__cause__ = exc
    return err


def before_end_of_data(exc: BaseException) -> BaseException:
    """The same failure for a message whose end of data was never sent: not delivered."""
    if isinstance(exc, PossiblyDelivered):
        err = ServerDisconnected(
            f"not delivered: the connection failed before this message's data was sent ({exc})",
            step=exc.step,
        )
        err.__cause__ = exc
        return err
    return exc


def not_sent(exc: BaseException) -> ServerDisconnected:
    """The outcome of a message that was never sent because the connection broke."""
    err = ServerDisconnected(
        f"not sent: the connection broke before this message ({exc})", step="send"
    )
    err.__cause__ = exc
    return err


def never_started(outcome: object) -> bool:
    """Whether an outcome is :func:`not_sent`'s: the message's transaction never began.

    A queue sends such a message again at once, without counting an attempt.
    """
    return (
        isinstance(outcome, ServerDisconnected)
        and not isinstance(outcome, PossiblyDelivered)
        and outcome.step == "send"
    )


# --- may it be sent again? ------------------------------------------------------------------


def may_resend_elsewhere(outcome: object) -> bool:
    """Whether an outcome means "not delivered: the connection failed, try another".

    A dropped connection or a 421 before the end of data: yes.  A possible
    delivery (the connection broke after the end of data): never, or the
    message could arrive twice.  Refusals by reply: no (retrying later is
    the caller's policy).
    """
    if isinstance(outcome, PossiblyDelivered):
        return False
    return isinstance(outcome, (ServerDisconnected, ConnectError))


def content_rereadable(message: object) -> bool:
    """Whether a message's content can be read a second time.

    Bytes and ``EmailMessage`` objects can; a file or an iterator was
    consumed by the first attempt.  ``message`` may be a ``send_many`` item,
    ``(message, sender, recipients)``, or a prepared message.
    """
    if isinstance(message, PreparedMessage):
        return isinstance(message.content, bytes)
    if isinstance(message, tuple) and message:
        message = message[0]
    return isinstance(message, (bytes, bytearray)) or hasattr(message, "as_bytes")


def may_resend_in_lock_step(message: object, outcome: object) -> bool:
    """Whether a message may go again after a server broke pipelining.

    Only when it certainly was not delivered (not sent, or failed by a
    protocol error before its end of data) and its content can be read again.
    """
    if not isinstance(message, PreparedMessage) or not content_rereadable(message):
        return False
    return outcome is None or may_resend_elsewhere(outcome) or isinstance(outcome, ProtocolError)


# --- what an outcome means for each recipient (a queue's view) ------------------------------


class RecipientVerdict(enum.Enum):
    """What one attempt decided for one recipient of a message."""

    #: The server took the message for this recipient (a 2xx to its RCPT and to the end of data).
    DELIVERED = "delivered"
    #: Try again later: a 4xx, or the connection failed before the end of data went out.
    DEFERRED = "deferred"
    #: Never again as is: a 5xx for this recipient, or for the whole message.
    BOUNCED = "bounced"
    #: The end of data went out and no reply came: possibly delivered (RFC 1047).
    UNCERTAIN = "uncertain"


@dataclass(frozen=True, slots=True)
class RecipientOutcome:
    """One recipient's verdict, the reply that decided it (None for a failed connection),
    and a description of the failure when there was no reply."""

    verdict: RecipientVerdict
    reply: Reply | None = None
    error: str = ""
    #: The recipient was refused only because the transaction had too many recipients
    #: (RFC 5321 §4.5.3.1.10): send it again at once, in another transaction.
    too_many: bool = False


#: RFC 3463 §3.6: X.5.3 "Too many recipients".
_TOO_MANY_TEXT = re.compile(r"too\s+many\s+recipients", re.IGNORECASE)


def too_many_recipients(reply: Reply) -> bool:
    """Whether a RCPT reply says only "too many recipients in this transaction".

    RFC 5321 §4.5.3.1.10: the reply is 452 (RFC 3463: enhanced code 4.5.3), and
    clients SHOULD treat a 552 for this reason as temporary too, since RFC 821
    listed the wrong code.  The recipients refused so go in the next transaction.
    """
    if reply.code not in (452, 552):
        return False
    status = reply.enhanced_status
    if status is not None and (status.subject, status.detail) == (5, 3):
        return True
    return bool(_TOO_MANY_TEXT.search(reply.text))


# "try again in 5 minutes", "retry in 300 seconds", "please retry after 60s"...
_RETRY_HINT = re.compile(
    r"(?:try|retry)(?:\s+again)?\s+(?:in|after)\s+(\d{1,6})\s*"
    r"(s|sec|secs|seconds?|m|min|mins|minutes?|h|hours?)\b",
    re.IGNORECASE,
)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600}


def retry_after(reply: Reply | None) -> float | None:
    """The delay a 4xx reply asks for in its text, in seconds, if it names one.

    Greylisting servers say when to come back ("450 4.7.1 Greylisted, please
    try again in 300 seconds"); trying earlier only earns another 4xx.
    """
    if reply is None or not reply.is_transient:
        return None
    match = _RETRY_HINT.search(reply.text)
    if match is None:
        return None
    return float(int(match.group(1)) * _UNIT_SECONDS[match.group(2)[0].lower()])


def _by_reply(reply: Reply) -> RecipientOutcome:
    if reply.is_positive:
        return RecipientOutcome(RecipientVerdict.DELIVERED, reply)
    if reply.is_permanent and not too_many_recipients(reply):
        return RecipientOutcome(RecipientVerdict.BOUNCED, reply)
    # 4xx, and anything that is neither 2xx nor 5xx: not refused for good.
    return RecipientOutcome(RecipientVerdict.DEFERRED, reply, too_many=too_many_recipients(reply))


def recipient_outcomes(recipients: Sequence[str], outcome: object) -> dict[str, RecipientOutcome]:
    """What one transaction's outcome decided for each of its recipients.

    ``outcome`` is a :class:`SendResult` or the error a send returned or raised
    for this message.  Accepted recipients of a delivered message are
    delivered; a recipient refused at RCPT follows its own reply (5xx bounces,
    4xx defers, "too many recipients" defers for the next transaction at once,
    RFC 5321 §4.5.3.1.10); a refused sender, DATA or end of data applies its
    reply to every recipient; a connection that failed before the end of data
    defers them all (nothing was delivered), and one that failed after it
    leaves them all uncertain (:class:`PossiblyDelivered`, RFC 1047).
    """
    if isinstance(outcome, SendResult):
        accepted = RecipientOutcome(RecipientVerdict.DELIVERED, outcome.reply)
        return {
            rcpt: _by_reply(outcome.refused[rcpt]) if rcpt in outcome.refused else accepted
            for rcpt in recipients
        }
    if isinstance(outcome, PossiblyDelivered):
        uncertain = RecipientOutcome(RecipientVerdict.UNCERTAIN, None, str(outcome))
        return dict.fromkeys(recipients, uncertain)
    if isinstance(outcome, RecipientsRefused):
        found = {rcpt: _by_reply(reply) for rcpt, reply in outcome.refused.items()}
        # Every recipient was refused; one not listed (a policy refusal) waits for a retry.
        missing = RecipientOutcome(RecipientVerdict.DEFERRED, outcome.reply, str(outcome))
        return {rcpt: found.get(rcpt, missing) for rcpt in recipients}
    if isinstance(outcome, (SenderRefused, DataError)):
        # The sender, DATA or the end of data was refused: the reply decides for everyone.
        decided = _by_reply(outcome.reply)
        decided = RecipientOutcome(decided.verdict, outcome.reply, str(outcome))
        return dict.fromkeys(recipients, decided)
    if (isinstance(outcome, ExtensionNotSupported) and outcome.step == "MAIL") or isinstance(
        outcome, (ValueError, TypeError)
    ):
        # This message cannot go through this server as it is (too large for its SIZE, needs
        # SMTPUTF8 or 8BITMIME it lacks; RFC 3463 5.3.4, 5.6.7), or cannot be sent at all.
        bounced = RecipientOutcome(RecipientVerdict.BOUNCED, None, str(outcome))
        return dict.fromkeys(recipients, bounced)
    # A dropped connection, a 421, a timeout before the end of data, a local cancel, a
    # refused greeting, EHLO, TLS or AUTH (the session, not this message), a connection
    # that could not be made: nothing was delivered; try again later.
    reply = outcome.reply if isinstance(outcome, SMTPError) else None
    deferred = RecipientOutcome(RecipientVerdict.DEFERRED, reply, str(outcome))
    return dict.fromkeys(recipients, deferred)
