"""Fuzzing the parsers that read what a server sends: Hypothesis, and atheris for a bounded time."""

from __future__ import annotations

import importlib.util
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from postwire import Reply
from postwire._core.errors import ReplySyntaxError
from postwire._core.extensions import Extensions
from postwire._core.reply_parser import ReplyParser

HARNESS = Path(__file__).parent / "fuzz" / "fuzz_parsers.py"

ehlo_lines = st.lists(
    st.one_of(
        st.text(max_size=40),
        st.sampled_from(
            [
                "SIZE",
                "SIZE 0",
                "SIZE x",
                "AUTH",
                "AUTH=LOGIN",
                "auth plain",
                "PIPELINING",
                "",
                " ",
                "8BITMIME",
                "STARTTLS ",
            ]
        ),
    ),
    max_size=12,
)


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=30), ehlo_lines)
def test_extension_parser_accepts_any_reply(first: str, lines: list[str]) -> None:
    ext = Extensions.from_reply(Reply(250, (first, *lines)))
    size = ext.max_size
    assert size is None or size >= 0
    assert all(m == m.upper() for m in ext.auth_mechanisms)
    assert all(k == k.upper() for k in ext.keywords)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=20))
def test_parser_chunks_then_extensions(chunks: list[bytes]) -> None:
    parser = ReplyParser(max_line_length=256, max_reply_size=2048)
    try:
        for chunk in chunks:
            parser.feed(chunk)
            while (reply := parser.next_reply()) is not None:
                Extensions.from_reply(reply)
                assert 200 <= reply.code <= 599
    except ReplySyntaxError:
        pass


# atheris ships wheels for Linux x86_64 on CPython < 3.13; there it is a test
# dependency, so this runs in CI rather than being skipped.
ATHERIS_EXPECTED = (
    sys.platform == "linux" and platform.machine() == "x86_64" and sys.version_info < (3, 13)
)


@pytest.mark.skipif(
    not ATHERIS_EXPECTED and importlib.util.find_spec("atheris") is None,
    reason="atheris has no build for this platform",
)
def test_atheris_bounded_run(tmp_path: Path) -> None:
    seconds = os.environ.get("POSTWIRE_FUZZ_SECONDS", "15")
    proc = subprocess.run(
        [
            sys.executable,
            str(HARNESS),
            f"-max_total_time={seconds}",
            "-rss_limit_mb=2048",
            f"-artifact_prefix={tmp_path}/",
        ],
        capture_output=True,
        text=True,
        timeout=int(seconds) + 60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Done" in proc.stderr or "DONE" in proc.stderr, proc.stderr[-2000:]
