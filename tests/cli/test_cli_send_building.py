"""``postwire send``: HTML, header fields, Reply-To; --many from a Maildir (issue 10, item 9)."""

from __future__ import annotations

import json
import mailbox
from collections.abc import Iterator
from pathlib import Path

import pytest

from postwire import Client
from postwire.capture import CaptureServer
from test_cli_support import cli_env, one_error_line, run_cli

BUILT = ["--from", "Ada <ada@example.org>", "--to", "bob@example.org", "--subject", "hi"]


@pytest.fixture
def capture() -> Iterator[CaptureServer]:
    with CaptureServer(tls="none") as server:
        yield server


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return cli_env(tmp_path)


def _server(server: CaptureServer) -> list[str]:
    return ["--server", f"127.0.0.1:{server.port}", "--tls", "none"]


def test_html_alternative_header_and_reply_to(capture: CaptureServer, env: dict[str, str]) -> None:
    html = "<p>Hello <b>Bob</b></p>"
    done = run_cli(
        [
            "send", *_server(capture), *BUILT, "--body", "Hello Bob\n", "--html", html,
            "--header", "X-Campaign: spring", "--header", "List-Unsubscribe:<mailto:u@x.org>",
            "--reply-to", "Support <help@example.org>",
        ],
        env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    parsed = capture.wait_for(1)[0].email()
    assert parsed.get_content_type() == "multipart/alternative"
    plain, rich = parsed.get_body(("plain",)), parsed.get_body(("html",))
    assert plain is not None and plain.get_content().strip() == "Hello Bob"
    assert rich is not None and rich.get_content().strip() == html
    assert parsed["X-Campaign"] == "spring"
    assert parsed["List-Unsubscribe"] == "<mailto:u@x.org>"
    assert parsed["Reply-To"] == "Support <help@example.org>"


def test_html_from_a_file_alone_gets_a_plain_text_part(
    capture: CaptureServer, env: dict[str, str], tmp_path: Path
) -> None:
    page = tmp_path / "mail.html"
    page.write_text(
        "<html><head><style>p{color:red}</style></head>"
        "<body><h1>News</h1><p>Line one</p><p>Line &amp; two</p></body></html>",
        encoding="utf-8",
    )
    attachment = tmp_path / "a.txt"
    attachment.write_text("attached\n")
    done = run_cli(
        ["send", *_server(capture), *BUILT, "--html-file", str(page), "--attach", str(attachment)],
        env,
    )
    assert done.returncode == 0, done.stderr
    parsed = capture.wait_for(1)[0].email()
    assert parsed.get_content_type() == "multipart/mixed"
    plain = parsed.get_body(("plain",))
    assert plain is not None
    assert plain.get_content().split() == ["News", "Line", "one", "Line", "&", "two"]
    assert "color" not in plain.get_content()
    assert [p.get_filename() for p in parsed.iter_attachments()] == ["a.txt"]


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("no colon", "expected NAME:VALUE"),
        ("Bad Name: x", "expected NAME:VALUE"),
        ("Subject: twice", "set by its own option"),
        ("X-Injected: a\r\nBcc: evil@example.org", "line breaks"),
    ],
)
def test_bad_header_options_send_nothing(
    capture: CaptureServer, env: dict[str, str], header: str, message: str
) -> None:
    done = run_cli(["send", *_server(capture), *BUILT, "--body", "x", "--header", header], env)
    assert done.returncode == 64
    assert message in one_error_line(done)
    assert capture.messages == []


def test_building_options_do_not_mix_with_a_file(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "m.eml").write_bytes(b"Subject: x\n\nx\n")
    done = run_cli(["send", str(tmp_path / "m.eml"), "--html", "<p>x</p>"], env)
    assert done.returncode == 64 and "not both" in one_error_line(done)


def test_many_reads_the_capture_servers_own_maildir(env: dict[str, str], tmp_path: Path) -> None:
    maildir = tmp_path / "captured"
    with CaptureServer(tls="none", maildir=maildir) as first:
        with Client("127.0.0.1", first.port, tls="none") as client:
            for i in range(4):
                data = f"From: a@example.org\r\nTo: b@example.org\r\nSubject: kept {i}\r\n\r\nx\r\n"
                client.send(data.encode(), sender="a@example.org", recipients=["b@example.org"])
        first.wait_for(4)
    with CaptureServer(tls="none") as second:
        done = run_cli(["send", "--many", str(maildir), *_server(second), "--json"], env)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["delivered"] == 4
        assert sorted(m.subject for m in second.wait_for(4)) == [f"kept {i}" for i in range(4)]


def test_many_undoes_mbox_from_quoting(
    capture: CaptureServer, env: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "quoted.mbox"
    path.write_bytes(
        b"From ada@example.org Mon Jan  1 00:00:00 2024\n"
        b"From: ada@example.org\nTo: bob@example.org\nSubject: quoted\n\n"
        b">From the start of a line\n>>From twice quoted\nplain line\n\n"
    )
    done = run_cli(["send", "--many", str(path), *_server(capture)], env)
    assert done.returncode == 0, done.stderr
    body = capture.wait_for(1)[0].data.split(b"\r\n\r\n", 1)[1]
    assert body.startswith(b"From the start of a line\r\n>From twice quoted\r\nplain line\r\n")
    assert mailbox.mbox(path).get_bytes(next(iter(mailbox.mbox(path).keys())))  # still an mbox


@pytest.mark.parametrize("kind", ["empty folder", "empty maildir", "text file", "empty file"])
def test_many_says_what_it_reads_when_it_finds_nothing(
    env: dict[str, str], tmp_path: Path, kind: str
) -> None:
    path = tmp_path / "input"
    if kind == "empty folder":
        path.mkdir()
        (path / "notes.txt").write_text("x\n")
    elif kind == "empty maildir":
        for sub in ("cur", "new", "tmp"):
            (path / sub).mkdir(parents=True)
    else:
        path.write_text("" if kind == "empty file" else "just text\n")
    done = run_cli(["send", "--many", str(path), "--server", "127.0.0.1:1"], env)
    line = one_error_line(done)
    assert done.returncode in (65, 66)
    assert "a Maildir" in line and ".eml" in line and "mbox" in line
