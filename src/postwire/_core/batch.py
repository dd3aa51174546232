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
from dataclasses import dataclass

from . import commands as c
from .body import BdatBody, DataBody
from .connection import SMTPConnection
from .effects import Effect, Fill, Send, SendBody, Wait, recv
from .envelope import SendResult
from .errors import SMTPError
from .message import PreparedMessage
from .outcomes import DataVerdict, TransactionReplies, after_end_of_data, before_end_of_data
from .procedures import reset
from .reply import Reply
from .state import State
from .transaction import MAX_UNANSWERED, check_binary, mail_params, transaction

__all__ = ["Outcome", "send_batch"]

Outcome = SendResult | BaseException
OnResult = Callable[[int, Outcome], None]

_DATA = c.Data()


@dataclass(slots=True, kw_only=True)
class _Flight(TransactionReplies):
    """A message whose replies are still owed (and what they decided so far)."""

    index: int
    #: The connection's transaction number when this message's MAIL went out.
    tx: int
    size: int = 0
    body: BdatBody | None = None
    #: DATA mode: what followed the 354 (content, or a lone "." when nothing was accepted).
    verdict: DataVerdict = DataVerdict.CONTENT
    end_sent: bool = False
    reported: bool = False

    @property
    def owed(self) -> int:
        """How many replies this message's commands are owed (BDAT: with each chunk's)."""
        return 1 + len(self.recipients) + (self.body.replies if self.body is not None else 1)

    def lost(self, exc: BaseException) -> BaseException:
        """This message's outcome when the connection failed before its reply came.

        It may have been delivered only if its content and end of data went
        out; a lone "." delivers nothing.
        """
        if self.end_sent and self.verdict is DataVerdict.CONTENT:
            return after_end_of_data(exc)
        return before_end_of_data(exc)

    def report(self, on_result: OnResult, outcome: Outcome) -> None:
        self.reported = True
        on_result(self.index, outcome)


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
    if conn.lmtp:
        raise ValueError("send_batch speaks SMTP: LMTP's per-recipient replies need transaction()")
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
            if 2 + len(env.recipients) > MAX_UNANSWERED:
                # Too many commands for one pipelined group: finish what is in
                # flight, then a transaction of its own reads replies as it goes.
                yield from _collect_all(conn, flights, on_result, bdat=bdat)
                yield from _alone(conn, index, item, on_result, chunking=bdat)
                continue
            # MAIL and every RCPT (and DATA below) as one Send: one effect, one write.
            group = [conn.send(c.mail(env.sender, params))]
            flight = _Flight(
                env.recipients, index=index, tx=conn.transaction_id, size=env.size or 0
            )
            group.extend(
                conn.send(c.rcpt(rcpt, env.rcpt_params_for(rcpt))) for rcpt in env.recipients
            )
            if bdat:
                yield Send(b"".join(group))
                flight.body = BdatBody(conn, normalize=not env.binary)
                yield SendBody(flight.body, item.content, index)
                flight.end_sent = True
                flights.append(flight)
                if (
                    len(flights) >= window
                    or sum(f.size for f in flights) >= window_bytes
                    or sum(f.owed for f in flights) >= MAX_UNANSWERED
                ):
                    yield from _collect_all(conn, flights, on_result, bdat=True)
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
        yield from _collect_all(conn, flights, on_result, bdat=bdat)
    except GeneratorExit:
        raise
    except BaseException as exc:
        for f in flights:
            if not f.reported:
                f.report(on_result, f.lost(exc))
        raise


def _take_group(conn: SMTPConnection, f: _Flight) -> None:
    """Take the MAIL and RCPT replies of ``f`` (they have arrived)."""
    f.mail = conn.next_reply()
    for rcpt in f.recipients:
        f.take_rcpt(rcpt, conn.next_reply())


def _start_data(
    conn: SMTPConnection,
    f: _Flight,
    content: object,
    on_result: OnResult,
    previous: _Flight | None,
) -> Generator[Effect, Reply | None, None]:
    # The previous message's end of data, then MAIL, RCPT... and DATA: one Fill.
    owed = 2 + len(f.recipients) + (previous is not None)
    yield Fill(owed, Wait.DATA_END if previous is not None else Wait.COMMAND)
    if previous is not None:
        _end_of_data(previous, conn.next_reply(), on_result)
    _take_group(conn, f)
    verdict = f.after_data(conn.next_reply())
    if isinstance(verdict, DataVerdict):
        f.verdict = verdict
        if verdict is DataVerdict.CONTENT:
            yield SendBody(DataBody(conn), content, f.index)
        else:
            yield Send(conn.end_data())
        f.end_sent = True
        return
    f.report(on_result, verdict)
    # The transaction may still be open on the server: close it before the next.
    if conn.state is not State.CLOSED:
        yield from reset(conn)


def _end_of_data(f: _Flight, final: Reply, on_result: OnResult) -> None:
    f.report(on_result, f.after_end_of_data(final, f.verdict))


def _collect_all(
    conn: SMTPConnection, flights: deque[_Flight], on_result: OnResult, *, bdat: bool
) -> Generator[Effect, Reply | None, None]:
    """Collect every flight's outcome; a flight leaves ``flights`` only once reported.

    If the connection fails meanwhile, :func:`send_batch`'s handler gives the
    flights still there their outcome.
    """
    if not bdat:
        while flights:
            final = yield from recv(Wait.DATA_END)
            _end_of_data(flights[0], final, on_result)
            flights.popleft()
        return
    if not flights:
        return
    # The whole window at once (RFC 3030 §4.2 with RFC 2920): an extra reply
    # anywhere in it shifts the pairing of every later reply, and shows as an
    # unsolicited reply once all are in; it is raised before any outcome of the
    # window is reported, since those would rest on shifted replies.
    yield Fill(sum(f.owed for f in flights), Wait.DATA_END)
    conn.raise_protocol_error()
    outcome: Outcome | None = None
    while flights:
        f = flights[0]
        assert f.body is not None
        _take_group(conn, f)
        outcome = f.after_bdat([conn.next_reply() for _ in range(f.body.replies)])
        f.report(on_result, outcome)
        flights.popleft()
    # RFC 3030 §2: RSET after a failed BDAT, if no later transaction was started.
    if not isinstance(outcome, SendResult) and conn.state is not State.CLOSED:
        yield from reset(conn)


def _alone(
    conn: SMTPConnection,
    index: int,
    item: PreparedMessage,
    on_result: OnResult,
    *,
    chunking: bool,
) -> Generator[Effect, Reply | None, None]:
    """One message in a transaction of its own; a refusal is its outcome, not the batch's."""
    try:
        result = yield from transaction(conn, item.envelope, item.content, chunking=chunking)
    except SMTPError as exc:
        on_result(index, exc)
        if conn.unanswered or conn.state in (State.CLOSED, State.ERROR):
            raise  # the connection cannot go on: the batch ends here
        return
    on_result(index, result)
