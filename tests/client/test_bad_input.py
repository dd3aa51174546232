"""Bad input at every public entry point: a clear ValueError/TypeError and nothing on the wire.

Hypothesis drives addresses, ESMTP parameters, header strings and message
lines with control characters through Client, AsyncClient and the Racket
layer; the server (a capture server) must never see a command for them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from postwire import AsyncClient, Client
from postwire.capture import CaptureServer
from postwire.smtp import smtp_send_message

CONTROLS = "\r\n\0\x1b\x7f\t\x0b"

bad_text = st.builds(
    lambda a, c, b: a + c + b,
    st.text(max_size=12),
    st.sampled_from([*CONTROLS, "\r\n", "\n.\r\n", "\r\nRCPT TO:<x@y>\r\n"]),
    st.text(max_size=12),
)


# In message content only CR, LF (as line breaks inside a line) and NUL are bad:
# TAB and other controls are legal text.
bad_line = st.builds(
    lambda a, c, b: a + c + b,
    st.text(max_size=12),
    st.sampled_from(["\r", "\n", "\0", "\r\n", "\n.\r\n"]),
    st.text(max_size=12),
)


@pytest.fixture(scope="module")
def capture() -> Iterator[CaptureServer]:
    with CaptureServer(tls="none") as server:
        yield server


@pytest.fixture(scope="module")
def client(capture: CaptureServer) -> Iterator[tuple[Client, list[str]]]:
    lines: list[str] = []
    with Client("127.0.0.1", capture.port, tls="none", transcript=lines.append, timeout=5) as c:
        yield c, lines


def _no_new_commands(lines: list[str], before: int) -> None:
    sent = [line for line in lines[before:] if " -> " in line]
    assert sent == [], sent


SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@SETTINGS
@given(bad_text)
def test_bad_sender(client: tuple[Client, list[str]], sender: str) -> None:
    c, lines = client
    before = len(lines)
    with pytest.raises(ValueError) as info:
        c.send(b"x\r\n", sender=sender, recipients=["b@y"])
    assert "sender" in str(info.value)
    _no_new_commands(lines, before)
    assert c.connected


@SETTINGS
@given(bad_text, st.lists(st.just("ok@y"), max_size=3))
def test_bad_recipient(client: tuple[Client, list[str]], bad: str, good: list[str]) -> None:
    c, lines = client
    before = len(lines)
    with pytest.raises(ValueError, match="recipient"):
        c.send(b"x\r\n", sender="a@x", recipients=[*good, bad])
    _no_new_commands(lines, before)


@SETTINGS
@given(st.sampled_from(["mail", "rcpt"]), st.text(min_size=1, max_size=8), bad_text)
def test_bad_esmtp_parameters(
    client: tuple[Client, list[str]], where: str, key: str, value: str
) -> None:
    c, lines = client
    before = len(lines)
    options = {f"X{key}" if key.isalnum() and key.isascii() else key: value}
    kwargs = {"mail_options": options} if where == "mail" else {"rcpt_options": options}
    with pytest.raises(ValueError, match="ESMTP parameter"):
        c.send(b"x\r\n", sender="a@x", recipients=["b@y"], **kwargs)  # type: ignore[arg-type]
    _no_new_commands(lines, before)


def test_async_client_bad_input(capture: CaptureServer) -> None:
    async def main() -> None:
        lines: list[str] = []
        async with AsyncClient("127.0.0.1", capture.port, tls="none", transcript=lines.append) as c:
            before = len(lines)
            for sender, rcpts in [("a\r\n@x", ["b@y"]), ("a@x", ["b@y\n"]), ("a@x", [])]:
                with pytest.raises(ValueError):
                    await c.send(b"x\r\n", sender=sender, recipients=rcpts)
            with pytest.raises(TypeError):
                await c.send("text", sender="a@x", recipients=["b@y"])
            _no_new_commands(lines, before)

    asyncio.run(main())


def _refuse_connect(host: str, port: int) -> object:
    raise AssertionError("bad input must be refused before connecting")


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        bad_text.map(lambda t: ("from", t)),
        bad_text.map(lambda t: ("to", t)),
        bad_line.map(lambda t: ("line", t)),
        st.text(max_size=30)
        .filter(lambda h: not h.endswith("\r\n\r\n"))
        .map(lambda t: ("header", t)),
    )
)
def test_racket_layer_refuses_before_connecting(case: tuple[str, str]) -> None:
    kind, value = case
    args = {"from": "a@x", "to": ["b@y"], "header": "Subject: x\r\n\r\n", "lines": ["ok"]}
    if kind == "from":
        args["from"] = value
    elif kind == "to":
        args["to"] = ["ok@y", value]
    elif kind == "line":
        args["lines"] = ["ok", value]
    else:
        if value == "\r\n":  # the empty header is valid
            return
        args["header"] = value
    with pytest.raises((ValueError, TypeError)) as info:
        smtp_send_message(
            "127.0.0.1",
            args["from"],
            args["to"],
            args["header"],  # type: ignore[arg-type]
            args["lines"],
            25,
            tcp_connect=_refuse_connect,
        )
    assert str(info.value)
