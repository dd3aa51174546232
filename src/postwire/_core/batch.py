"""Many messages over one pipelined connection (RFC 2920 §3.1, RFC 3030 §4.2).

With DATA, each message's content, its final ``.`` and the next message's
MAIL, RCPT and DATA go out in one write, and the replies to all of them come
back together: one round trip per message.  With CHUNKING, a message is
MAIL + RCPT + ``BDAT n LAST`` + content and needs no 354 in between, so
several transactions are written before the first replies are read: up to
``window`` messages (and about ``window_bytes`` of content) are in flight.

Every message gets exactly one outcome through ``on_result``: a
:class:`SendResult`, or the error that says why it was not delivered (or, for
a connection lost after its end of data, that it may have been).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field

from . import commands as c
from .body import BdatBody, DataBody
from .connection import SMTPConnection, after_end_of_data, before_end_of_data
from .envelope import Envelope, SendResult
from .errors import (
    DataError,
    ProtocolError,
    RecipientsRefused,
    SenderRefused,
    SMTPError,
)
from .message import PreparedMessage
from .procedures import (
    Effect,
    Fill,
    Recv,
    Send,
    SendBody,
    Wait,
    check_binary,
    mail_params,
    reset,
)
from .reply import Reply
from .state import State

__all__ = ["Outcome", "send_batch"]

Outcome = SendResult | BaseException
OnResult = Callable[[int, Outcome], None]


@dataclass(slots=True)
class _Flight:
    """A message whose replies are still owed."""

    index: int
    envelope: Envelope
    tx: int
    accepted: list[str] = field(default_factory=list)
    refused: dict[str, Reply] = field(default_factory=dict)
    mail: Reply | None = None
    body: BdatBody | None = None
    #: DATA mode: the "." went out with no content (nothing was accepted).
    lone_dot: bool = False
    end_sent: bool = False
    size: int = 0
    reported: bool = False


def _report(f: _Flight, on_result: OnResult, outcome: Outcome) -> None:
    f.reported = True
    on_result(f.index, outcome)


_DATA = c.Data()

# Shared effect objects: the hot path allocates none per reply.
_RECV = Recv(Wait.COMMAND)
_RECV_END = Recv(Wait.DATA_END)


def _recv(wait: Wait = Wait.COMMAND) -> Generator[Effect, Reply | None, Reply]:
    reply = yield (_RECV_END if wait is Wait.DATA_END else _RECV)
    assert reply is not None
    return reply


def _data_out_of_step(reply: Reply) -> ProtocolError:
    # DATA is answered 354 or an error; a 2xx means replies and commands are
    # out of step (an extra line somewhere before): nothing can be trusted.
    return ProtocolError(
        f"DATA: the server answered {reply} (expected 354): replies are out of step",
        reply=reply,
        step="DATA",
    )


def _refusal(f: _Flight) -> SMTPError:
    if f.mail is not None and not f.mail.is_positive:
        return SenderRefused("MAIL", f.mail)
    return RecipientsRefused(f.refused)


def send_batch(
    conn: SMTPConnection,
    items: Iterable[tuple[int, PreparedMessage | BaseException]],
    on_result: OnResult,
    *,
    chunking: bool = True,
    window: int = 8,
    window_bytes: int = 1 << 20,
) -> Generator[Effect, Reply | None, None]:
    """Send every message of ``items`` pipelined; report each through ``on_result``.

    The server must offer PIPELINING.  An exception that breaks the
    connection propagates after every message in flight got its outcome.
    """
    if not conn.extensions.pipelining:
        raise ValueError("send_batch needs a server that offers PIPELINING")
    if window < 1:
        raise ValueError("window must be at least 1")
    bdat = chunking and conn.extensions.chunking
    flights: deque[_Flight] = deque()
    try:
        for index, item in items:
            if isinstance(item, BaseException):
                on_result(index, item)
                continue
            try:
                params = mail_params(conn, item.envelope)
                check_binary(item.envelope, bdat)
            except SMTPError as exc:
                on_result(index, exc)
                continue
            env = item.envelope
            # MAIL and every RCPT (and DATA below) as one Send: one effect, one write.
            group = [conn.send(c.mail(env.sender, params))]
            flight = _Flight(index, env, conn.transaction_id, size=env.size or 0)
            group.extend(conn.send(c.rcpt(rcpt, env.rcpt_params)) for rcpt in env.recipients)
            if bdat:
                yield Send(b"".join(group))
                flight.body = BdatBody(conn, normalize=not env.binary)
                yield SendBody(flight.body, item.content)
                flight.end_sent = True
                flights.append(flight)
                while len(flights) > window or (
                    len(flights) > 1 and sum(f.size for f in flights) > window_bytes
                ):
                    yield from _collect_bdat(conn, flights[0], on_result)
                    flights.popleft()
                continue
            group.append(conn.send(_DATA))
            yield Send(b"".join(group))
            flights.append(flight)
            # RFC 2920 §3.1: the previous message's "." went out with this group;
            # its reply comes first.
            previous = flights[0] if len(flights) > 1 else None
            yield from _start_data(conn, flight, item.content, on_result, previous)
            if previous is not None:
                flights.popleft()
            if not flight.end_sent:
                flights.pop()
        # Collect a flight before dropping it: if the connection fails meanwhile,
        # the handler below still gives it an outcome.
        while flights:
            if bdat:
                yield from _collect_bdat(conn, flights[0], on_result)
            else:
                yield from _collect_data_end(flights[0], on_result)
            flights.popleft()
    except GeneratorExit:
        raise
    except BaseException as exc:
        for f in flights:
            if not f.reported:
                _report(f, on_result, _lost(f, exc))
        raise


def _lost(f: _Flight, exc: BaseException) -> BaseException:
    return after_end_of_data(exc) if f.end_sent else before_end_of_data(exc)


def _take_group(conn: SMTPConnection, f: _Flight) -> None:
    """Take the MAIL and RCPT replies of ``f`` (they have arrived)."""
    f.mail = conn.next_reply()
    for rcpt in f.envelope.recipients:
        r = conn.next_reply()
        (f.accepted.append(rcpt) if r.is_positive else f.refused.__setitem__(rcpt, r))


def _start_data(
    conn: SMTPConnection,
    f: _Flight,
    content: object,
    on_result: OnResult,
    previous: _Flight | None,
) -> Generator[Effect, Reply | None, None]:
    # The previous message's end of data, then MAIL, RCPT... and DATA: one Fill.
    owed = 2 + len(f.envelope.recipients) + (previous is not None)
    yield Fill(owed, Wait.DATA_END if previous is not None else Wait.COMMAND)
    if previous is not None:
        _end_of_data(previous, conn.next_reply(), on_result)
    _take_group(conn, f)
    assert f.mail is not None
    data = conn.next_reply()
    if data.code == 354:
        if f.mail.is_positive and f.accepted:
            yield SendBody(DataBody(conn), content)
        else:
            # RFC 2920 §3.1: DATA accepted though nothing else was: a lone ".".
            f.lone_dot = True
            yield Send(conn.end_data())
        f.end_sent = True
        return
    if data.is_positive:
        raise _data_out_of_step(data)
    refused = not f.mail.is_positive or not f.accepted
    error: SMTPError = _refusal(f) if refused else DataError("DATA", data)
    if data.code == 421:
        raise error  # reported for this message by send_batch's handler
    _report(f, on_result, error)
    # The transaction may still be open on the server: close it before the next.
    if conn.state is not State.CLOSED:
        yield from reset(conn)


def _end_of_data(f: _Flight, final: Reply, on_result: OnResult) -> None:
    if f.lone_dot:
        _report(f, on_result, _refusal(f))
    elif final.is_positive:
        _report(f, on_result, SendResult(f.accepted, f.refused, final))
    else:
        _report(f, on_result, DataError("end of data", final))


def _collect_data_end(f: _Flight, on_result: OnResult) -> Generator[Effect, Reply | None, None]:
    final = yield from _recv(Wait.DATA_END)
    _end_of_data(f, final, on_result)


def _collect_bdat(
    conn: SMTPConnection, f: _Flight, on_result: OnResult
) -> Generator[Effect, Reply | None, None]:
    assert f.body is not None
    yield Fill(1 + len(f.envelope.recipients) + f.body.replies, Wait.DATA_END)
    _take_group(conn, f)
    assert f.mail is not None
    failure: Reply | None = None
    final: Reply | None = None
    for _ in range(f.body.replies):
        r = conn.next_reply()
        if not r.is_positive and failure is None:
            failure = r
        final = r
    assert final is not None
    if f.mail.is_positive and f.accepted and failure is None:
        _report(f, on_result, SendResult(f.accepted, f.refused, final))
        return
    if not f.mail.is_positive or not f.accepted:
        _report(f, on_result, _refusal(f))
    else:
        assert failure is not None
        _report(f, on_result, DataError("BDAT", failure))
    # RFC 3030 §2: RSET after a failed BDAT, if no later transaction was started.
    if conn.transaction_id == f.tx and conn.state is not State.CLOSED:
        yield from reset(conn)
