"""An ESMTP server on 127.0.0.1 that injects one fault at one step of each connection.

The server behaves like an ordinary ESMTP server (PIPELINING, 8BITMIME,
ENHANCEDSTATUSCODES, STARTTLS, AUTH PLAIN/LOGIN, and CHUNKING when asked for)
except at one configurable *step*, where it answers with one configurable
*fault* instead of its normal reply, once per connection.

The fault is chosen per listening port, which is race-free: each call of
:meth:`FaultServer.listen` opens a fresh port whose every connection gets that
step and fault.  One :class:`FaultServer` (one thread running one event loop)
serves every port, so a test module starts it once.

Like Postfix, the server writes the replies to a pipelined group (RFC 2920
§3.2) together, once no further complete command is waiting in its input, so
a reply and an unsolicited extra line always reach the client in one piece.

Each connection is recorded in a :class:`Session`: the bytes received, the
command lines, the fault actually sent, the messages delivered (a message
counts as delivered only when the server sent a well-formed 2xx reply to its
final ``.`` or to its ``BDAT ... LAST``) and whether the client closed.

A listener opened with ``lmtp=True`` speaks LMTP (RFC 2033): LHLO instead of
EHLO, and after the final ``.`` one reply per accepted recipient, the last of
which is the ``end-of-data`` step: so a fault there fails one recipient after
the data, the others having had their message (``Session.delivered_to``).
"""

from __future__ import annotations

import asyncio
import base64
import enum
import ssl
import threading
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FAULTS", "STEPS", "FaultServer", "Listener", "Session"]

#: Where a fault can be injected (the reply to that step is replaced).
STEPS = (
    "greeting",
    "EHLO",
    "STARTTLS",
    "AUTH",
    "MAIL",
    "RCPT",
    "DATA",
    "BDAT",
    "end-of-data",
    "QUIT",
)

#: What is injected:
#:
#: * ``close``: the connection is closed instead of the reply;
#: * ``421``: ``421`` and then close (RFC 5321 §3.8);
#: * ``4xx`` / ``5xx``: a plain transient / permanent refusal;
#: * ``garbage``: a line that is not an SMTP reply;
#: * ``hang``: no reply at all (the server only reads until the client closes);
#: * ``partial``: the start of the reply line, without CRLF, then close;
#: * ``oversized``: a 100 KiB reply line;
#: * ``mismatched``: a multi-line reply whose lines have different codes;
#: * ``extra``: the normal reply followed by an unsolicited ``250 extra`` line.
FAULTS = (
    "close",
    "421",
    "4xx",
    "5xx",
    "garbage",
    "hang",
    "partial",
    "oversized",
    "mismatched",
    "extra",
)

#: The replies injected for the reply faults (the tests look for these codes).
FAULT_421 = b"421 4.3.2 fault injected: closing connection\r\n"
FAULT_4XX = b"451 4.3.0 fault injected: try again later\r\n"
FAULT_5XX = b"554 5.3.0 fault injected: refused\r\n"
FAULT_GARBAGE = b"?? this line is not an SMTP reply\r\n"
OVERSIZED_LENGTH = 100 * 1024
#: A connection idle this long (in seconds) is closed by the server.
IDLE_TIMEOUT = 15.0


class _Outcome(enum.Enum):
    #: The normal reply went out (possibly followed by an extra line).
    SENT = "sent"
    #: A refusal or a malformed reply went out: the server treats it as a refusal.
    REFUSED = "refused"
    #: The connection is over (closed, 421, or hung until the client left).
    STOP = "stop"


class _ClientGone(Exception):
    """The client closed the connection (or it broke)."""


@dataclass
class Session:
    """What happened on one connection (written by the server thread)."""

    step: str
    fault: str
    received: bytearray = field(default_factory=bytearray)
    commands: list[str] = field(default_factory=list)
    #: The bytes sent instead of the normal reply, once the fault was injected.
    fault_reply: bytes | None = None
    #: The content of every message the server accepted with a 2xx final reply.
    delivered: list[bytes] = field(default_factory=list)
    #: LMTP: (recipient, content) for each recipient whose own reply after the data was 2xx.
    delivered_to: list[tuple[str, bytes]] = field(default_factory=list)
    #: Set when the client closed its side (EOF or reset seen by the server).
    client_closed: threading.Event = field(default_factory=threading.Event)
    #: Set when the server has finished with the connection.
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def injected(self) -> bool:
        return self.fault_reply is not None


