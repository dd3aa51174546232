"""A scripted relay on 127.0.0.1 that counts what it received, by Message-ID and recipient.

An ordinary ESMTP server (PIPELINING, 8BITMIME, ENHANCEDSTATUSCODES, SMTPUTF8) run by an
asyncio loop in a thread, with faults the outbox must survive, chosen by :class:`Faults`:

- ``drop_after_dot``: for a message whose final "." is received, record it as delivered and
  close the connection without the reply (RFC 1047: the worst case, the message *was* taken);
- ``delay_final``: wait this many seconds before the final reply (the message is recorded
  when its "." arrives);
- ``max_recipients``: answer ``452 4.5.3 Too many recipients`` to the RCPTs after this many;
- ``greeting_421``: answer ``421`` to the greeting of this many connections (the first ones,
  then every ``greeting_421_every``-th);
- recipients whose local part starts with ``bounce`` get ``550 5.1.1``, ``defer`` ``450 4.2.0``.

Every delivery is recorded (:attr:`ScriptedRelay.deliveries`: time, Message-ID, recipient, Subject,
connection) and every connection's activity span (first and last byte received from the
client): the chaos tests count lost messages, duplicates, concurrency and rate from these.
:meth:`ScriptedRelay.restart` closes every connection and listens again on the same port.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import re
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Delivery", "Faults", "ScriptedRelay", "Span", "max_in_window", "max_overlap"]

_MESSAGE_ID = re.compile(rb"^message-id:[ \t]*(<[^>\r\n]*>)", re.IGNORECASE | re.MULTILINE)
_SUBJECT = re.compile(rb"^subject:[ \t]*([^\r\n]*)", re.IGNORECASE | re.MULTILINE)
_ADDRESS = re.compile(r"<([^>]*)>")


@dataclass
class Faults:
    """Which faults to inject; a predicate decides per message (by its Message-ID)."""

    drop_after_dot: Callable[[str], bool] = lambda _: False
    delay_final: Callable[[str], float] = lambda _: 0.0
    max_recipients: int | None = None
    greeting_421: int = 0
    greeting_421_every: int = 0


@dataclass(frozen=True)
class Delivery:
    at: float
    message_id: str
    recipient: str
    connection: int
    subject: str = ""


@dataclass
class Span:
    """When a connection's client sent its first and its last bytes."""

    connection: int
    first: float
    last: float
    closed: float | None = None


@dataclass
class _Session:
    number: int
    span: Span
    buffer: bytearray = field(default_factory=bytearray)
    eof: bool = False
    active: bool = False
    waiter: asyncio.Future[None] | None = None
    #: (bytes received so far, when) per chunk, and bytes taken from the buffer: the time a
    #: line arrived is that of its last byte's chunk, read when the socket was read.
    arrivals: collections.deque[tuple[int, float]] = field(default_factory=collections.deque)
    total: int = 0
    consumed: int = 0
    line_at: float = 0.0


