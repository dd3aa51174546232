"""The incremental reply parser: fed whole, one byte at a time, and with trailing data."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from postwire import Reply
from postwire._core.errors import ReplySyntaxError
from postwire._core.reply import EnhancedStatus
from postwire._core.reply_parser import ReplyParser


def parse_all(data: bytes, *, step: int | None = None, **kw: int) -> list[Reply]:
    parser = ReplyParser(**kw)
    out: list[Reply] = []
    chunks = [data] if step is None else [data[i : i + step] for i in range(0, len(data), step)]
    for chunk in chunks:
        parser.feed(chunk)
        while (reply := parser.next_reply()) is not None:
            out.append(reply)
    return out


CASES = [
    (b"220 mx ESMTP ready\r\n", [Reply(220, ("mx ESMTP ready",))]),
    (
        b"250-mx.example\r\n250-PIPELINING\r\n250 8BITMIME\r\n",
        [Reply(250, ("mx.example", "PIPELINING", "8BITMIME"))],
    ),
    # bare LF line endings are tolerated
    (b"250-a\n250 b\n", [Reply(250, ("a", "b"))]),
    # the empty keyword line of smtp-sink
    (b"250-x\r\n250 \r\n", [Reply(250, ("x", ""))]),
    # a bare code ends a reply (Racket crashed on it)
    (b"250\r\n", [Reply(250, ("",))]),
    (
        b"550-5.1.1 no such user\r\n550 5.1.1 really\r\n",
        [Reply(550, ("5.1.1 no such user", "5.1.1 really"), EnhancedStatus(5, 1, 1))],
    ),
    # 8-bit text never crashes
    (b"250 caf\xc3\xa9 \xff\r\n", [Reply(250, ("café \ufffd",))]),
    (b"250 a\r\n354 b\r\n", [Reply(250, ("a",)), Reply(354, ("b",))]),
]


@pytest.mark.parametrize(("data", "expected"), CASES)
def test_whole(data: bytes, expected: list[Reply]) -> None:
    assert parse_all(data) == expected


@pytest.mark.parametrize(("data", "expected"), CASES)
def test_byte_by_byte(data: bytes, expected: list[Reply]) -> None:
    assert parse_all(data, step=1) == expected


@pytest.mark.parametrize(("data", "expected"), CASES)
def test_trailing_data(data: bytes, expected: list[Reply]) -> None:
    parser = ReplyParser()
    parser.feed(data + b"250-partial")
    got = []
    while (reply := parser.next_reply()) is not None:
        got.append(reply)
    assert got == expected
    assert parser.buffered == len(b"250-partial")


def test_enhanced_status_and_message() -> None:
    [r] = parse_all(b"451 4.3.0 try later\r\n")
    assert r.enhanced_status == EnhancedStatus(4, 3, 0)
    assert str(r.enhanced_status) == "4.3.0"
    assert r.message == "try later"
    assert r.is_transient and not r.is_permanent and not r.is_positive
    # class must match the code's first digit
    [r] = parse_all(b"250 5.1.1 odd\r\n")
    assert r.enhanced_status is None


@pytest.mark.parametrize(
    "data",
    [
        b"hello\r\n",
        b"25\r\n",
        b"2500 x\r\n",
        b"250x\r\n",
        b"999 x\r\n",
        b"250-a\r\n251 b\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\r\n",
    ],
)
def test_garbage_is_an_error(data: bytes) -> None:
    with pytest.raises(ReplySyntaxError):
        parse_all(data)


def test_line_length_cap_without_newline() -> None:
    parser = ReplyParser(max_line_length=100)
    parser.feed(b"250 " + b"x" * 200)
    with pytest.raises(ReplySyntaxError, match="longer than 100"):
        parser.next_reply()


def test_reply_size_cap() -> None:
    data = b"".join(b"250-" + b"x" * 50 + b"\r\n" for _ in range(100)) + b"250 end\r\n"
    with pytest.raises(ReplySyntaxError, match="reply longer"):
        parse_all(data, max_reply_size=1000)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.integers(min_value=1, max_value=17))
def test_never_crashes_and_chunking_does_not_matter(data: bytes, step: int) -> None:
    try:
        whole = parse_all(data)
    except ReplySyntaxError:
        with pytest.raises(ReplySyntaxError):
            parse_all(data, step=step)
        return
    assert parse_all(data, step=step) == whole
