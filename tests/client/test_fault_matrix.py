"""The fault matrix: every (step, fault) of ``servers.faults`` against every client.

One fault server (tests/servers/faults.py) injects one fault at one step of
each connection.  For every cell, the sync :class:`~postwire.Client`, the
:class:`~postwire.AsyncClient`, the Racket layer
(:func:`postwire.smtp.smtp_send_message`) and ``send_many`` (pipelined) must:

(a) fail with a typed postwire error (:class:`~postwire.errors.SMTPError`)
    within the 1 s timeout (well under 3 s in all);
(b) name the step in the error text, and the reply code when the fault was a reply;
(c) close the connection after I/O faults, timeouts and protocol errors, but stay
    usable after a plain 4xx/5xx refusal inside a mail transaction;
(d) never report success for a message the server did not accept with 2xx (and
    never a plain failure for one it did accept);
(e) report :class:`~postwire.errors.PossiblyDelivered` when the connection broke
    after the final ``.`` (or ``BDAT ... LAST``) and before its reply.

Each test collects every violation of its cell and reports them together, so a
failing cell says everything that is wrong with it at once.

Issue 14's new paths have their own cells: the same checks with a real proxy
(Dante, tinyproxy) between client and fault server, and an LMTP fault server that
fails the last of two recipients after the data with each fault.
"""

from __future__ import annotations

import asyncio
import functools
import re
import ssl
import time
import uuid
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import pytest
import trustme

from postwire import Client, SendResult, errors
from postwire.client import AsyncClient
from postwire.smtp import ports_to_ssl_ports, smtp_send_message
from servers.faults import FAULTS, STEPS, FaultServer, Listener
from servers.proxies import HttpProxy, SocksProxy

T = TypeVar("T")

#: The timeout given to every client, and the bound on any one operation.
TIMEOUT = 1.0
BOUND = 3.0
#: How long the server may take to see the client's close.
CLOSE_WAIT = 2.0

SENDER = "a@client.test"
RECIPIENTS = ["b@server.test"]

#: Steps inside a mail transaction: a plain refusal there leaves the session usable.
TX_STEPS = ("MAIL", "RCPT", "DATA", "BDAT", "end-of-data")
#: Faults that are a reply with a code the error must repeat.
REPLY_FAULTS = ("421", "4xx", "5xx", "mismatched")
#: Faults that make the reply stream unreadable: a ProtocolError.
PROTOCOL_FAULTS = ("garbage", "oversized", "mismatched")
#: Faults after which the server itself closed the connection.
SERVER_CLOSES = ("close", "421", "partial")

#: What the error text must contain to name each step.
STEP_WORDS: dict[str, tuple[str, ...]] = {
    "greeting": ("greeting",),
    "EHLO": ("EHLO",),
    "STARTTLS": ("STARTTLS",),
    "AUTH": ("AUTH",),
    "MAIL": ("MAIL",),
    "RCPT": ("RCPT",),
    "DATA": ("DATA",),
    # The reply to BDAT ... LAST is also the end of the data.
    "BDAT": ("BDAT", "end of data"),
    "end-of-data": ("end of data",),
    "QUIT": ("QUIT",),
}
#: An unsolicited line is found where it breaks the pairing, which may be a
#: later step than the one it followed: its error must name *some* step.
ANY_STEP = (
    "greeting",
    "EHLO",
    "HELO",
    "STARTTLS",
    "AUTH",
    "MAIL",
    "RCPT",
    "DATA",
    "BDAT",
    "end of data",
    "RSET",
    "NOOP",
    "QUIT",
)


@dataclass(frozen=True)
class Cell:
    step: str
    fault: str

    @property
    def usable(self) -> bool:
        """A plain refusal inside a transaction: the session goes on."""
        return self.fault in ("4xx", "5xx") and self.step in TX_STEPS

    @property
    def succeeds(self) -> bool:
        """The message is accepted anyway: the fault comes after its 2xx."""
        return self.step == "QUIT" or (self.fault == "extra" and self.step == "end-of-data")

    @property
    def possibly_delivered(self) -> bool:
        """The connection drops after the end of the data, before its reply; or an
        unsolicited line among pipelined BDAT replies makes them all untrustworthy."""
        return (self.fault in ("close", "partial") and self.step in ("BDAT", "end-of-data")) or (
            self.fault == "extra" and self.step == "BDAT"
        )