class _Protocol(asyncio.Protocol):
    def __init__(self, relay: ScriptedRelay) -> None:
        self.relay = relay
        self.transport: asyncio.Transport | None = None
        number = next(relay._numbers)
        now = time.monotonic()
        self.session = _Session(number, Span(number, now, now))

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.relay._transports.add(transport)
        with self.relay._lock:
            self.relay.connections += 1
        task = asyncio.get_running_loop().create_task(self.relay._converse(self))
        self.relay._tasks.add(task)
        task.add_done_callback(self.relay._tasks.discard)

    def data_received(self, data: bytes) -> None:
        session = self.session
        now = time.monotonic()
        with self.relay._lock:
            if not session.active:
                session.active = True
                session.span.first = now
                self.relay.spans.append(session.span)
            session.span.last = now
        session.buffer += data
        session.total += len(data)
        session.arrivals.append((session.total, now))
        self._wake()

    def eof_received(self) -> bool:
        self.session.eof = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.session.eof = True
        self.session.span.closed = time.monotonic()
        if self.transport is not None:
            self.relay._transports.discard(self.transport)
        self._wake()

    def _wake(self) -> None:
        waiter = self.session.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def readline(self) -> bytes | None:
        session = self.session
        while (end := session.buffer.find(b"\n")) < 0:
            if session.eof:
                return None
            session.waiter = asyncio.get_running_loop().create_future()
            try:
                await asyncio.wait_for(session.waiter, 30)
            except asyncio.TimeoutError:
                return None
            finally:
                session.waiter = None
        line = bytes(session.buffer[: end + 1])
        del session.buffer[: end + 1]
        session.consumed += end + 1
        while session.arrivals and session.arrivals[0][0] < session.consumed:
            session.arrivals.popleft()
        session.line_at = session.arrivals[0][1] if session.arrivals else time.monotonic()
        return line

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class ScriptedRelay:
    """The relay; use as a context manager (``port`` 0 picks a free one, kept across restarts)."""

    def __init__(self, faults: Faults | None = None, *, port: int = 0) -> None:
        self.faults = faults or Faults()
        self.port = port
        self.deliveries: list[Delivery] = []
        self.spans: list[Span] = []
        self.connections = 0
        self.greeted = 0
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.AbstractServer | None = None
        self._transports: set[asyncio.Transport] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    # -- life cycle --------------------------------------------------------------------------

    def _call(self, coro: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(15)

    async def _listen(self) -> None:
        self._server = await self._loop.create_server(
            lambda: _Protocol(self), "127.0.0.1", self.port, reuse_address=True
        )
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for transport in list(self._transports):
            transport.abort()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def __enter__(self) -> ScriptedRelay:
        self._thread.start()
        self._call(self._listen())
        return self

    def __exit__(self, *exc: object) -> None:
        self._call(self._close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def restart(self, down: float = 0.0) -> None:
        """Close every connection and the listener, stay down ``down`` seconds, listen again."""
        self._call(self._close())
        if down:
            time.sleep(down)
        self._call(self._listen())

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}?tls=none"

    def received(self) -> dict[tuple[str, str], int]:
        """How many times each (Message-ID, recipient) arrived."""
        counts: dict[tuple[str, str], int] = {}
        with self._lock:
            for d in self.deliveries:
                key = (d.message_id, d.recipient)
                counts[key] = counts.get(key, 0) + 1
        return counts

    # -- the session -------------------------------------------------------------------------

    async def _converse(self, proto: _Protocol) -> None:
        faults = self.faults
        with self._lock:
            self.greeted += 1
            number = self.greeted
        refuse = number <= faults.greeting_421 or (
            faults.greeting_421_every and number % faults.greeting_421_every == 0
        )
        if refuse:
            proto.write(b"421 4.3.2 relay.test busy, try again later\r\n")
            proto.close()
            return
        proto.write(b"220 relay.test ESMTP scripted relay\r\n")
        sender: str | None = None
        recipients: list[str] = []
        try:
            while (line := await proto.readline()) is not None:
                verb = line[:4].upper()
                if verb in (b"EHLO", b"HELO"):
                    proto.write(
                        b"250-relay.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n"
                        b"250-ENHANCEDSTATUSCODES\r\n250-SMTPUTF8\r\n250 SIZE 10485760\r\n"
                    )
                elif verb == b"MAIL":
                    sender, recipients = line.decode(errors="replace"), []
                    proto.write(b"250 2.1.0 sender ok\r\n")
                elif verb == b"RCPT":
                    proto.write(self._rcpt(line, sender, recipients))
                elif verb == b"DATA":
                    if sender is None or not recipients:
                        proto.write(b"554 5.5.1 no valid recipients\r\n")
                        continue
                    proto.write(b"354 go ahead\r\n")
                    if not await self._data(proto, recipients):
                        return
                    sender, recipients = None, []
                elif verb == b"RSET":
                    sender, recipients = None, []
                    proto.write(b"250 2.0.0 ok\r\n")
                elif verb == b"NOOP":
                    proto.write(b"250 2.0.0 ok\r\n")
                elif verb == b"QUIT":
                    proto.write(b"221 2.0.0 bye\r\n")
                    proto.close()
                    return
                else:
                    proto.write(b"502 5.5.2 not implemented\r\n")
        finally:
            proto.close()

    def _rcpt(self, line: bytes, sender: str | None, recipients: list[str]) -> bytes:
        if sender is None:
            return b"503 5.5.1 need MAIL first\r\n"
        found = _ADDRESS.search(line.decode(errors="replace"))
        address = found.group(1) if found else ""
        local = address.split("@")[0].lower()
        limit = self.faults.max_recipients
        if limit is not None and len(recipients) >= limit:
            return b"452 4.5.3 Too many recipients\r\n"
        if local.startswith("bounce"):
            return b"550 5.1.1 no such user here\r\n"
        if local.startswith("defer"):
            return b"450 4.2.0 mailbox busy, try again later\r\n"
        recipients.append(address)
        return b"250 2.1.5 recipient ok\r\n"

    async def _data(self, proto: _Protocol, recipients: list[str]) -> bool:
        """Read the content; record and answer.  False when the connection is over."""
        content = bytearray()
        while True:
            line = await proto.readline()
            if line is None:
                return False  # no final ".": nothing delivered (RFC 5321 §4.1.1.4)
            if line == b".\r\n":
                break
            content += line[1:] if line.startswith(b".") else line
        found = _MESSAGE_ID.search(bytes(content))
        message_id = found.group(1).decode(errors="replace") if found else ""
        now = proto.session.line_at  # when the "." reached us, not when we got to it
        head = bytes(content[: content.find(b"\r\n\r\n") + 2])
        subject = _SUBJECT.search(head)
        title = subject.group(1).decode(errors="replace") if subject else ""
        with self._lock:
            self.deliveries.extend(
                Delivery(now, message_id, r, proto.session.number, title) for r in recipients
            )
        if self.faults.drop_after_dot(message_id):
            proto.close()
            return False
        delay = self.faults.delay_final(message_id)
        if delay:
            await asyncio.sleep(delay)
        proto.write(b"250 2.0.0 ok: queued\r\n")
        return True


# -- what the relay saw, for the limits' checks --------------------------------------------


def max_overlap(spans: list[tuple[float, float]]) -> int:
    """The most (first, last) spans open at one moment: connections at once."""
    events = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans])
    best = level = 0
    for _, step in events:
        level += step
        best = max(best, level)
    return best


def max_in_window(times: list[float], window: float = 1.0) -> int:
    """The most moments in any ``window`` seconds: final dots per second."""
    times = sorted(times)
    best = start = 0
    for end, t in enumerate(times):
        while t - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best