class _Wire(asyncio.Protocol):
    """Collects received bytes for the conversation; survives a STARTTLS upgrade."""

    def __init__(self, listener: Listener) -> None:
        self.listener = listener
        self.buffer = bytearray()
        self.eof = False
        self.transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[None] | None = None
        self.session = Session(listener.step, listener.fault)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.listener.sessions.append(self.session)
        conversation = _Conversation(self, self.listener)
        task = asyncio.get_running_loop().create_task(conversation.run())
        self.listener.server.tasks.add(task)
        task.add_done_callback(self.listener.server.tasks.discard)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self.session.received += data
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def wait(self) -> None:
        """Wait for more bytes (or the end), at most IDLE_TIMEOUT seconds."""
        if self.eof:
            self.session.client_closed.set()
            raise _ClientGone
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait_for(self._waiter, IDLE_TIMEOUT)
        except asyncio.TimeoutError:
            raise _ClientGone from None
        finally:
            self._waiter = None


class _Conversation:
    """The server side of one SMTP session."""

    def __init__(self, wire: _Wire, listener: Listener) -> None:
        self.wire = wire
        self.listener = listener
        self.session = wire.session
        self.out = bytearray()
        self.pending_fault = True
        self.tls = False
        self.no_service = False
        self.mail: str | None = None
        self.rcpts: list[str] = []
        self.chunks = bytearray()
        self.queued = 0

    # -- I/O -------------------------------------------------------------------

    @property
    def transport(self) -> asyncio.Transport:
        assert self.wire.transport is not None
        return self.wire.transport

    async def readline(self) -> bytes:
        buf = self.wire.buffer
        while (nl := buf.find(b"\n")) < 0:
            await self.wire.wait()
        line = bytes(buf[: nl + 1])
        del buf[: nl + 1]
        return line

    async def readexactly(self, n: int) -> bytes:
        buf = self.wire.buffer
        while len(buf) < n:
            await self.wire.wait()
        data = bytes(buf[:n])
        del buf[:n]
        return data

    def flush(self) -> None:
        if self.out and not self.transport.is_closing():
            self.transport.write(bytes(self.out))
        self.out.clear()

    def flush_if_idle(self) -> None:
        # RFC 2920 §3.2 behaviour: answer a pipelined group in one write, once
        # no further complete command line is waiting.
        if b"\n" not in self.wire.buffer:
            self.flush()

    def close(self) -> None:
        self.flush()
        self.transport.close()

    async def hang(self) -> None:
        """Answer nothing more; read (and record) until the client goes away."""
        self.flush()
        self.wire.buffer.clear()
        while True:
            await self.wire.wait()
            self.wire.buffer.clear()

    # -- replies and faults ----------------------------------------------------

    async def reply(
        self, step: str, normal: bytes, on_sent: Callable[[], None] | None = None
    ) -> _Outcome:
        """Send ``normal`` as the reply to ``step``, or the fault if it is due here.

        ``on_sent`` runs just before the normal reply is written, so what it
        records is visible to a client as soon as the reply can be.
        """
        if self.pending_fault and step == self.listener.step:
            self.pending_fault = False
            return await self.inject(normal, on_sent)
        if on_sent is not None:
            on_sent()
        self.out += normal
        self.flush_if_idle()
        return _Outcome.SENT

    async def inject(self, normal: bytes, on_sent: Callable[[], None] | None) -> _Outcome:
        fault = self.listener.fault
        code = normal[:3]
        injected: bytes
        outcome = _Outcome.REFUSED
        if fault == "close":
            injected, outcome = b"", _Outcome.STOP
        elif fault == "421":
            injected, outcome = FAULT_421, _Outcome.STOP
        elif fault == "4xx":
            injected = FAULT_4XX
        elif fault == "5xx":
            injected = FAULT_5XX
        elif fault == "garbage":
            injected = FAULT_GARBAGE
        elif fault == "hang":
            injected, outcome = b"", _Outcome.STOP
        elif fault == "partial":
            injected, outcome = code + b" partial repl", _Outcome.STOP
        elif fault == "oversized":
            injected = code + b" " + b"x" * OVERSIZED_LENGTH + b"\r\n"
        elif fault == "mismatched":
            other = b"554" if code < b"500" else b"250"
            injected = code + b"-first line\r\n" + other + b" second line, another code\r\n"
        elif fault == "extra":
            injected, outcome = normal + b"250 extra\r\n", _Outcome.SENT
            if on_sent is not None:
                on_sent()
        else:  # pragma: no cover - guarded by FaultServer.listen
            raise ValueError(f"unknown fault {fault!r}")
        self.session.fault_reply = injected
        self.out += injected
        if outcome is _Outcome.STOP:
            if fault == "hang":
                await self.hang()
            self.close()
        else:
            self.flush_if_idle()
        return outcome

    # -- the session -----------------------------------------------------------

    async def run(self) -> None:
        try:
            greeting = await self.reply("greeting", b"220 mx.test ESMTP fault server\r\n")
            if greeting is _Outcome.STOP:
                return
            # RFC 5321 §3.1: after a refused greeting, only QUIT is served.
            self.no_service = greeting is _Outcome.REFUSED
            while True:
                line = await self.readline()
                self.session.commands.append(line.decode("utf-8", "replace").rstrip("\r\n"))
                if await self.command(line) is _Outcome.STOP:
                    return
        except (_ClientGone, ConnectionError, ssl.SSLError, OSError, asyncio.TimeoutError):
            pass
        finally:
            if self.wire.eof:
                self.session.client_closed.set()
            if self.wire.transport is not None:
                self.wire.transport.close()
            self.session.done.set()

    def ehlo_reply(self) -> bytes:
        lines = ["mx.test greets you", "PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES"]
        if self.listener.chunking:
            lines.append("CHUNKING")
        if not self.tls and self.listener.server.tls_context is not None:
            lines.append("STARTTLS")
        lines.append("AUTH PLAIN LOGIN")
        text = [f"250-{x}" for x in lines[:-1]] + [f"250 {lines[-1]}"]
        return ("\r\n".join(text) + "\r\n").encode()

    async def command(self, line: bytes) -> _Outcome:
        text = line.decode("utf-8", "replace").rstrip("\r\n")
        verb, _, arg = text.partition(" ")
        verb = verb.upper()
        if verb == "QUIT":
            outcome = await self.reply("QUIT", b"221 2.0.0 bye\r\n")
            if outcome is _Outcome.SENT:
                self.close()
                return _Outcome.STOP
            return outcome
        if self.no_service:
            return await self.reply("", b"503 5.5.1 no service here, only QUIT\r\n")
        if self.listener.lmtp and verb in ("EHLO", "HELO"):
            return await self.reply("", b"500 5.5.1 this is LMTP: LHLO\r\n")
        if verb == "LHLO" and self.listener.lmtp:
            self.reset()
            return await self.reply("EHLO", self.ehlo_reply())
        if verb == "EHLO":
            self.reset()
            return await self.reply("EHLO", self.ehlo_reply())
        if verb == "HELO":
            self.reset()
            return await self.reply("", b"250 mx.test\r\n")
        if verb == "STARTTLS":
            return await self.starttls()
        if verb == "AUTH":
            return await self.auth(arg)
        if verb == "MAIL":
            return await self.mail_from(arg)
        if verb == "RCPT":
            return await self.rcpt_to(arg)
        if verb == "DATA":
            return await self.data()
        if verb == "BDAT":
            return await self.bdat(arg)
        if verb in ("RSET", "NOOP"):
            if verb == "RSET":
                self.reset()
            return await self.reply("", b"250 2.0.0 ok\r\n")
        return await self.reply("", b"500 5.5.2 command not recognized\r\n")

    def reset(self) -> None:
        self.mail = None
        self.rcpts = []
        self.chunks.clear()

    async def starttls(self) -> _Outcome:
        context = self.listener.server.tls_context
        if self.tls or context is None:
            return await self.reply("", b"503 5.5.1 TLS not available\r\n")
        outcome = await self.reply("STARTTLS", b"220 2.0.0 ready to start TLS\r\n")
        if outcome is not _Outcome.SENT:
            return outcome
        self.flush()
        # RFC 3207 §4.2: nothing received before the handshake may be used.
        self.wire.buffer.clear()
        loop = asyncio.get_running_loop()
        new = await asyncio.wait_for(
            loop.start_tls(self.transport, self.wire, context, server_side=True), IDLE_TIMEOUT
        )
        if new is None:
            return _Outcome.STOP
        self.wire.transport = new
        self.tls = True
        self.reset()
        return _Outcome.SENT

    async def auth(self, arg: str) -> _Outcome:
        mechanism, _, initial = arg.partition(" ")
        mechanism = mechanism.upper()
        if mechanism == "PLAIN":
            if initial:
                return await self.auth_check(initial, first=True)
            outcome = await self.reply("AUTH", b"334 \r\n")
            if outcome is not _Outcome.SENT:
                return outcome
            return await self.auth_check(await self.auth_line(), first=False)
        if mechanism == "LOGIN":
            outcome = await self.reply("AUTH", b"334 VXNlcm5hbWU6\r\n")
            if outcome is not _Outcome.SENT:
                return outcome
            await self.auth_line()
            await self.reply("", b"334 UGFzc3dvcmQ6\r\n")
            await self.auth_line()
            return await self.reply("", b"235 2.7.0 authenticated\r\n")
        return await self.reply("", b"504 5.5.4 unknown mechanism\r\n")

    async def auth_line(self) -> str:
        self.flush()
        line = (await self.readline()).decode("ascii", "replace").strip()
        self.session.commands.append("(auth data)")
        return line

    async def auth_check(self, response: str, *, first: bool) -> _Outcome:
        try:
            parts = base64.b64decode(response, validate=True).split(b"\0")
        except ValueError:
            parts = []
        step = "AUTH" if first else ""
        if len(parts) != 3:
            return await self.reply(step, b"501 5.5.2 bad PLAIN response\r\n")
        return await self.reply(step, b"235 2.7.0 authenticated\r\n")

    async def mail_from(self, arg: str) -> _Outcome:
        if self.mail is not None:
            return await self.reply("", b"503 5.5.1 nested MAIL command\r\n")
        outcome = await self.reply("MAIL", b"250 2.1.0 sender ok\r\n")
        if outcome is _Outcome.SENT:
            self.mail = arg
            self.rcpts = []
        return outcome

    async def rcpt_to(self, arg: str) -> _Outcome:
        if self.mail is None:
            return await self.reply("", b"503 5.5.1 need MAIL command\r\n")
        outcome = await self.reply("RCPT", b"250 2.1.5 recipient ok\r\n")
        if outcome is _Outcome.SENT:
            self.rcpts.append(arg)
        return outcome

    async def data(self) -> _Outcome:
        if self.mail is None:
            return await self.reply("", b"503 5.5.1 need MAIL command\r\n")
        if not self.rcpts:
            return await self.reply("", b"554 5.5.1 no valid recipients\r\n")
        outcome = await self.reply("DATA", b"354 end data with <CR><LF>.<CR><LF>\r\n")
        if outcome is not _Outcome.SENT:
            return outcome
        self.flush()
        content = bytearray()
        while (line := await self.readline()) != b".\r\n":
            # RFC 5321 §4.5.2: remove the stuffed dot.
            content += line[1:] if line.startswith(b".") else line
        if self.listener.lmtp:
            return await self.lmtp_finish(bytes(content))
        return await self.finish(bytes(content), "end-of-data")

    async def lmtp_finish(self, content: bytes) -> _Outcome:
        """RFC 2033 §4.2: a reply per accepted recipient; the last one is the fault's step."""
        addresses = [arg.partition("<")[2].partition(">")[0] for arg in self.rcpts]
        self.reset()

        def delivered(address: str) -> Callable[[], None]:
            def record() -> None:
                self.session.delivered.append(content)
                self.session.delivered_to.append((address, content))

            return record

        for address in addresses[:-1]:
            await self.reply("", f"250 2.0.0 <{address}> delivered\r\n".encode(),
                             delivered(address))  # fmt: skip
        last = addresses[-1]
        normal = f"250 2.0.0 <{last}> delivered\r\n".encode()
        return await self.reply("end-of-data", normal, delivered(last))

    async def finish(self, content: bytes, step: str) -> _Outcome:
        self.queued += 1
        normal = f"250 2.0.0 ok: queued as Q{self.queued}\r\n".encode()
        outcome = await self.reply(step, normal, lambda: self.session.delivered.append(content))
        self.reset()
        return outcome

    async def bdat(self, arg: str) -> _Outcome:
        words = arg.split()
        if not words or not words[0].isdigit() or len(words) > 2:
            return await self.reply("", b"501 5.5.4 syntax: BDAT size [LAST]\r\n")
        chunk = await self.readexactly(int(words[0]))
        last = len(words) == 2 and words[1].upper() == "LAST"
        if self.mail is None or not self.rcpts:
            # RFC 3030 §2: the chunk is read and discarded; LAST ends the
            # transaction all the same (the next MAIL may already be in flight).
            if last:
                self.reset()
            else:
                self.chunks.clear()
            return await self.reply("", b"554 5.5.1 no valid recipients\r\n")
        self.chunks += chunk
        if last:
            return await self.finish(bytes(self.chunks), "BDAT")
        outcome = await self.reply("BDAT", f"250 2.0.0 {len(chunk)} octets received\r\n".encode())
        if outcome is not _Outcome.SENT:
            self.reset()
        return outcome