def _cells(steps: tuple[str, ...]) -> list[Any]:
    return [pytest.param(Cell(s, f), id=f"{s}-{f}") for s in steps for f in FAULTS]


# -- fixtures ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def client_ctx(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return ctx


@pytest.fixture(scope="module")
def faults(ca: trustme.CA) -> Iterator[FaultServer]:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(ctx)
    with FaultServer(ctx) as server:
        yield server


# -- messages and checks ----------------------------------------------------------------


def _token() -> str:
    return uuid.uuid4().hex


def _message(token: str) -> bytes:
    return (
        f"From: {SENDER}\r\nTo: {RECIPIENTS[0]}\r\nSubject: fault matrix {token}\r\n"
        f"Message-ID: <{token}@client.test>\r\n\r\nbody of {token}\r\n"
    ).encode()


def _delivered(listener: Listener, token: str) -> bool:
    return any(token.encode() in m for m in listener.delivered)


def _reply_codes(cell: Cell, listener: Listener) -> list[str]:
    """The codes of the injected reply, which the error text must repeat."""
    if cell.fault not in REPLY_FAULTS or not listener.sessions:
        return []
    sent = listener.sessions[0].fault_reply or b""
    return sorted({m.decode() for m in re.findall(rb"^(\d{3})[ -]", sent, re.M)})


class Problems:
    """The violations found in one cell."""

    def __init__(self, cell: Cell) -> None:
        self.cell = cell
        self.items: list[str] = []

    def expect(self, ok: object, what: str) -> None:
        if not ok:
            self.items.append(what)

    def check(self) -> None:
        if self.items:
            pytest.fail(f"{self.cell.step}-{self.cell.fault}:\n  " + "\n  ".join(self.items))


def _describe(outcome: object) -> str:
    return f"{type(outcome).__name__}: {outcome}"


def _check_error(p: Problems, outcome: object, elapsed: float, listener: Listener) -> None:
    """(a), (b) and (e) for a message that must have failed."""
    cell = p.cell
    p.expect(elapsed < BOUND, f"(a) took {elapsed:.2f} s (timeout {TIMEOUT} s)")
    if isinstance(outcome, SendResult):
        p.expect(False, "(a) success reported, an error was expected")
        return
    text = _describe(outcome)
    p.expect(isinstance(outcome, errors.SMTPError), f"(a) untyped error {text}")
    words = ANY_STEP if cell.fault == "extra" else STEP_WORDS[cell.step]
    p.expect(any(w in str(outcome) for w in words), f"(b) error does not name the step: {text}")
    for code in _reply_codes(cell, listener):
        p.expect(code in str(outcome), f"(b) error lacks the reply code {code}: {text}")
    if cell.possibly_delivered:
        p.expect(
            isinstance(outcome, errors.PossiblyDelivered)
            and "may have been delivered" in str(outcome),
            f"(e) expected PossiblyDelivered ('may have been delivered'), got {text}",
        )


def _settle(listener: Listener) -> None:
    """Wait until the server is done with every connection: its record is then final."""
    for session in list(listener.sessions):
        session.done.wait(CLOSE_WAIT)


def _check_delivery(p: Problems, listener: Listener, token: str, outcome: object) -> None:
    """(d), against the server's final record."""
    delivered = _delivered(listener, token)
    if isinstance(outcome, SendResult):
        p.expect(delivered, f"(d) {token[:6]}: success, but the server never accepted it with 2xx")
    elif delivered:
        p.expect(
            isinstance(outcome, errors.PossiblyDelivered),
            f"(d) {token[:6]}: accepted by the server, but reported {_describe(outcome)}",
        )


