"""Dot-stuffing and line endings, whole and chunk by chunk (RFC 5321 §4.5.2, §2.3.8)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from postwire._core.encoding import DotStuffer, LineNormalizer, normalize_line_endings


def stuff(data: bytes, cuts: list[int] | None = None) -> bytes:
    enc = DotStuffer()
    out = b""
    if cuts is None:
        out += enc.feed(data)
    else:
        prev = 0
        for cut in [*sorted(set(cuts)), len(data)]:
            out += enc.feed(data[prev:cut])
            prev = cut
    return out + enc.finish()


@pytest.mark.parametrize(
    ("content", "wire"),
    [
        (b"", b".\r\n"),
        (b"a\r\n", b"a\r\n.\r\n"),
        (b"a", b"a\r\n.\r\n"),
        (b".\r\n", b"..\r\n.\r\n"),
        (b".a\r\n..b\r\nc.\r\n", b"..a\r\n...b\r\nc.\r\n.\r\n"),
        (b"a\nb\n", b"a\r\nb\r\n.\r\n"),
        (b"a\rb\r", b"a\r\nb\r\n.\r\n"),
        # SMTP smuggling: <LF>.<CR><LF> must not end the data early
        (b"x\n.\r\nMAIL FROM:<evil>\r\n", b"x\r\n..\r\nMAIL FROM:<evil>\r\n.\r\n"),
        (b"x\r.\r\n", b"x\r\n..\r\n.\r\n"),
    ],
)
def test_examples(content: bytes, wire: bytes) -> None:
    assert stuff(content) == wire
    assert stuff(content, list(range(len(content)))) == wire


def _reference(data: bytes) -> bytes:
    lines = normalize_line_endings(data).split(b"\r\n")
    if lines and lines[-1] == b"":
        lines.pop()
    out = b"".join((b"." + ln if ln.startswith(b".") else ln) + b"\r\n" for ln in lines)
    return out + b".\r\n"


@settings(max_examples=400, deadline=None)
@given(
    st.binary(max_size=200).map(lambda b: b.replace(b"x", b".").replace(b"y", b"\r")),
    st.lists(st.integers(min_value=0, max_value=200), max_size=10),
)
def test_chunking_never_changes_the_output(data: bytes, cuts: list[int]) -> None:
    cuts = [c for c in cuts if c <= len(data)]
    wire = stuff(data, cuts)
    assert wire == stuff(data) == _reference(data)
    body = wire[:-3]
    # no bare CR or LF, and the only "." line is the terminator
    assert body.replace(b"\r\n", b"").count(b"\r") == 0
    assert body.replace(b"\r\n", b"").count(b"\n") == 0
    assert b"\r\n.\r\n" not in b"\r\n" + body


@given(st.binary(max_size=100), st.integers(min_value=1, max_value=7))
def test_line_normalizer_chunked(data: bytes, step: int) -> None:
    norm = LineNormalizer()
    out = b"".join(norm.feed(data[i : i + step]) for i in range(0, len(data), step))
    assert out + norm.finish() == normalize_line_endings(data)


def test_constant_state() -> None:
    enc = DotStuffer()
    for _ in range(1000):
        enc.feed(b"line\r\n" * 100)
    assert enc.bytes_in == 600_000
    assert enc.finish() == b".\r\n"
