"""Racket's ``send-mail-message`` and ``send-mail-message/port``, and :func:`run_sendmail`.

The arguments are checked here (no header or option injection), then the
header is written (:mod:`.header`) to a :class:`~.port.SendmailPort` onto a
running sendmail (:mod:`.job`).  Racket's ``sendmail^`` signature and
``sendmail@`` unit are here too: they bundle these functions.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Protocol, runtime_checkable

from ..._core.chars import LINE_BREAK_OR_NUL
from .header import racket_header
from .job import start_sendmail
from .port import SendmailPort

__all__ = [
    "SendmailSignature",
    "run_sendmail",
    "send_mail_message",
    "send_mail_message_port",
    "sendmail_unit",
]


def _check_text(who: str, what: str, value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{who}: {what} must be a str, got {type(value).__name__}")
    if LINE_BREAK_OR_NUL.search(value):
        # CR or LF would start a new header line (RFC 5322 §2.2): header injection.
        raise ValueError(f"{who}: {what} may not contain CR, LF or NUL: {value!r}")
    return value


def _check_recipients(who: str, what: str, value: object) -> list[str]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise TypeError(f"{who}: {what} must be a list of str, got {type(value).__name__}")
    recipients = [_check_text(who, f"a {what} recipient", r) for r in value]
    for r in recipients:
        if not r:
            raise ValueError(f"{who}: empty {what} recipient")
        if r.startswith("-"):
            # It would reach sendmail's command line: refuse rather than rely on "--".
            raise ValueError(f"{who}: a recipient may not start with '-': {r!r}")
    return recipients


def _check_extra_header(who: str, header: object) -> str:
    text = _check_text(who, "an extra header", header)
    if not text.strip():
        # A blank line would end the header here and start the body (RFC 5322 §2.1).
        raise ValueError(f"{who}: an extra header may not be empty")
    return text


# ---------------------------------------------------------------------------
# Running sendmail


def run_sendmail(
    message: bytes,
    recipients: Iterable[str],
    *,
    sender: str | None = None,
    program: str | os.PathLike[str] | None = None,
    extra_args: Sequence[str] = (),
    timeout: float | None = 60.0,
) -> None:
    """Run ``program -i [extra_args] [-f sender] -- recipients...`` with ``message`` on stdin.

    ``message`` is the whole message (header, blank line, body), given to
    sendmail as is; ``-i`` means a line holding only ``.`` does not end it.
    ``program`` defaults to :func:`find_sendmail`.  At least one recipient is
    needed unless ``extra_args`` contains ``-t`` (recipients from the header).
    ``timeout`` bounds every wait: each write to sendmail, and its exit.
    Raises :class:`~postwire.errors.SendmailError` when sendmail cannot be run,
    exits with a non-zero status (its stderr is in the error) or times out.
    """
    who = "run_sendmail"
    if not isinstance(message, (bytes, bytearray, memoryview)):
        raise TypeError(f"{who}: message must be bytes, got {type(message).__name__}")
    rcpts = _check_recipients(who, "envelope", recipients)
    if isinstance(extra_args, (str, bytes)):
        raise TypeError(f"{who}: extra_args must be a sequence of str")
    args = ["-i", *(_check_text(who, "an extra argument", a) for a in extra_args)]
    if not rcpts and "-t" not in args:
        raise ValueError(f"{who}: no mail recipients were specified")
    if sender is not None:
        args += ["-f", _check_text(who, "the sender", sender)]
    job = start_sendmail(program, [*args, "--", *rcpts], timeout)
    try:
        view = memoryview(message).cast("B")
        while view:
            view = view[job.write_some(view) :]
    except BaseException:
        job.abort()
        raise
    job.finish()


# ---------------------------------------------------------------------------
# The Racket API


def _open_port(
    who: str,
    *,
    from_: str | None,
    subject: str,
    to: Iterable[str],
    cc: Iterable[str],
    bcc: Iterable[str],
    extra_headers: Sequence[str],
    timeout: float | None,
) -> SendmailPort:
    to_list = _check_recipients(who, "To", to)
    cc_list = _check_recipients(who, "CC", cc)
    bcc_list = _check_recipients(who, "BCC", bcc)
    if not (to_list or cc_list or bcc_list):
        raise ValueError(f"{who}: no mail recipients were specified")
    if from_ is not None:
        _check_text(who, "from_", from_)
    _check_text(who, "the subject", subject)
    extra = [_check_extra_header(who, h) for h in extra_headers]
    header = racket_header(from_=from_, subject=subject, to=to_list, cc=cc_list, extra=extra)
    # Fix 2 and 4: the envelope recipients follow "--" and are not RFC 2047-encoded.
    job = start_sendmail(None, ["-i", "--", *to_list, *cc_list, *bcc_list], timeout)
    port = SendmailPort(job)
    try:
        port.write(header)
    except BaseException:
        port.abort()
        raise
    return port


def send_mail_message_port(
    from_: str | None,
    subject: str,
    to: Iterable[str],
    cc: Iterable[str],
    bcc: Iterable[str],
    *extra_headers: str,
    timeout: float | None = 60.0,
) -> SendmailPort:
    """Start sendmail, write the header, and return a stream for the body.

    Write the body lines (ending each with ``"\\n"``) and close the stream, or
    use it in a ``with`` block; closing waits for sendmail and raises
    :class:`~postwire.errors.SendmailError` when it fails.  ``from_`` may be
    ``None`` (sendmail then fills in ``From``).  ``bcc`` recipients get the
    message but appear in no header.  Each extra header is a whole header line
    without its line ending.  Raises :class:`ValueError` when there are no
    recipients at all, for a recipient starting with ``-`` and for CR or LF in
    a header value; :class:`FileNotFoundError` when no sendmail is found.

    ``timeout`` (seconds; ``None`` waits for ever) bounds each wait on
    sendmail: every write to its input, and its exit once the stream is closed.
    On a timeout sendmail is killed and :class:`~postwire.errors.SendmailError`
    is raised.
    """
    return _open_port(
        "send_mail_message_port",
        from_=from_,
        subject=subject,
        to=to,
        cc=cc,
        bcc=bcc,
        extra_headers=extra_headers,
        timeout=timeout,
    )


def send_mail_message(
    from_: str | None,
    subject: str,
    to: Iterable[str],
    cc: Iterable[str],
    bcc: Iterable[str],
    body: Iterable[str],
    *extra_headers: str,
    timeout: float | None = 60.0,
) -> None:
    """Send a message through sendmail: the header, then each ``body`` line + ``"\\n"``.

    Like :func:`send_mail_message_port`, with the body given as lines; returns
    once sendmail has exited successfully.  If iterating ``body`` raises, the
    message is abandoned (sendmail is killed before the end of its input).
    """
    if isinstance(body, (str, bytes)):
        raise TypeError("send_mail_message: body must be a list of str lines")
    with _open_port(
        "send_mail_message",
        from_=from_,
        subject=subject,
        to=to,
        cc=cc,
        bcc=bcc,
        extra_headers=extra_headers,
        timeout=timeout,
    ) as port:
        for line in body:
            if not isinstance(line, str):
                raise TypeError(
                    f"send_mail_message: body lines must be str, got {type(line).__name__}"
                )
            port.write(line + "\n")


# ---------------------------------------------------------------------------
# The unit and its signature (Racket's sendmail@ and sendmail^)


@runtime_checkable
class SendmailSignature(Protocol):
    """Racket's ``sendmail^`` signature: the two names ``net/sendmail`` exports."""

    def send_mail_message(
        self,
        from_: str | None,
        subject: str,
        to: Iterable[str],
        cc: Iterable[str],
        bcc: Iterable[str],
        body: Iterable[str],
        *extra_headers: str,
        timeout: float | None = ...,
    ) -> None: ...

    def send_mail_message_port(
        self,
        from_: str | None,
        subject: str,
        to: Iterable[str],
        cc: Iterable[str],
        bcc: Iterable[str],
        *extra_headers: str,
        timeout: float | None = ...,
    ) -> SendmailPort: ...


class _SendmailUnit:
    """Racket's ``sendmail@``: the functions of :mod:`postwire.sendmail`, as one object."""

    send_mail_message = staticmethod(send_mail_message)
    send_mail_message_port = staticmethod(send_mail_message_port)

    def __repr__(self) -> str:
        return "<unit sendmail@>"


#: An object satisfying :class:`SendmailSignature` (Racket's ``sendmail@``).
sendmail_unit: SendmailSignature = _SendmailUnit()