def _check_injected(p: Problems, listener: Listener) -> None:
    p.expect(
        listener.sessions and listener.sessions[0].injected,
        "harness: the client never reached the step (fault not injected)",
    )


def _check_client_closed(p: Problems, listener: Listener) -> None:
    """(c): the server sees the client close (unless the server closed first)."""
    if p.cell.fault in SERVER_CLOSES or not listener.sessions:
        return
    p.expect(
        listener.sessions[0].client_closed.wait(CLOSE_WAIT),
        "(c) the client did not close the connection",
    )


# -- the two clients behind one interface -----------------------------------------------


class Api(Protocol):
    client: Client | AsyncClient

    @property
    def connected(self) -> bool: ...
    def connect(self) -> None: ...
    def send(self, token: str) -> SendResult: ...
    def send_many(self, tokens: list[str]) -> list[SendResult | BaseException]: ...
    def noop(self) -> None: ...
    def quit(self) -> None: ...
    def close(self) -> None: ...


def _options(step: str, client_ctx: ssl.SSLContext) -> dict[str, Any]:
    opts: dict[str, Any] = {"tls": "none", "timeout": TIMEOUT, "local_hostname": "client.test"}
    if step == "STARTTLS":
        opts.update(tls="starttls", ssl_context=client_ctx)
    if step == "AUTH":
        opts.update(username="user", password="secret", allow_plaintext_auth=True)
    return opts


def _items(tokens: list[str]) -> list[tuple[bytes, str, list[str]]]:
    return [(_message(t), SENDER, RECIPIENTS) for t in tokens]


class SyncApi:
    def __init__(self, port: int, options: dict[str, Any]) -> None:
        self.client = Client("127.0.0.1", port, **options)

    @property
    def connected(self) -> bool:
        return self.client.connected

    def connect(self) -> None:
        self.client.connect()

    def send(self, token: str) -> SendResult:
        return self.client.send(_message(token), sender=SENDER, recipients=RECIPIENTS)

    def send_many(self, tokens: list[str]) -> list[SendResult | BaseException]:
        return self.client.send_many(_items(tokens))

    def noop(self) -> None:
        self.client.noop()

    def quit(self) -> None:
        self.client.quit()

    def close(self) -> None:
        self.client.close()


class AsyncApi:
    """The AsyncClient, each call run to completion on a private event loop."""

    def __init__(self, port: int, options: dict[str, Any]) -> None:
        self.loop = asyncio.new_event_loop()
        self.client = AsyncClient("127.0.0.1", port, **options)

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        try:
            return self.loop.run_until_complete(coro)
        finally:
            self._spin()

    def _spin(self) -> None:
        # Let the transport's close/abort callbacks run, as a live loop would.
        for _ in range(3):
            self.loop.run_until_complete(asyncio.sleep(0))

    @property
    def connected(self) -> bool:
        return self.client.connected

    def connect(self) -> None:
        self._run(self.client.connect())

    def send(self, token: str) -> SendResult:
        return self._run(self.client.send(_message(token), sender=SENDER, recipients=RECIPIENTS))

    def send_many(self, tokens: list[str]) -> list[SendResult | BaseException]:
        async def collect() -> list[SendResult | BaseException]:
            return await self.client.send_many(_items(tokens))

        return self._run(collect())

    def noop(self) -> None:
        self._run(self.client.noop())

    def quit(self) -> None:
        self._run(self.client.quit())

    def close(self) -> None:
        self.client.close()
        self._spin()
        self.loop.close()


def _make(kind: str, port: int, options: dict[str, Any]) -> Api:
    return SyncApi(port, options) if kind == "sync" else AsyncApi(port, options)


def _finish(api: Api) -> None:
    try:
        if api.connected:
            api.quit()
    finally:
        api.close()


