"""``postwire send`` as a subprocess, against the capture server and the private Postfix."""

from __future__ import annotations

import json
import mailbox
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from postwire.capture import CaptureServer
from servers.postfix import PostfixServer, strip_trace
from test_cli_support import (
    RUN_TIMEOUT,
    DroppingServer,
    assert_no_traceback,
    cli_env,
    one_error_line,
    run_cli,
)

USER, PASSWORD = "ada", "s3cret-Pässword"
RAW = (
    b"From: Ada <ada@example.org>\n"
    b"To: Bob <bob@example.org>\n"
    b"Cc: carol@example.org\n"
    b"Bcc: hidden@example.org,\n"
    b"  also-hidden@example.org\n"
    b"Subject: raw file\n"
    b"\n"
    b".a line starting with a dot\n"
    b"the end\n"
)


@pytest.fixture
def capture() -> Iterator[CaptureServer]:
    with CaptureServer(tls="starttls", auth={USER: PASSWORD}) as server:
        yield server


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return cli_env(tmp_path, {"SMTP_PW": PASSWORD})


def server_args(server: CaptureServer) -> list[str]:
    return ["--server", f"127.0.0.1:{server.port}", "--cafile", str(server.ca_file)]


def auth_args() -> list[str]:
    return ["--user", USER, "--password-env", "SMTP_PW"]


# -- one message ----------------------------------------------------------------------------


