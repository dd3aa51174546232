"""``postwire capture`` as a subprocess; and the top-level command line (help, usage, demo)."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from postwire.client import Client
from test_cli_support import LineReader, assert_no_traceback, cli_env, one_error_line, run_cli

STOP_WAIT = 15.0  # seconds a stopped capture server may take to exit

MESSAGE = (
    b"From: Ada <ada@example.org>\r\n"
    b"To: bob@example.org\r\n"
    b'Subject: captured "quote"\r\n'
    b"\r\n"
    b"hello\r\n"
)


class Running:
    """A ``postwire capture`` subprocess with bounded reads of its output."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        assert proc.stdout is not None and proc.stderr is not None
        self.out = LineReader(proc.stdout)
        self.err = LineReader(proc.stderr)
        first = self.out.next_line()
        m = re.match(r"listening on 127\.0\.0\.1:(\d+) \((.*)\)$", first)
        assert m is not None, first
        self.port = int(m.group(1))
        self.features = m.group(2)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(STOP_WAIT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(STOP_WAIT)
            raise


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Running]]:
    started: list[Running] = []

    def run(*args: str) -> Running:
        proc = subprocess.Popen(
            [sys.executable, "-m", "postwire", "capture", "--port", "0", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=cli_env(tmp_path),
        )
        try:
            running = Running(proc)
        except BaseException:
            proc.kill()
            proc.wait(STOP_WAIT)
            raise
        started.append(running)
        return running

    yield run
    for running in started:
        if running.proc.poll() is None:
            running.proc.kill()
            running.proc.wait(STOP_WAIT)


def test_capture_prints_a_summary_per_message(
    start: Callable[..., Running], tmp_path: Path
) -> None:
    maildir = tmp_path / "Maildir"
    server = start("--tls", "none", "--maildir", str(maildir))
    assert server.features == f"no TLS; Maildir {maildir}"
    with Client("127.0.0.1", server.port, tls="none", timeout=10) as client:
        client.send(MESSAGE, sender="ada@example.org", recipients=["bob@example.org"])
        client.send(MESSAGE, sender="", recipients=["c@example.org", "d@example.org"])
    first = server.out.next_line()
    second = server.out.next_line()
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ from=<ada@example\.org> to=<bob@example\.org> "
        rf'size={len(MESSAGE)} tls=no auth=- subject="captured \\"quote\\""',
        first,
    ), first
    assert "from=<> to=<c@example.org>,<d@example.org>" in second
    assert server.stop() == 0
    assert server.err.rest()[-1] == "stopped; 2 messages captured"
    stored = sorted((maildir / "new").iterdir())
    assert [p.read_bytes() for p in stored] == [MESSAGE, MESSAGE]


def test_capture_with_starttls_and_auth_via_postwire_send(
    start: Callable[..., Running], tmp_path: Path
) -> None:
    server = start("--tls", "starttls", "--auth", "ada:pw-1", "--require-auth")
    assert server.features == "STARTTLS; AUTH ada"
    ca_line = server.out.next_line()
    m = re.match(r"CA certificate: (\S+) ", ca_line)
    assert m is not None, ca_line
    env = cli_env(tmp_path, {"PW": "pw-1"})
    common = ["send", "--server", f"127.0.0.1:{server.port}", "--cafile", m.group(1)]
    message = ["--from", "ada@example.org", "--to", "bob@example.org", "--subject", "over TLS"]
    refused = run_cli([*common, *message], env)  # no AUTH: 530 at MAIL
    assert refused.returncode != 0
    assert "530" in one_error_line(refused)
    done = run_cli([*common, "--user", "ada", "--password-env", "PW", *message], env)
    assert done.returncode == 0, done.stderr
    line = server.out.next_line()
    assert "to=<bob@example.org>" in line and "tls=yes auth=ada" in line
    assert 'subject="over TLS"' in line
    assert server.stop(signal.SIGINT) == 0
    rest = server.err.rest()
    assert rest[-1] == "stopped; 1 message captured"
    assert not any("Traceback" in line for line in rest)


def test_capture_port_in_use(tmp_path: Path) -> None:
    import socket

    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        done = run_cli(["capture", "--port", str(port), "--tls", "none"], cli_env(tmp_path))
    assert done.returncode == 71
    assert f"127.0.0.1:{port}" in one_error_line(done)


def test_capture_bad_auth_option(tmp_path: Path) -> None:
    done = run_cli(["capture", "--auth", "no-colon"], cli_env(tmp_path))
    assert done.returncode == 64
    assert "USER:PASSWORD" in one_error_line(done)


# -- the top-level command line -------------------------------------------------------------


def test_help_documents_exit_codes_and_configuration(tmp_path: Path) -> None:
    done = run_cli(["--help"], cli_env(tmp_path))
    assert done.returncode == 0
    for code in ("64  EX_USAGE", "67  EX_NOUSER", "75  EX_TEMPFAIL", "77  EX_NOPERM"):
        assert code in done.stdout
    assert "POSTWIRE_SERVER" in done.stdout and "config.toml" in done.stdout
    for command in ("send", "sendmail", "probe", "capture", "demo"):
        assert command in done.stdout
    assert done.stdout.count("EX_CONFIG") == 1 and done.stdout.count("$XDG_CONFIG_HOME") == 1
    # Each command's help shows only what applies to it; the shared blocks point back
    # to postwire --help, where they are written once (issue 10, item 11).
    for command in (["send"], ["probe"], ["capture"], ["sendmail"], ["demo"]):
        help_text = run_cli([*command, "--help"], cli_env(tmp_path))
        assert help_text.returncode == 0, command
        assert "EX_CONFIG" not in help_text.stdout and "$XDG_CONFIG_HOME" not in help_text.stdout
    send_help = run_cli(["send", "--help"], cli_env(tmp_path)).stdout
    assert "--password-env" in send_help and "see postwire --help" in send_help
    capture_help = run_cli(["capture", "--help"], cli_env(tmp_path)).stdout
    assert "--password-env" not in capture_help and "--account" not in capture_help
    assert "--tls-fingerprint" not in capture_help
    sendmail_help = run_cli(["sendmail", "--help"], cli_env(tmp_path)).stdout
    assert "-t " in sendmail_help and "see postwire --help" in sendmail_help


@pytest.mark.parametrize("argv", [[], ["nosuchcommand"], ["probe", "--tls", "sometimes"]])
def test_usage_errors_are_64(tmp_path: Path, argv: list[str]) -> None:
    done = run_cli(argv, cli_env(tmp_path))
    assert done.returncode == 64
    one_error_line(done)


def test_demo_still_works(tmp_path: Path) -> None:
    done = run_cli(["demo", "--maildir", str(tmp_path / "demo")], cli_env(tmp_path))
    assert done.returncode == 0, done.stderr
    assert_no_traceback(done)
    assert "accepted: charles@example.org, archive@example.org" in done.stdout
    assert "AUTH PLAIN <redacted>" in done.stdout or "<redacted>" in done.stdout
    assert len(list((tmp_path / "demo" / "new").iterdir())) == 1
