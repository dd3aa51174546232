"""CLI arguments with control characters or option-like recipients: exit 64, nothing sent.

Runs ``postwire.cli.main`` in-process (so Hypothesis can try many inputs quickly)
against a capture server that must receive no message.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from postwire.capture import CaptureServer
from postwire.cli import main

with_control = st.builds(
    lambda a, c, b: a + c + b,
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=10),
    st.sampled_from(["\r", "\n", "\r\n", "\0", "\r\nBcc: eve@example.org"]),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=10),
)


@pytest.fixture(scope="module")
def capture() -> Iterator[CaptureServer]:
    with CaptureServer(tls="none") as server:
        yield server


def _base(port: int) -> list[str]:
    return ["send", "--server", f"127.0.0.1:{port}", "--tls", "none", "--timeout", "5"]


SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@SETTINGS
@given(st.sampled_from(["--subject", "--from", "--to", "--cc"]), with_control)
def test_control_characters_in_arguments(
    capture: CaptureServer, capsys: pytest.CaptureFixture[str], option: str, value: str
) -> None:
    args = {"--from": "ada@example.org", "--to": "bob@example.org", "--subject": "hi"}
    args[option] = value
    argv = [*_base(capture.port), *(x for kv in args.items() for x in kv), "--body", "x"]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 64, err
    assert err.startswith("postwire") and err.count("\n") == 1, err
    assert capture.messages == []


@SETTINGS
@given(st.text(alphabet="abc-=/.@", min_size=1, max_size=12).map(lambda t: "-" + t))
def test_option_like_recipients(
    capture: CaptureServer, capsys: pytest.CaptureFixture[str], rcpt: str
) -> None:
    argv = [
        *_base(capture.port),
        "--from",
        "ada@example.org",
        "--subject",
        "hi",
        "--body",
        "x",
        f"--to={rcpt}",
    ]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 64, err
    assert capture.messages == []
