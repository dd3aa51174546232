"""postwire.smtp: Racket's net/smtp semantics, its transcript and the nine fixes."""

from __future__ import annotations

import asyncio
import base64
import functools
import re
import ssl
import threading
import time
from collections.abc import Iterator

import pytest
import trustme

from postwire import errors
from postwire.capture import CaptureServer
from postwire.smtp import (
    CancelHandle,
    SendResult,
    SmtpSignature,
    ports_to_ssl_ports,
    smtp_send_message,
    smtp_send_message_async,
    smtp_send_message_on_ports,
    smtp_sending_end_of_message,
    smtp_sending_server,
    smtp_unit,
    ssl_connect,
)
from servers.scripted import ScriptedServer

HEADER = "From: a@x\r\nTo: b@y\r\nSubject: hi\r\n\r\n"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def server_ctx(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(ctx)
    return ctx


@pytest.fixture(scope="module")
def client_ctx(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return ctx


@pytest.fixture(scope="module")
def capture() -> Iterator[CaptureServer]:
    with CaptureServer(tls="none") as server:
        yield server


@pytest.fixture
def sink(capture: CaptureServer) -> CaptureServer:
    capture.clear()
    return capture


def _ok_dialogue(ehlo: bytes = b"EHLO localhost\r\n") -> list[tuple[object, ...]]:
    return [
        ("S", b"220 mx ESMTP\r\n"),
        ("C", ehlo),
        ("S", b"250-mx\r\n250 SIZE\r\n"),
        ("C", b"MAIL FROM:<a@x>\r\n"),
        ("S", b"250 ok\r\n"),
        ("C", b"RCPT TO:<b@y>\r\n"),
        ("S", b"250 ok\r\n"),
        ("C", b"DATA\r\n"),
        ("S", b"354 go\r\n"),
    ]


# -- the transcript of racket-reference.md §1.8 ---------------------------------------


def test_racket_transcript_starttls_auth_plain(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext
) -> None:
    script = [
        ("S", b"220 mx ESMTP\r\n"),
        ("C", b"EHLO localhost\r\n"),
        ("S", b"250-mx\r\n250-STARTTLS\r\n250 AUTH PLAIN\r\n"),
        ("C", b"STARTTLS\r\n"),
        ("S", b"220 go\r\n"),
        ("TLS",),
        ("C", b"EHLO localhost\r\n"),
        ("S", b"250-mx\r\n250 AUTH PLAIN\r\n"),
        ("C", b"AUTH PLAIN dXNlcgB1c2VyAHB3\r\n"),
        ("S", b"235 ok\r\n"),
        ("C", b"MAIL FROM:<a@x>\r\n"),
        ("S", b"250 ok\r\n"),
        ("C", b"RCPT TO:<b@y>\r\n"),
        ("S", b"250 ok\r\n"),
        ("C", b"DATA\r\n"),
        ("S", b"354 go\r\n"),
        ("C", HEADER.encode() + b"line one\r\n..dotted\r\n.\r\n"),
        ("S", b"250 queued as 42\r\n"),
        ("C", b"QUIT\r\n"),
        ("S", b"221 bye\r\n"),
    ]
    hook_calls: list[bytes] = []
    with ScriptedServer(script, tls_context=server_ctx) as server:

        def hook() -> None:
            # The hook runs after every line was written and before the ".".
            hook_calls.append(server.all_received)

        with (
            smtp_sending_server.parameterize("localhost"),
            smtp_sending_end_of_message.parameterize(hook),
        ):
            result = smtp_send_message(
                "127.0.0.1",
                "a@x",
                ["b@y"],
                HEADER,
                ["line one", ".dotted"],
                server.port,
                auth_user="user",
                auth_passwd="pw",
                tls_encode=functools.partial(ports_to_ssl_ports, context=client_ctx),
            )
    assert server.errors == []
    assert isinstance(result, SendResult)
    assert result.accepted == ["b@y"]
    assert result.reply.code == 250 and "42" in result.reply.text
    assert len(hook_calls) == 1
    assert b".\r\n" not in hook_calls[0][-3:]


def test_port_positional_or_keyword(sink: CaptureServer) -> None:
    smtp_send_message("127.0.0.1", "a@x", ["b@y"], HEADER, ["one"], sink.port)
    smtp_send_message("127.0.0.1", "a@x", ["b@y"], HEADER, ["two"], port_no=sink.port)
    bodies = [m.data for m in sink.wait_for(2)]
    assert bodies == [HEADER.encode() + b"one\r\n", HEADER.encode() + b"two\r\n"]


def test_message_lines_str_and_bytes_delivered(sink: CaptureServer) -> None:
    lines: list[str | bytes] = ["plain", b"bytes \xc3\xa9", "", ".", "..two", "über"]
    smtp_send_message("127.0.0.1", "a@x", ["b@y", "c@z"], HEADER, lines, sink.port)
    [msg] = sink.wait_for(1)
    assert msg.rcpt_tos == ["b@y", "c@z"]
    assert msg.data == HEADER.encode() + "plain\r\nbytes é\r\n\r\n.\r\n..two\r\nüber\r\n".encode()


def test_empty_to_is_an_error_before_connecting() -> None:
    calls: list[object] = []

    def connect(host: str, port: int) -> object:
        calls.append((host, port))
        raise AssertionError("must not connect")

    with pytest.raises(ValueError, match="no receivers"):
        smtp_send_message("127.0.0.1", "a@x", [], HEADER, [], 25, tcp_connect=connect)
    assert calls == []


def test_tcp_connect_returning_ports(sink: CaptureServer) -> None:
    import socket

    def connect(host: str, port: int) -> tuple[object, object]:
        sock = socket.create_connection((host, port), 5)
        return sock.makefile("rb"), sock.makefile("wb")

    smtp_send_message(
        "127.0.0.1", "a@x", ["b@y"], HEADER, ["via ports"], sink.port, tcp_connect=connect
    )
    assert sink.wait_for(1)[0].data.endswith(b"via ports\r\n")


def test_on_ports(sink: CaptureServer) -> None:
    import socket

    sock = socket.create_connection(("127.0.0.1", sink.port), 5)
    result = smtp_send_message_on_ports(
        sock.makefile("rb"),
        sock.makefile("wb"),
        "a@x",
        ["b@y"],
        HEADER,
        ["on ports"],
        None,
        None,
        None,
    )
    sock.close()
    assert result.accepted == ["b@y"]
    assert sink.wait_for(1)[0].data.endswith(b"on ports\r\n")


def test_ssl_connect_and_ports_to_ssl_ports_against_capture() -> None:
    with CaptureServer(tls="implicit") as implicit, CaptureServer(tls="starttls") as starttls:
        ctx = implicit.client_ssl_context()
        smtp_send_message(
            "127.0.0.1",
            "a@x",
            ["b@y"],
            HEADER,
            ["implicit"],
            implicit.port,
            tcp_connect=functools.partial(ssl_connect, context=ctx),
        )
        assert implicit.wait_for(1)[0].tls
        ctx2 = starttls.client_ssl_context()
        smtp_send_message(
            "127.0.0.1",
            "a@x",
            ["b@y"],
            HEADER,
            ["starttls"],
            starttls.port,
            tls_encode=functools.partial(ports_to_ssl_ports, context=ctx2),
        )
        assert starttls.wait_for(1)[0].tls


def test_ports_to_ssl_ports_verifies_by_default() -> None:
    # The capture server's CA is not trusted by the default context.
    with CaptureServer(tls="starttls") as server:
        with pytest.raises(errors.CertificateError, match="cafile"):
            smtp_send_message(
                "127.0.0.1",
                "a@x",
                ["b@y"],
                HEADER,
                ["x"],
                server.port,
                tls_encode=ports_to_ssl_ports,
            )
        assert server.messages == []


def test_starttls_must_be_advertised() -> None:
    script = [
        ("S", b"220 mx\r\n"),
        ("C", b"EHLO localhost\r\n"),
        ("S", b"250 mx\r\n"),
        ("DRAIN", 2.0),
    ]
    with ScriptedServer(script) as server, smtp_sending_server.parameterize("localhost"):
        with pytest.raises(errors.TLSRequired, match="STARTTLS"):
            smtp_send_message(
                "127.0.0.1", "a@x", ["b@y"], HEADER, [], server.port, tls_encode=ports_to_ssl_ports
            )
    assert server.errors == []
    assert server.all_received == b"EHLO localhost\r\n"


# -- parameters -----------------------------------------------------------------------


def test_end_of_message_parameter_guard() -> None:
    with pytest.raises(TypeError, match="expected argument of type <thunk>"):
        smtp_sending_end_of_message(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="<thunk>"):
        smtp_sending_end_of_message(lambda x: x)  # type: ignore[arg-type]
    default = smtp_sending_end_of_message()
    assert default() is None


def test_sending_server_parameter_guard() -> None:
    with pytest.raises(ValueError):
        smtp_sending_server("bad\r\nname")
    with pytest.raises(TypeError):
        smtp_sending_server(3)  # type: ignore[arg-type]
    assert smtp_sending_server() is None
    with smtp_sending_server.parameterize("mail.example.org"):
        assert smtp_sending_server() == "mail.example.org"
    assert smtp_sending_server() is None


def test_unit_satisfies_signature(sink: CaptureServer) -> None:
    unit: SmtpSignature = smtp_unit
    assert unit.smtp_sending_end_of_message is smtp_sending_end_of_message
    assert unit.smtp_sending_server is smtp_sending_server
    unit.smtp_send_message("127.0.0.1", "a@x", ["b@y"], HEADER, ["unit"], sink.port)
    assert sink.wait_for(1)[0].data.endswith(b"unit\r\n")


# -- cancellation ---------------------------------------------------------------------


def _alive(sink: CaptureServer) -> None:
    """The server keeps working and holds exactly the one message sent now."""
    smtp_send_message("127.0.0.1", "a@x", ["b@y"], HEADER, ["after"], sink.port)
    [msg] = sink.wait_for(1)
    assert msg.data.endswith(b"after\r\n")


def test_exception_from_message_iterable_delivers_nothing(sink: CaptureServer) -> None:
    def lines() -> Iterator[str]:
        yield "first"
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        smtp_send_message("127.0.0.1", "a@x", ["b@y"], HEADER, lines(), sink.port)
    time.sleep(0.2)
    assert sink.messages == []
    _alive(sink)


def test_keyboard_interrupt_delivers_nothing(sink: CaptureServer) -> None:
    def lines() -> Iterator[str]:
        yield "first"
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        smtp_send_message("127.0.0.1", "a@x", ["b@y"], HEADER, lines(), sink.port)
    time.sleep(0.2)
    assert sink.messages == []
    _alive(sink)


def test_exception_from_hook_delivers_nothing(sink: CaptureServer) -> None:
    def hook() -> None:
        raise RuntimeError("hook says no")

    with smtp_sending_end_of_message.parameterize(hook), pytest.raises(RuntimeError):
        smtp_send_message("127.0.0.1", "a@x", ["b@y"], HEADER, ["x"], sink.port)
    time.sleep(0.2)
    assert sink.messages == []
    _alive(sink)


def test_cancel_from_another_thread_before_hook(sink: CaptureServer) -> None:
    started = threading.Event()
    release = threading.Event()
    handle = CancelHandle()

    def lines() -> Iterator[str]:
        yield "first"
        started.set()
        release.wait(5)  # a slow producer: knows nothing about cancellation
        yield "second"

    def canceller() -> None:
        started.wait(5)
        assert handle.cancel() is True
        release.set()

    t = threading.Thread(target=canceller)
    t.start()
    with pytest.raises(errors.CancelledSend):
        smtp_send_message("127.0.0.1", "a@x", ["b@y"], HEADER, lines(), sink.port, cancel=handle)
    t.join(5)
    time.sleep(0.2)
    assert sink.messages == []
    _alive(sink)


def test_cancel_while_blocked_on_server(sink: CaptureServer) -> None:
    # The server never answers MAIL: cancel() must break the blocked read at once.
    script = [
        ("S", b"220 mx\r\n"),
        ("C", b"EHLO localhost\r\n"),
        ("S", b"250 mx\r\n"),
        ("C", b"MAIL FROM:<a@x>\r\n"),
        ("SLEEP", 3),
    ]
    handle = CancelHandle()
    with ScriptedServer(script) as server, smtp_sending_server.parameterize("localhost"):
        timer = threading.Timer(0.3, handle.cancel)
        timer.start()
        t0 = time.monotonic()
        with pytest.raises(errors.CancelledSend):
            smtp_send_message(
                "127.0.0.1", "a@x", ["b@y"], HEADER, ["x"], server.port, cancel=handle, timeout=10
            )
        assert time.monotonic() - t0 < 2.5
        timer.join()


def test_cancel_after_hook_does_not_cancel(sink: CaptureServer) -> None:
    handle = CancelHandle()
    outcome: list[bool] = []

    def hook() -> None:
        # Still before commit: this cancel wins... so cancel from a later point:
        pass

    original_commit = handle._commit

    def commit() -> None:
        original_commit()
        outcome.append(handle.cancel())

    handle._commit = commit  # type: ignore[method-assign]
    with smtp_sending_end_of_message.parameterize(hook):
        result = smtp_send_message(
            "127.0.0.1", "a@x", ["b@y"], HEADER, ["kept"], sink.port, cancel=handle
        )
    assert outcome == [False]
    assert result.accepted == ["b@y"]
    assert sink.wait_for(1)[0].data.endswith(b"kept\r\n")


def test_asyncio_task_cancel_before_hook(sink: CaptureServer) -> None:
    release = threading.Event()

    def lines() -> Iterator[str]:
        yield "first"
        release.wait(5)
        yield "second"

    async def main() -> None:
        task = asyncio.create_task(
            smtp_send_message_async("127.0.0.1", "a@x", ["b@y"], HEADER, lines(), sink.port)
        )
        await asyncio.sleep(0.3)
        task.cancel()
        # Let the task take the cancellation before the producer goes on.
        await asyncio.sleep(0.2)
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    time.sleep(0.2)
    assert sink.messages == []
    _alive(sink)


def test_asyncio_send_completes(sink: CaptureServer) -> None:
    async def main() -> SendResult:
        return await smtp_send_message_async(
            "127.0.0.1", "a@x", ["b@y"], HEADER, ["async"], sink.port
        )

    assert asyncio.run(main()).accepted == ["b@y"]
    assert sink.wait_for(1)[0].data.endswith(b"async\r\n")


# -- the nine deliberate differences -----------------------------------------------------


def test_fix1_default_ehlo_name_is_valid() -> None:
    script = [("S", b"220 mx\r\n"), ("DRAIN", 1.0)]
    with ScriptedServer(script) as server, pytest.raises(errors.SMTPError):
        smtp_send_message("127.0.0.1", "a@x", ["b@y"], HEADER, [], server.port, timeout=0.5)
    line = server.all_received.split(b"\r\n")[0].decode()
    name = line.removeprefix("EHLO ")
    assert name != "localhost"
    assert re.fullmatch(r"\[127\.0\.0\.1\]|[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+", name), line


def test_fix2_helo_fallback(sink: CaptureServer) -> None:
    script = [
        ("S", b"220 old\r\n"),
        ("C", b"EHLO localhost\r\n"),
        ("S", b"502 what?\r\n"),
        ("C", b"HELO localhost\r\n"),
        ("S", b"250 hi\r\n"),
        *_ok_dialogue()[3:],
        ("C", HEADER.encode() + b"x\r\n.\r\n"),
        ("S", b"250 ok\r\n"),
        ("C", b"QUIT\r\n"),
        ("S", b"221 bye\r\n"),
    ]
    with ScriptedServer(script) as server, smtp_sending_server.parameterize("localhost"):
        smtp_send_message("127.0.0.1", "a@x", ["b@y"], HEADER, ["x"], server.port)
    assert server.errors == []


def test_fix2_helo_fallback_cannot_starttls() -> None:
    script = [
        ("S", b"220 old\r\n"),
        ("C", b"EHLO localhost\r\n"),
        ("S", b"500 what?\r\n"),
        ("C", b"HELO localhost\r\n"),
        ("S", b"250 hi\r\n"),
        ("DRAIN", 2.0),
    ]
    with ScriptedServer(script) as server, smtp_sending_server.parameterize("localhost"):
        with pytest.raises(errors.TLSRequired):
            smtp_send_message(
                "127.0.0.1", "a@x", ["b@y"], HEADER, [], server.port, tls_encode=ports_to_ssl_ports
            )
    assert server.errors == []
    # Nothing more is said in plain text once TLS turned out to be impossible.
    assert server.all_received == b"EHLO localhost\r\nHELO localhost\r\n"


def test_fix3_auth_plain_is_utf8(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext) -> None:
    payload = base64.b64encode("üser\0üser\0pässwörd€".encode()).decode()
    script = [
        ("S", b"220 mx\r\n"),
        ("C", b"EHLO localhost\r\n"),
        ("S", b"250-mx\r\n250 STARTTLS\r\n"),
        ("C", b"STARTTLS\r\n"),
        ("S", b"220 go\r\n"),
        ("TLS",),
        ("C", b"EHLO localhost\r\n"),
        ("S", b"250 AUTH PLAIN\r\n"),
        ("C", f"AUTH PLAIN {payload}\r\n".encode()),
        ("S", b"535 5.7.8 no\r\n"),
        ("C", b"QUIT\r\n"),
        ("S", b"221 bye\r\n"),
    ]
    with (
        ScriptedServer(script, tls_context=server_ctx) as server,
        smtp_sending_server.parameterize("localhost"),
    ):
        with pytest.raises(errors.AuthenticationError) as info:
            smtp_send_message(
                "127.0.0.1",
                "a@x",
                ["b@y"],
                HEADER,
                [],
                server.port,
                auth_user="üser",
                auth_passwd="pässwörd€",
                tls_encode=functools.partial(ports_to_ssl_ports, context=client_ctx),
            )
    assert server.errors == []
    assert info.value.reply.code == 535
    assert "pässwörd" not in str(info.value)


def test_fix3_none_password_is_an_error() -> None:
    with pytest.raises(ValueError, match="auth_passwd"):
        smtp_send_message("127.0.0.1", "a@x", ["b@y"], HEADER, [], 25, auth_user="u")


def test_fix4_any_2xx_and_full_error_replies() -> None:
    script = [
        ("S", b"220 mx\r\n"),
        ("C", b"EHLO localhost\r\n"),
        ("S", b"250 mx\r\n"),
        ("C", b"MAIL FROM:<a@x>\r\n"),
        ("S", b"250 ok\r\n"),
        ("C", b"RCPT TO:<b@y>\r\n"),
        ("S", b"251 will forward\r\n"),
        ("C", b"RCPT TO:<c@z>\r\n"),
        ("S", b"550-5.1.1 no such user\r\n550-5.1.1 really\r\n550 5.1.1 none\r\n"),
        ("C", b"RSET\r\n"),
        ("S", b"250 ok\r\n"),
        ("C", b"QUIT\r\n"),
        ("S", b"221 bye\r\n"),
    ]
    with ScriptedServer(script) as server, smtp_sending_server.parameterize("localhost"):
        with pytest.raises(errors.RecipientsRefused) as info:
            smtp_send_message("127.0.0.1", "a@x", ["b@y", "c@z"], HEADER, ["x"], server.port)
    assert server.errors == []
    err = info.value
    reply = err.refused["c@z"]
    assert reply.code == 550
    assert str(reply.enhanced_status) == "5.1.1"
    assert reply.lines == ("5.1.1 no such user", "5.1.1 really", "5.1.1 none")
    assert "RCPT" in str(err) and "c@z" in str(err) and "really" in str(err)
    assert err.is_permanent


def test_fix4_mail_refused_names_the_command() -> None:
    script = [
        ("S", b"220 mx\r\n"),
        ("C", b"EHLO localhost\r\n"),
        ("S", b"250 mx\r\n"),
        ("C", b"MAIL FROM:<a@x>\r\n"),
        ("S", b"451-4.3.0 busy\r\n451 4.3.0 later\r\n"),
        ("C", b"RSET\r\n"),
        ("S", b"250 ok\r\n"),
        ("C", b"QUIT\r\n"),
        ("S", b"221 bye\r\n"),
    ]
    with ScriptedServer(script) as server, smtp_sending_server.parameterize("localhost"):
        with pytest.raises(errors.SenderRefused, match=r"MAIL failed.*451.*later") as info:
            smtp_send_message("127.0.0.1", "a@x", ["b@y"], HEADER, ["x"], server.port)
    assert info.value.is_transient
    assert server.errors == []


@pytest.mark.parametrize(
    ("from_", "to", "header", "lines", "exc"),
    [
        ("a@x\r\nRCPT TO:<evil@z>", ["b@y"], HEADER, [], ValueError),
        ("a@x", ["b@y\nDATA"], HEADER, [], ValueError),
        ("a@x", ["b@y\0"], HEADER, [], ValueError),
        ("a@x", ["b@y"], "From: a@x\r\n", [], ValueError),
        ("a@x", ["b@y"], "From: a@x\n\n", [], ValueError),
        ("a@x", ["b@y"], "From: a@x\r\nBad\nline: x\r\n\r\n", [], ValueError),
        ("a@x", ["b@y"], HEADER, ["ok", "bad\r\n.\r\nMAIL FROM:<x@y>"], ValueError),
        ("a@x", ["b@y"], HEADER, ["bad\rline"], ValueError),
        ("a@x", ["b@y"], HEADER, [42], TypeError),
        ("a@x", "b@y", HEADER, [], TypeError),
    ],
)
def test_fix5_bad_input_never_reaches_the_wire(
    from_: str, to: list[str], header: str, lines: list[object], exc: type[Exception]
) -> None:
    calls: list[object] = []

    def connect(host: str, port: int) -> object:
        calls.append(host)
        raise AssertionError("must not connect")

    with pytest.raises(exc) as info:
        smtp_send_message(
            "127.0.0.1",
            from_,
            to,
            header,
            lines,
            25,  # type: ignore[arg-type]
            tcp_connect=connect,
        )
    assert calls == []
    assert str(info.value)


def test_fix5_bad_line_mid_stream_aborts_without_dot(sink: CaptureServer) -> None:
    def lines() -> Iterator[str]:
        yield "good"
        yield "bad\r\n.\r\nQUIT"

    with pytest.raises(ValueError, match="CR, LF"):
        smtp_send_message("127.0.0.1", "a@x", ["b@y"], HEADER, lines(), sink.port)
    time.sleep(0.2)
    assert sink.messages == []
    _alive(sink)


def test_fix6_header_dot_stuffed_and_bare_lf_replies() -> None:
    header = "From: a@x\r\n.Weird: header line\r\n\r\n"
    script = [
        ("S", b"220 mx\n"),
        ("C", b"EHLO localhost\r\n"),
        ("S", b"250-mx\n250 8BITMIME\n"),
        ("C", b"MAIL FROM:<a@x>\r\n"),
        ("S", b"250 ok\n"),
        ("C", b"RCPT TO:<b@y>\r\n"),
        ("S", b"250 ok\n"),
        ("C", b"DATA\r\n"),
        ("S", b"354 go\n"),
        ("C", b"From: a@x\r\n..Weird: header line\r\n\r\nbody\r\n.\r\n"),
        ("S", b"250 ok\n"),
        ("C", b"QUIT\r\n"),
        ("S", b"221 bye\n"),
    ]
    with ScriptedServer(script) as server, smtp_sending_server.parameterize("localhost"):
        smtp_send_message("127.0.0.1", "a@x", ["b@y"], header, ["body"], server.port)
    assert server.errors == []


def test_fix7_timeout() -> None:
    script = [("S", b"220 mx\r\n"), ("C", b"EHLO localhost\r\n"), ("SLEEP", 2)]
    with ScriptedServer(script) as server, smtp_sending_server.parameterize("localhost"):
        t0 = time.monotonic()
        with pytest.raises(errors.Timeout, match="EHLO"):
            smtp_send_message("127.0.0.1", "a@x", ["b@y"], HEADER, [], server.port, timeout=0.5)
        assert time.monotonic() - t0 < 1.5


def test_fix8_quit_after_server_error() -> None:
    script = [
        ("S", b"220 mx\r\n"),
        ("C", b"EHLO localhost\r\n"),
        ("S", b"250 mx\r\n"),
        ("C", b"MAIL FROM:<a@x>\r\n"),
        ("S", b"250 ok\r\n"),
        ("C", b"RCPT TO:<b@y>\r\n"),
        ("S", b"250 ok\r\n"),
        ("C", b"DATA\r\n"),
        ("S", b"354 go\r\n"),
        ("C", HEADER.encode() + b"x\r\n.\r\n"),
        ("S", b"554 5.6.0 rejected\r\n"),
        ("C", b"QUIT\r\n"),
        ("S", b"221 bye\r\n"),
    ]
    with ScriptedServer(script) as server, smtp_sending_server.parameterize("localhost"):
        with pytest.raises(errors.DataError, match="end of data"):
            smtp_send_message("127.0.0.1", "a@x", ["b@y"], HEADER, ["x"], server.port)
    assert server.errors == []
    assert server.all_received.endswith(b"QUIT\r\n")


def test_fix8_local_error_in_data_closes_at_once() -> None:
    script = [*_ok_dialogue(), ("DRAIN", 2.0)]

    def lines() -> Iterator[str]:
        yield "x"
        raise LookupError("local")

    with ScriptedServer(script) as server, smtp_sending_server.parameterize("localhost"):
        with pytest.raises(LookupError):
            smtp_send_message("127.0.0.1", "a@x", ["b@y"], HEADER, lines(), server.port)
    sent = server.all_received
    assert b"QUIT" not in sent
    assert not sent.endswith(b".\r\n")


def test_fix9_returns_send_result(sink: CaptureServer) -> None:
    result = smtp_send_message("127.0.0.1", "a@x", ["b@y", "c@z"], HEADER, ["x"], sink.port)
    assert isinstance(result, SendResult)
    assert result.accepted == ["b@y", "c@z"]
    assert result.refused == {}
    assert result.reply.is_positive


def test_plaintext_auth_is_refused_without_opt_in(sink: CaptureServer) -> None:
    with CaptureServer(tls="none", auth={"u": "p"}, auth_require_tls=False) as server:
        with pytest.raises(errors.PlaintextAuthRefused, match="credentials"):
            smtp_send_message(
                "127.0.0.1",
                "a@x",
                ["b@y"],
                HEADER,
                ["x"],
                server.port,
                auth_user="u",
                auth_passwd="p",
            )
        result = smtp_send_message(
            "127.0.0.1",
            "a@x",
            ["b@y"],
            HEADER,
            ["x"],
            server.port,
            auth_user="u",
            auth_passwd="p",
            allow_plaintext_auth=True,
        )
        assert result.accepted == ["b@y"]
        assert server.wait_for(1)[0].auth_user == "u"