class Listener:
    """One listening port whose connections get ``fault`` at ``step``."""

    def __init__(
        self, server: FaultServer, step: str, fault: str, chunking: bool, lmtp: bool = False
    ) -> None:
        self.server = server
        self.step = step
        self.fault = fault
        self.chunking = chunking
        self.lmtp = lmtp
        self.sessions: list[Session] = []
        self.port = 0
        self._aserver: asyncio.AbstractServer | None = None

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        self._aserver = await loop.create_server(lambda: _Wire(self), "127.0.0.1", 0)
        self.port = self._aserver.sockets[0].getsockname()[1]

    async def _close(self) -> None:
        if self._aserver is not None:
            self._aserver.close()

    @property
    def delivered(self) -> list[bytes]:
        """Every message delivered on any connection of this port."""
        return [m for s in list(self.sessions) for m in s.delivered]


class FaultServer:
    """Runs the listeners' event loop in a background thread.

    Args:
        tls_context: a server context for STARTTLS (without one, STARTTLS is
            not offered).
    """

    def __init__(self, tls_context: ssl.SSLContext | None = None) -> None:
        self.tls_context = tls_context
        self.tasks: set[asyncio.Task[None]] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> FaultServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._call(self._cancel_all())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _cancel_all(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    def _call(self, coro: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    @contextmanager
    def listen(
        self, step: str, fault: str, *, chunking: bool = False, lmtp: bool = False
    ) -> Iterator[Listener]:
        """A fresh port on 127.0.0.1 that injects ``fault`` at ``step`` on each connection.

        ``lmtp``: speak LMTP (LHLO; a reply per recipient after the data, no CHUNKING).
        """
        if step not in STEPS or fault not in FAULTS:
            raise ValueError(f"unknown step or fault: {step!r}, {fault!r}")
        listener = Listener(self, step, fault, chunking and not lmtp, lmtp)
        self._call(listener._open())
        try:
            yield listener
        finally:
            self._call(listener._close())