def _after_success(p: Problems, api: Api) -> None:
    """After the message went through: QUIT faults, or an unsolicited line left over."""
    if p.cell.step == "QUIT":
        start = time.monotonic()
        try:
            api.quit()
        except Exception as exc:
            p.expect(False, f"quit() raised {type(exc).__name__}: {exc}")
        p.expect(time.monotonic() - start < BOUND, "quit() exceeded the timeout")
        p.expect(not api.connected, "(c) still connected after quit()")
    else:
        _check_leftover_detected(p, api)


def _check_leftover_detected(p: Problems, api: Api) -> None:
    """An unsolicited line must never be paired with a later command."""
    if not api.connected:
        return
    try:
        api.noop()
    except errors.ProtocolError:
        pass
    except Exception as exc:
        p.expect(False, f"(c) NOOP after an unsolicited line: {type(exc).__name__}: {exc}")
    else:
        p.expect(False, "(c) NOOP succeeded although an unsolicited reply was pending")
    p.expect(not api.connected, "(c) still connected after the unsolicited line was found")


def _single_cell(
    kind: str,
    cell: Cell,
    faults: FaultServer,
    client_ctx: ssl.SSLContext,
    proxy: str | None = None,
) -> Listener:
    p = Problems(cell)
    with faults.listen(cell.step, cell.fault, chunking=cell.step == "BDAT") as listener:
        options = _options(cell.step, client_ctx)
        if proxy is not None:
            options["proxy"] = proxy
        api = _make(kind, listener.port, options)
        token = _token()
        outcome: SendResult | Exception
        start = time.monotonic()
        try:
            api.connect()
            outcome = api.send(token)
        except Exception as exc:  # its type is checked: (a)
            outcome = exc
        elapsed = time.monotonic() - start
        sent: list[tuple[str, object]] = [(token, outcome)]
        try:
            if cell.succeeds:
                p.expect(isinstance(outcome, SendResult), f"expected success: {_describe(outcome)}")
                p.expect(elapsed < BOUND, f"(a) took {elapsed:.2f} s")
                if isinstance(outcome, SendResult):
                    _after_success(p, api)
            else:
                _check_error(p, outcome, elapsed, listener)
                if cell.usable:
                    p.expect(api.connected, "(c) the session was closed after a plain refusal")
                    if api.connected:
                        again = _token()
                        result: SendResult | Exception
                        try:
                            result = api.send(again)
                        except Exception as exc:
                            result = exc
                        p.expect(
                            isinstance(result, SendResult),
                            f"(c) the next message failed: {_describe(result)}",
                        )
                        sent.append((again, result))
                else:
                    p.expect(not api.connected, "(c) still connected after the fault")
                    _check_client_closed(p, listener)
        finally:
            _finish(api)
        _settle(listener)
        _check_injected(p, listener)
        for tok, out in sent:
            _check_delivery(p, listener, tok, out)
    p.check()
    return listener


@pytest.mark.parametrize("cell", _cells(STEPS))
def test_sync(cell: Cell, faults: FaultServer, client_ctx: ssl.SSLContext) -> None:
    _single_cell("sync", cell, faults, client_ctx)


@pytest.mark.parametrize("cell", _cells(STEPS))
def test_async(cell: Cell, faults: FaultServer, client_ctx: ssl.SSLContext) -> None:
    _single_cell("async", cell, faults, client_ctx)


# -- the Racket layer ---------------------------------------------------------------------

# Racket's smtp-send-message never uses BDAT: its BDAT cells would not reach the fault.
RACKET_STEPS = tuple(s for s in STEPS if s != "BDAT")