def test_built_message_with_attachment(
    capture: CaptureServer, env: dict[str, str], tmp_path: Path
) -> None:
    attachment = tmp_path / "report.pdf"
    attachment.write_bytes(b"%PDF-1.4 not really\n")
    done = run_cli(
        [
            "send",
            *server_args(capture),
            *auth_args(),
            "--from",
            "Ada Lovelace <ada@example.org>",
            "--to",
            "bob@example.org, Carol <carol@example.org>",
            "--bcc",
            "dave@example.org",
            "--subject",
            "Engines ✉",
            "--body",
            "Hello Bob,\n.dot line\n",
            "--attach",
            str(attachment),
        ],
        env,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == (
        "accepted: bob@example.org, carol@example.org, dave@example.org"
    )
    assert "server: 250" in done.stdout
    [msg] = capture.wait_for(1)
    assert msg.mail_from == "ada@example.org"
    assert msg.rcpt_tos == ["bob@example.org", "carol@example.org", "dave@example.org"]
    assert msg.tls and msg.auth_user == USER
    parsed = msg.email()
    assert parsed["Subject"] == "Engines ✉"
    assert parsed["Bcc"] is None and b"dave@" not in msg.data
    assert parsed["Message-ID"].endswith("@example.org>")
    body = parsed.get_body(("plain",))
    assert body is not None
    assert body.get_content().replace("\r\n", "\n") == "Hello Bob,\n.dot line\n"
    [part] = list(parsed.iter_attachments())
    assert part.get_filename() == "report.pdf"
    assert part.get_content_type() == "application/pdf"
    assert part.get_content() == b"%PDF-1.4 not really\n"


def test_raw_file_envelope_from_header_and_bcc_removed(
    capture: CaptureServer, env: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "msg.eml"
    path.write_bytes(RAW)
    done = run_cli(["send", str(path), *server_args(capture), *auth_args(), "--json"], env)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["ok"] is True and result["exit_code"] == 0
    assert result["accepted"] == [
        "bob@example.org",
        "carol@example.org",
        "hidden@example.org",
        "also-hidden@example.org",
    ]
    assert result["refused"] == {}
    assert result["reply"]["code"] == 250
    [msg] = capture.wait_for(1)
    assert msg.mail_from == "ada@example.org"
    # Bcc and its folded line are gone; the rest arrives byte for byte (LF became CRLF).
    expected = RAW.replace(b"Bcc: hidden@example.org,\n  also-hidden@example.org\n", b"")
    assert msg.data == expected.replace(b"\n", b"\r\n")


def test_large_file_is_streamed_byte_exact(
    capture: CaptureServer, env: dict[str, str], tmp_path: Path
) -> None:
    lines = b"".join(b".%07d line of a large message\r\n" % i for i in range(200_000))
    message = b"From: ada@example.org\r\nTo: bob@example.org\r\nSubject: big\r\n\r\n" + lines
    assert len(message) > 6 * 1024 * 1024
    path = tmp_path / "big.eml"
    path.write_bytes(message)
    done = run_cli(["send", str(path), *server_args(capture), *auth_args()], env)
    assert done.returncode == 0, done.stderr
    [msg] = capture.wait_for(1)
    assert msg.data == message


def test_stdin_with_envelope_options(capture: CaptureServer, env: dict[str, str]) -> None:
    done = run_cli(
        [
            "send",
            "-",
            *server_args(capture),
            *auth_args(),
            "--from",
            "bounce@example.org",
            "--to",
            "only@example.org",
        ],
        env,
        stdin=RAW,
    )
    assert done.returncode == 0, done.stderr
    assert "accepted: only@example.org" in done.stdout
    [msg] = capture.wait_for(1)
    assert (msg.mail_from, msg.rcpt_tos) == ("bounce@example.org", ["only@example.org"])
    assert b"Subject: raw file" in msg.data


def test_transcript_redacts_auth(capture: CaptureServer, env: dict[str, str]) -> None:
    done = run_cli(
        [
            "send",
            *server_args(capture),
            *auth_args(),
            "--transcript",
            "--from",
            "ada@example.org",
            "--to",
            "bob@example.org",
            "--subject",
            "t",
            "--body",
            "b",
        ],
        env,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    # Elapsed seconds, a direction and the text: "  0.012 -> EHLO ..."
    assert any(line.split()[1:3] == ["->", "EHLO"] for line in lines), lines
    assert any(line.endswith("** TLS started") for line in lines)
    assert any("** TLSv1." in line and "cipher" in line for line in lines)
    assert any("-> <message content," in line for line in lines)
    assert all(float(line.split()[0]) >= 0 for line in lines)
    text = done.stderr
    assert PASSWORD not in text
    assert "<redacted>" in text
    # No base64 of anything containing the password went out in the transcript.
    import base64

    for line in lines:
        word = line.split()[-1]
        try:
            assert PASSWORD.encode() not in base64.b64decode(word, validate=True)
        except ValueError:
            pass


def test_auth_failure_is_77(capture: CaptureServer, env: dict[str, str]) -> None:
    env["SMTP_PW"] = "wrong"
    done = run_cli(
        [
            "send",
            *server_args(capture),
            *auth_args(),
            "--from",
            "ada@example.org",
            "--to",
            "bob@example.org",
            "--subject",
            "x",
            "--body",
            "y",
        ],
        env,
    )
    assert done.returncode == 77
    assert "535" in one_error_line(done)
    assert capture.messages == []


def test_json_error_output(capture: CaptureServer, env: dict[str, str]) -> None:
    env["SMTP_PW"] = "wrong"
    done = run_cli(
        [
            "send",
            *server_args(capture),
            *auth_args(),
            "--json",
            "--from",
            "ada@example.org",
            "--to",
            "bob@example.org",
            "--subject",
            "x",
        ],
        env,
    )
    assert done.returncode == 77
    data = json.loads(done.stdout)
    assert data["ok"] is False and data["exit_code"] == 77
    assert data["error"]["type"] == "AuthenticationError"
    assert data["error"]["step"] == "AUTH"
    assert data["error"]["reply"]["code"] == 535


# -- bad input: one line, non-zero, nothing sent --------------------------------------------


@pytest.mark.parametrize(
    ("extra", "code", "needle"),
    [
        (["--to", "-oQ/tmp/evil@example.org"], 64, "may not start with '-'"),
        (["--to=-x@example.org"], 64, "may not start with '-'"),
        (["--to", "bob@example.org", "--subject", "x\r\nBcc: evil@example.org"], 64, "line"),
        (["--to", "bob@example.org", "--from", "a@example.org\nX-Evil: 1"], 64, "line"),
        (["--to", "bob@example.org", "--attach", "/nonexistent/file.bin"], 66, "file.bin"),
        (["--to", "bob@example.org", "--bogus-option"], 64, "--bogus-option"),
        (["--to", "bob@example.org", "--timeout", "-1"], 64, "timeout"),
    ],
)
def test_bad_input_sends_nothing(
    capture: CaptureServer, env: dict[str, str], extra: list[str], code: int, needle: str
) -> None:
    base = ["send", *server_args(capture), *auth_args(), "--subject", "s", "--body", "b"]
    if "--from" not in extra:
        base += ["--from", "ada@example.org"]
    done = run_cli([*base, *extra], env)
    assert done.returncode == code, (done.stdout, done.stderr)
    assert needle in one_error_line(done)
    assert capture.messages == []


def test_missing_password_source(capture: CaptureServer, env: dict[str, str]) -> None:
    done = run_cli(
        [
            "send",
            *server_args(capture),
            "--user",
            USER,
            "--from",
            "ada@example.org",
            "--to",
            "bob@example.org",
            "--subject",
            "x",
        ],
        env,
    )
    assert done.returncode == 64
    line = one_error_line(done)
    assert "no password source" in line and "--password-env" in line
    assert capture.messages == []


def test_password_variable_not_set(capture: CaptureServer, env: dict[str, str]) -> None:
    done = run_cli(
        [
            "send",
            *server_args(capture),
            "--user",
            USER,
            "--password-env",
            "NOT_SET_ANYWHERE",
            "--from",
            "ada@example.org",
            "--to",
            "bob@example.org",
            "--subject",
            "x",
        ],
        env,
    )
    assert done.returncode == 78
    assert "NOT_SET_ANYWHERE" in one_error_line(done)


def test_password_file_and_command(
    capture: CaptureServer, env: dict[str, str], tmp_path: Path
) -> None:
    pw_file = tmp_path / "pw"
    pw_file.write_text(PASSWORD + "\nignored second line\n", encoding="utf-8")
    common = ["--from", "ada@example.org", "--to", "bob@example.org", "--subject", "x"]
    by_file = run_cli(
        ["send", *server_args(capture), "--user", USER, "--password-file", str(pw_file), *common],
        env,
    )
    assert by_file.returncode == 0, by_file.stderr
    by_command = run_cli(
        [
            "send",
            *server_args(capture),
            "--user",
            USER,
            "--password-command",
            f"cat '{pw_file}'",
            *common,
        ],
        env,
    )
    assert by_command.returncode == 0, by_command.stderr
    failing = run_cli(
        ["send", *server_args(capture), "--user", USER, "--password-command", "exit 3", *common],
        env,
    )
    assert failing.returncode == 78
    assert "status 3" in one_error_line(failing)
    assert len(capture.wait_for(2)) == 2


def test_unreadable_message_file(capture: CaptureServer, env: dict[str, str]) -> None:
    done = run_cli(["send", "/nonexistent/message.eml", *server_args(capture)], env)
    assert done.returncode == 66
    assert "/nonexistent/message.eml" in one_error_line(done)


def test_message_without_recipients(
    capture: CaptureServer, env: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "norcpt.eml"
    path.write_bytes(b"From: ada@example.org\nSubject: nobody\n\nbody\n")
    done = run_cli(["send", str(path), *server_args(capture), *auth_args()], env)
    assert done.returncode == 65
    assert "no recipients" in one_error_line(done)


def test_no_server_is_a_config_error(env: dict[str, str]) -> None:
    done = run_cli(
        ["send", "--from", "a@example.org", "--to", "b@example.org", "--subject", "x"], env
    )
    assert done.returncode == 78
    assert "no server" in one_error_line(done)


def test_connection_refused_is_69(env: dict[str, str]) -> None:
    import socket

    with socket.create_server(("127.0.0.1", 0)) as sock:
        port = sock.getsockname()[1]  # closed when the block ends: nothing listens there
    done = run_cli(
        [
            "send",
            "--server",
            f"127.0.0.1:{port}",
            "--tls",
            "none",
            "--from",
            "a@example.org",
            "--to",
            "b@example.org",
            "--subject",
            "x",
        ],
        env,
    )
    assert done.returncode == 69
    assert "cannot connect" in one_error_line(done)


# -- the wrong --tls mode for the port ------------------------------------------------------


def test_implicit_tls_to_a_starttls_port(capture: CaptureServer, env: dict[str, str]) -> None:
    done = run_cli(
        [
            "send",
            *server_args(capture),
            "--tls",
            "implicit",
            "--from",
            "a@example.org",
            "--to",
            "b@example.org",
            "--subject",
            "x",
        ],
        env,
    )
    assert done.returncode == 76
    line = one_error_line(done)
    assert "answered in plain text" in line and "--tls starttls" in line
    assert "tls='" not in line  # the CLI names its option, not the library argument


def test_starttls_to_an_implicit_tls_port(env: dict[str, str]) -> None:
    with CaptureServer(tls="implicit") as server:
        done = run_cli(
            [
                "send",
                *server_args(server),
                "--tls",
                "starttls",
                "--timeout",
                "1",
                "--from",
                "a@example.org",
                "--to",
                "b@example.org",
                "--subject",
                "x",
            ],
            env,
            timeout=30,
        )
        assert server.messages == []
    assert done.returncode == 75
    line = one_error_line(done)
    assert "greeting" in line and "--tls implicit" in line


# -- Postfix -------------------------------------------------------------------------------


def postfix_args(postfix: PostfixServer, tmp_path: Path) -> list[str]:
    pw = tmp_path / "alice.pw"
    pw.write_text(postfix.users["alice@test.example"] + "\n", encoding="utf-8")
    return [
        "--server",
        f"127.0.0.1:{postfix.submission_port}",
        "--cafile",
        str(postfix.ca_file),
        "--user",
        "alice@test.example",
        "--password-file",
        str(pw),
    ]


def test_postfix_partial_refusal_is_67(
    postfix_inbox: PostfixServer, env: dict[str, str], tmp_path: Path
) -> None:
    done = run_cli(
        [
            "send",
            *postfix_args(postfix_inbox, tmp_path),
            "--from",
            "sender@client.example",
            "--to",
            "alice@test.example",
            "--to",
            postfix_inbox.rejected_recipient,
            "--subject",
            "partial",
            "--body",
            "to Postfix\n",
        ],
        env,
    )
    assert done.returncode == 67, done.stderr
    assert "accepted: alice@test.example" in done.stdout
    assert f"refused: {postfix_inbox.rejected_recipient}: 550" in done.stdout
    [raw] = postfix_inbox.wait_for_messages(1)
    delivered = strip_trace(raw)
    assert b"Subject: partial\r\n" in delivered
    assert delivered.endswith(b"\r\n\r\nto Postfix\r\n")


def test_postfix_tempfail_is_75(
    postfix_inbox: PostfixServer, env: dict[str, str], tmp_path: Path
) -> None:
    done = run_cli(
        [
            "send",
            *postfix_args(postfix_inbox, tmp_path),
            "--json",
            "--from",
            "s@client.example",
            "--to",
            postfix_inbox.tempfail_recipient,
            "--subject",
            "later",
        ],
        env,
    )
    assert done.returncode == 75, done.stderr
    data = json.loads(done.stdout)
    assert data["error"]["type"] == "RecipientsRefused"
    assert data["error"]["reply"]["code"] == 450


def test_postfix_raw_file_arrives_byte_exact(
    postfix_inbox: PostfixServer, env: dict[str, str], tmp_path: Path
) -> None:
    message = (
        b"From: Sender <sender@client.example>\r\n"
        b"To: Alice <alice@test.example>\r\n"
        b"Subject: byte exact via CLI\r\n"
        b"Message-ID: <cli-exact@client.example>\r\n"
        b"\r\n"
        b".leading dot\r\n"
        b".\r\n"
        b"last\r\n"
    )
    path = tmp_path / "exact.eml"
    path.write_bytes(message)
    done = run_cli(["send", str(path), *postfix_args(postfix_inbox, tmp_path)], env)
    assert done.returncode == 0, done.stderr
    [raw] = postfix_inbox.wait_for_messages(1)
    assert strip_trace(raw) == message


# -- many messages --------------------------------------------------------------------------


def write_eml_folder(folder: Path, count: int) -> None:
    folder.mkdir()
    for i in range(count):
        text = f"From: ada@example.org\nTo: n{i}@example.org\nSubject: batch {i}\n\nbody {i}\n"
        (folder / f"{i:02d}.eml").write_bytes(text.encode())
    (folder / "notes.txt").write_text("not a message\n", encoding="utf-8")


def test_many_from_folder_one_connection(
    capture: CaptureServer, env: dict[str, str], tmp_path: Path
) -> None:
    write_eml_folder(tmp_path / "batch", 5)
    done = run_cli(
        ["send", "--many", str(tmp_path / "batch"), *server_args(capture), *auth_args(), "--json"],
        env,
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert (data["delivered"], data["failed"]) == (5, 0)
    assert [m["message"] for m in data["messages"]] == [f"{i:02d}.eml" for i in range(5)]
    got = capture.wait_for(5)
    assert [m.subject for m in got] == [f"batch {i}" for i in range(5)]
    # One connection: the same client port for every message.
    assert len({m.peer for m in got}) == 1
    assert "\r[" not in done.stderr  # no progress bar when stderr is not a terminal


def test_many_from_mbox_with_a_bad_message(
    capture: CaptureServer, env: dict[str, str], tmp_path: Path
) -> None:
    box = mailbox.mbox(tmp_path / "box.mbox")
    box.add(b"From: ada@example.org\nTo: one@example.org\nSubject: m1\n\nfirst\n")
    box.add(b"From: ada@example.org\nTo: -evil@example.org\nSubject: m2\n\nbad\n")
    box.add(b"From: ada@example.org\nTo: three@example.org\nSubject: m3\n\nthird\n")
    box.close()
    done = run_cli(
        ["send", "--many", str(tmp_path / "box.mbox"), *server_args(capture), *auth_args()], env
    )
    assert done.returncode == 65
    assert done.stdout.strip() == "delivered 2 of 3 messages, 1 failed"
    assert "box.mbox#2" in done.stderr and "may not start with '-'" in done.stderr
    assert_no_traceback(done)
    assert [m.subject for m in capture.wait_for(2)] == ["m1", "m3"]


def test_many_reconnects_after_a_dropped_connection(env: dict[str, str], tmp_path: Path) -> None:
    write_eml_folder(tmp_path / "batch", 3)
    with DroppingServer() as server:
        done = run_cli(
            [
                "send",
                "--many",
                str(tmp_path / "batch"),
                "--server",
                f"127.0.0.1:{server.port}",
                "--tls",
                "none",
                "--timeout",
                "10",
            ],
            env,
        )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "delivered 3 of 3 messages, 0 failed"
    assert len(server.messages) == 3
    assert server.connections == 3
    assert done.stderr.count("reconnecting") == 2


def test_many_unreadable_path(env: dict[str, str]) -> None:
    done = run_cli(["send", "--many", "/nonexistent/box", "--server", "127.0.0.1:1"], env)
    assert done.returncode == 66
    assert "/nonexistent/box" in one_error_line(done)


def test_many_progress_bar_on_a_terminal(
    capture: CaptureServer, env: dict[str, str], tmp_path: Path
) -> None:
    write_eml_folder(tmp_path / "batch", 4)
    master, slave = os.openpty()
    chunks: list[bytes] = []

    def pump() -> None:
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO once every writer of the terminal is gone
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "postwire",
                "send",
                "--many",
                str(tmp_path / "batch"),
                *server_args(capture),
                *auth_args(),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=slave,
            env=env,
            timeout=RUN_TIMEOUT,
        )
    finally:
        os.close(slave)
        reader.join(10)
        os.close(master)
    assert proc.returncode == 0
    shown = b"".join(chunks).decode("utf-8", "replace")
    assert "\r[" in shown and "] 4/4  delivered 4  failed 0" in shown
    assert "#" * 30 in shown
    assert proc.stdout.decode().strip() == "delivered 4 of 4 messages, 0 failed"


def test_many_stops_trying_when_it_cannot_connect(env: dict[str, str], tmp_path: Path) -> None:
    import socket

    write_eml_folder(tmp_path / "batch", 3)
    with socket.create_server(("127.0.0.1", 0)) as sock:
        port = sock.getsockname()[1]  # nothing listens there once the block ends
    done = run_cli(
        [
            "send",
            "--many",
            str(tmp_path / "batch"),
            "--server",
            f"127.0.0.1:{port}",
            "--tls",
            "none",
            "--json",
        ],
        env,
    )
    assert done.returncode == 69
    data = json.loads(done.stdout)
    assert (data["delivered"], data["failed"]) == (0, 3)
    assert {m["error"]["type"] for m in data["messages"]} == {"ConnectError"}
    assert_no_traceback(done)
    assert done.stderr.splitlines()[-1] == "postwire: 2 more messages not sent: cannot connect"


# -- certificate pinning (issue 10, item 8) -------------------------------------------------


def test_tls_fingerprint_pins_a_server_without_its_ca(
    capture: CaptureServer, env: dict[str, str]
) -> None:
    import hashlib

    from postwire import Client

    with Client("127.0.0.1", capture.port, cafile=capture.ca_file) as client:
        info = client.tls_info()
    assert info is not None and isinstance(info["peercert_der"], bytes)
    pin = hashlib.sha256(info["peercert_der"]).hexdigest()
    colons = ":".join(pin[i : i + 2] for i in range(0, 64, 2)).upper()
    server = ["--server", f"127.0.0.1:{capture.port}"]
    message = ["--from", "a@example.org", "--to", "b@example.org", "--subject", "pinned"]
    done = run_cli(["send", *server, "--tls-fingerprint", colons, *auth_args(), *message], env)
    assert done.returncode == 0, done.stderr
    assert capture.wait_for(1)[0].tls
    wrong = run_cli(["send", *server, "--tls-fingerprint", "ab" * 32, *auth_args(), *message], env)
    assert wrong.returncode != 0 and "fingerprint" in wrong.stderr
    bad = run_cli(["send", *server, "--tls-fingerprint", "xyz", *message], env)
    assert bad.returncode == 64 and "64 hex digits" in bad.stderr
    assert len(capture.messages) == 1


def test_tls_fingerprint_from_the_config_file(
    capture: CaptureServer, env: dict[str, str], tmp_path: Path
) -> None:
    import hashlib

    from postwire import Client

    with Client("127.0.0.1", capture.port, cafile=capture.ca_file) as client:
        info = client.tls_info()
    assert info is not None and isinstance(info["peercert_der"], bytes)
    pin = hashlib.sha256(info["peercert_der"]).hexdigest()
    config = tmp_path / "pinned.toml"
    config.write_text(
        f'[accounts.a]\nserver = "127.0.0.1:{capture.port}"\ntls_fingerprint = "{pin}"\n'
        f'user = "{USER}"\npassword_env = "SMTP_PW"\n'
    )
    done = run_cli(
        ["send", "--config", str(config), "--from", "a@x.org", "--to", "b@x.org", "--subject", "p"],
        env,
    )
    assert done.returncode == 0, done.stderr
    assert capture.wait_for(1)[0].auth_user == USER