@pytest.mark.parametrize("cell", _cells(RACKET_STEPS))
def test_racket(cell: Cell, faults: FaultServer, client_ctx: ssl.SSLContext) -> None:
    p = Problems(cell)
    kwargs: dict[str, Any] = {"timeout": TIMEOUT}
    if cell.step == "STARTTLS":
        kwargs["tls_encode"] = functools.partial(ports_to_ssl_ports, context=client_ctx)
    if cell.step == "AUTH":
        kwargs.update(auth_user="user", auth_passwd="secret", allow_plaintext_auth=True)
    with faults.listen(cell.step, cell.fault) as listener:
        token = _token()
        header = f"From: {SENDER}\r\nTo: {RECIPIENTS[0]}\r\nSubject: {token}\r\n\r\n"
        outcome: SendResult | Exception
        start = time.monotonic()
        try:
            outcome = smtp_send_message(
                "127.0.0.1",
                SENDER,
                RECIPIENTS,
                header,
                [f"body of {token}"],
                listener.port,
                **kwargs,
            )
        except Exception as exc:  # its type is checked: (a)
            outcome = exc
        elapsed = time.monotonic() - start
        if cell.succeeds:
            p.expect(isinstance(outcome, SendResult), f"expected success: {_describe(outcome)}")
            p.expect(elapsed < BOUND, f"(a) took {elapsed:.2f} s")
        else:
            _check_error(p, outcome, elapsed, listener)
        # (c) the Racket layer always closes its connection before returning.
        if listener.sessions and cell.fault not in SERVER_CLOSES:
            p.expect(
                listener.sessions[0].done.wait(CLOSE_WAIT),
                "(c) the connection was left open",
            )
        _settle(listener)
        _check_injected(p, listener)
        if cell.fault in ("4xx", "5xx") and cell.step != "QUIT" and listener.sessions:
            # Spec (racket-net.md, fix 8): QUIT after a server error reply.
            p.expect(
                "QUIT" in listener.sessions[0].commands,
                "after a refusal the session did not end with QUIT",
            )
        _check_delivery(p, listener, token, outcome)
    p.check()


# -- send_many: pipelined batches ---------------------------------------------------------

MANY_CELLS = [
    pytest.param(mode, Cell(step, fault), id=f"{mode}-{step}-{fault}")
    for mode, steps in (
        ("data", ("MAIL", "RCPT", "DATA", "end-of-data")),
        ("bdat", ("MAIL", "RCPT", "BDAT")),
    )
    for step in steps
    for fault in FAULTS
]


def _many_cell(
    kind: str, mode: str, cell: Cell, faults: FaultServer, client_ctx: ssl.SSLContext
) -> None:
    p = Problems(cell)
    with faults.listen(cell.step, cell.fault, chunking=mode == "bdat") as listener:
        api = _make(kind, listener.port, _options(cell.step, client_ctx))
        tokens = [_token() for _ in range(3)]
        outcomes: list[SendResult | BaseException] = []
        start = time.monotonic()
        try:
            api.connect()
            outcomes = api.send_many(tokens)
        except Exception as exc:
            p.expect(False, f"send_many raised instead of reporting: {_describe(exc)}")
        elapsed = time.monotonic() - start
        try:
            p.expect(len(outcomes) == 3, f"expected 3 outcomes, got {len(outcomes)}")
            p.expect(elapsed < BOUND, f"(a) send_many took {elapsed:.2f} s")
            for i, outcome in enumerate(outcomes):
                if not isinstance(outcome, SendResult):
                    p.expect(
                        isinstance(outcome, errors.SMTPError),
                        f"(a) message {i + 1}: untyped {_describe(outcome)}",
                    )
            first = outcomes[0] if outcomes else None
            # A protocol error in a pipelined exchange turns pipelining off, and
            # what certainly was not delivered is sent again in lock-step on a
            # new connection (which the fault server does not disturb).
            fell_back = cell.fault in PROTOCOL_FAULTS and api.client.pipelining is False
            # An unsolicited line among a BDAT window's replies may have shifted any of
            # them: it is found before any outcome of the window is reported (issue 10,
            # item 7), every message of the window is possibly delivered, and pipelining
            # is off from then on.
            window_extra = mode == "bdat" and cell.fault == "extra"
            if window_extra:
                p.expect(
                    all(isinstance(o, errors.PossiblyDelivered) for o in outcomes),
                    f"expected PossiblyDelivered: {[_describe(o) for o in outcomes]}",
                )
                p.expect(api.client.pipelining is False, "pipelining still on after the extra line")
            elif cell.succeeds:
                p.expect(isinstance(first, SendResult), f"message 1: expected success: {first!r}")
            elif fell_back and isinstance(first, SendResult):
                pass  # resent in lock-step; (d) below checks it really arrived
            elif first is not None and not (
                cell.fault == "extra" and isinstance(first, SendResult)
            ):
                # With everything pipelined, a message may even be delivered past an
                # unsolicited line; (d) below checks that its success is real.
                _check_error(p, first, elapsed, listener)
            if cell.usable:
                p.expect(api.connected, "(c) the session was closed after a plain refusal")
                for i, outcome in enumerate(outcomes[1:], 2):
                    p.expect(
                        isinstance(outcome, SendResult),
                        f"(c) message {i} after the refusal: {_describe(outcome)}",
                    )
            elif cell.fault == "extra" and not window_extra:
                _check_leftover_detected(p, api)
            elif window_extra:
                pass  # a new, clean connection was made for the lock-step fallback
            elif fell_back and api.connected:
                # The lock-step connection worked: nothing may be left undelivered.
                p.expect(
                    all(isinstance(o, (SendResult, errors.PossiblyDelivered)) for o in outcomes),
                    f"lock-step resend left failures: {[_describe(o) for o in outcomes]}",
                )
                _check_client_closed(p, listener)
            else:
                p.expect(not api.connected, "(c) still connected after the fault")
                _check_client_closed(p, listener)
        finally:
            _finish(api)
        _settle(listener)
        _check_injected(p, listener)
        for token, outcome in zip(tokens, outcomes, strict=False):
            _check_delivery(p, listener, token, outcome)
    p.check()


@pytest.mark.parametrize(("mode", "cell"), MANY_CELLS)
def test_send_many_sync(
    mode: str, cell: Cell, faults: FaultServer, client_ctx: ssl.SSLContext
) -> None:
    _many_cell("sync", mode, cell, faults, client_ctx)


@pytest.mark.parametrize(("mode", "cell"), MANY_CELLS)
def test_send_many_async(
    mode: str, cell: Cell, faults: FaultServer, client_ctx: ssl.SSLContext
) -> None:
    _many_cell("async", mode, cell, faults, client_ctx)


# -- issue 14's new paths: a proxy in the way, and LMTP -----------------------------------

#: Through a real proxy (Dante for SOCKS5, tinyproxy for HTTP CONNECT) the same cells must
#: hold: the server's faults reach the client as the proxy relays them, and a server that
#: drops is a proxy that drops the client's side.
PROXY_CELLS = [
    pytest.param(kind, proxy, Cell(step, fault), id=f"{kind}-{proxy}-{step}-{fault}")
    for kind in ("sync", "async")
    for proxy in ("socks5", "http")
    for step in ("greeting", "MAIL", "end-of-data")
    for fault in ("close", "421", "4xx", "hang", "partial", "garbage")
]


@pytest.mark.parametrize(("kind", "proxy", "cell"), PROXY_CELLS)
def test_through_a_proxy(
    kind: str,
    proxy: str,
    cell: Cell,
    faults: FaultServer,
    client_ctx: ssl.SSLContext,
    socks_proxy: SocksProxy,
    http_proxy: HttpProxy,
) -> None:
    server = socks_proxy if proxy == "socks5" else http_proxy
    listener = _single_cell(kind, cell, faults, client_ctx, proxy=server.url())
    assert f"{listener.port}" in server.log_text()  # the proxy really carried it


LMTP_RECIPIENTS = ["b@server.test", "c@server.test"]


def _lmtp_send(api: Api, token: str) -> SendResult:
    if isinstance(api, SyncApi):
        return api.client.send(_message(token), sender=SENDER, recipients=LMTP_RECIPIENTS)
    assert isinstance(api, AsyncApi) and isinstance(api.client, AsyncClient)
    send = api.client.send(_message(token), sender=SENDER, recipients=LMTP_RECIPIENTS)
    return api._run(send)


def _lmtp_cell(kind: str, fault: str, faults: FaultServer, client_ctx: ssl.SSLContext) -> None:
    """An LMTP server that fails the last of two recipients after the data, with ``fault``.

    The first recipient has its message whatever happens next, so: a reply (4xx, 5xx, 421)
    is that recipient's refusal in the ``SendResult``; an unreadable reply or a broken
    connection is :class:`PossiblyDelivered` saying the first was delivered and the second
    is unknown; an extra line after both replies is found before the session is used again.
    """
    cell = Cell("end-of-data", fault)
    p = Problems(cell)
    with faults.listen("end-of-data", fault, lmtp=True) as listener:
        options = {**_options("end-of-data", client_ctx), "lmtp": True}
        api = _make(kind, listener.port, options)
        token = _token()
        outcome: SendResult | Exception
        start = time.monotonic()
        try:
            api.connect()
            outcome = _lmtp_send(api, token)
        except Exception as exc:
            outcome = exc
        elapsed = time.monotonic() - start
        first, second = LMTP_RECIPIENTS
        try:
            p.expect(elapsed < BOUND, f"(a) took {elapsed:.2f} s")
            if fault in ("4xx", "5xx", "421"):
                p.expect(isinstance(outcome, SendResult), f"expected a result: {outcome!r}")
                if isinstance(outcome, SendResult):
                    p.expect(outcome.accepted == [first], f"accepted: {outcome.accepted}")
                    refusal = outcome.refused.get(second)
                    code = {"4xx": 451, "5xx": 554, "421": 421}[fault]
                    p.expect(
                        refusal is not None and refusal.code == code
                        and refusal.command == "end of data",
                        f"the second recipient's refusal: {refusal!r}",
                    )  # fmt: skip
                # A 421 ends the session (RFC 5321 §3.8); a plain refusal does not.
                p.expect(api.connected is (fault != "421"), f"connected: {api.connected}")
                if fault != "421" and api.connected:
                    again = _lmtp_send(api, _token())  # the session goes on
                    p.expect(again.accepted == LMTP_RECIPIENTS, f"the next message: {again}")
            elif fault == "extra":
                p.expect(
                    isinstance(outcome, SendResult) and outcome.accepted == LMTP_RECIPIENTS,
                    f"expected both delivered: {outcome!r}",
                )
                _check_leftover_detected(p, api)
            else:
                p.expect(
                    isinstance(outcome, errors.PossiblyDelivered),
                    f"expected PossiblyDelivered: {_describe(outcome)}",
                )
                if isinstance(outcome, errors.PossiblyDelivered):
                    p.expect(outcome.delivered == (first,), f"delivered: {outcome.delivered}")
                    p.expect(outcome.unknown == (second,), f"unknown: {outcome.unknown}")
                    p.expect("end of data" in str(outcome), f"(b) step: {outcome}")
                p.expect(not api.connected, "(c) still connected after the fault")
                _check_client_closed(p, listener)
        finally:
            _finish(api)
        _settle(listener)
        _check_injected(p, listener)
        delivered_to = [
            a for s in listener.sessions for a, m in s.delivered_to if token.encode() in m
        ]
        p.expect(first in delivered_to, f"harness: the first recipient: {delivered_to}")
        reported = outcome.accepted if isinstance(outcome, SendResult) else []
        # (d) a recipient reported delivered really got a 2xx, and one that got a 2xx is
        # reported delivered (or possibly delivered).
        p.expect(
            set(reported) <= set(delivered_to),
            f"(d) reported {reported}, delivered {delivered_to}",
        )
        if isinstance(outcome, SendResult):
            p.expect(set(delivered_to) <= set(reported), f"(d) {delivered_to} vs {reported}")
    p.check()


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("kind", ["sync", "async"])
def test_lmtp_fails_one_recipient_after_the_data(
    kind: str, fault: str, faults: FaultServer, client_ctx: ssl.SSLContext
) -> None:
    _lmtp_cell(kind, fault, faults, client_ctx)
