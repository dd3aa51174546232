"""``postwire capture`` as a subprocess; and the top-level command line (help, usage, demo)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

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
    """A ``postwire capture`` subprocess with bounded reads of its output.

    The lines it prints at start (up to the web UI's address) are read at once: ``ca_file``,
    ``fingerprint`` and ``web_url`` come from them.
    """

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
        self.ca_file: str | None = None
        self.fingerprint: str | None = None
        self.header: list[str] = []
        while True:
            line = self.out.next_line()
            self.header.append(line)
            if m := re.match(r"CA certificate: (\S+) \(send with --cafile \1\)$", line):
                self.ca_file = m.group(1)
            elif m := re.match(r"certificate SHA-256: (\S+) \(or send with --tls-finger", line):
                self.fingerprint = m.group(1)
            elif m := re.match(r"web UI and API: (http://\S+)$", line):
                self.web_url = m.group(1)
                break

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
        command = [sys.executable, "-m", "postwire", "capture", "--port", "0"]
        proc = subprocess.Popen(
            [*command, "--web", "127.0.0.1:0", *args],
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
    assert server.ca_file is not None
    env = cli_env(tmp_path, {"PW": "pw-1"})
    common = ["send", "--server", f"127.0.0.1:{server.port}", "--cafile", server.ca_file]
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


# -- the kept CA and pinning (issue 10, item 8) ----------------------------------------------


def _send_args(server: Running, *extra: str) -> list[str]:
    return [
        "send",
        "--server",
        f"127.0.0.1:{server.port}",
        "--from",
        "ada@example.org",
        "--to",
        "bob@example.org",
        "--subject",
        "pinned",
        *extra,
    ]


def test_capture_keeps_its_ca_across_restarts(
    start: Callable[..., Running], tmp_path: Path
) -> None:
    first = start("--tls", "starttls")
    assert first.ca_file == str(tmp_path / "xdg-data" / "postwire" / "ca" / "ca.pem")
    fingerprint = first.fingerprint
    assert first.stop() == 0
    assert Path(first.ca_file).is_file()  # not deleted at stop
    second = start("--tls", "starttls")
    assert (second.ca_file, second.fingerprint) == (first.ca_file, fingerprint)
    # A setup naming the CA file printed by the first run works with the second.
    done = run_cli(_send_args(second, "--cafile", first.ca_file), cli_env(tmp_path))
    assert done.returncode == 0, done.stderr
    assert 'subject="pinned"' in second.out.next_line()
    assert second.stop() == 0


def test_capture_ca_dir_option_and_mkcert_names(
    start: Callable[..., Running], tmp_path: Path
) -> None:
    from postwire.capture import certs

    chosen = tmp_path / "my-ca"
    server = start("--ca-dir", str(chosen))
    assert server.ca_file == str(chosen / "ca.pem")
    assert server.stop() == 0
    # A folder holding mkcert's file names (its CAROOT) is used as it is.
    mkcert = tmp_path / "mkcert"
    mkcert.mkdir()
    ca = certs.load_or_create_ca(tmp_path / "made")
    (mkcert / "rootCA.pem").write_bytes(ca.cert_pem)
    (mkcert / "rootCA-key.pem").write_bytes(ca.key_pem)
    server = start("--ca-dir", str(mkcert))
    assert server.ca_file == str(mkcert / "rootCA.pem")
    assert not (mkcert / "ca.pem").exists()
    done = run_cli(_send_args(server, "--cafile", server.ca_file), cli_env(tmp_path))
    assert done.returncode == 0, done.stderr
    assert server.stop() == 0


def test_capture_with_a_given_certificate(start: Callable[..., Running], tmp_path: Path) -> None:
    import trustme

    from postwire.capture.certs import fingerprint

    ca = trustme.CA()
    leaf = ca.issue_cert("localhost", "127.0.0.1")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    server = start("--cert", str(cert), "--key", str(key))
    assert server.ca_file is None  # the CA of a given certificate is not known
    assert server.fingerprint == fingerprint(cert.read_bytes())
    ca_file = tmp_path / "trustme-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    done = run_cli(_send_args(server, "--cafile", str(ca_file)), cli_env(tmp_path))
    assert done.returncode == 0, done.stderr
    assert server.stop() == 0
    half = run_cli(["capture", "--cert", str(cert)], cli_env(tmp_path))
    assert half.returncode == 64 and "--key" in one_error_line(half)


def test_send_probe_and_config_pin_the_fingerprint(
    start: Callable[..., Running], tmp_path: Path
) -> None:
    server = start("--tls", "starttls")
    assert server.fingerprint is not None
    env = cli_env(tmp_path)
    # Pinned, without --cafile: the fingerprint replaces CA verification.
    done = run_cli(_send_args(server, "--tls-fingerprint", server.fingerprint), env)
    assert done.returncode == 0, done.stderr
    probe = run_cli(
        ["probe", f"127.0.0.1:{server.port}", "--tls-fingerprint", server.fingerprint], env
    )
    assert probe.returncode == 0, probe.stdout + probe.stderr
    wrong = "AA:" * 31 + "AA"
    refused = run_cli(_send_args(server, "--tls-fingerprint", wrong), env)
    assert refused.returncode != 0
    assert "pinned fingerprint" in one_error_line(refused)
    # The same from the config file, and from the environment.
    config = tmp_path / "config.toml"
    config.write_text(
        f'[accounts.catcher]\nserver = "127.0.0.1:{server.port}"\n'
        f'tls_fingerprint = "{server.fingerprint}"\n'
    )
    args = ["send", "--config", str(config), "--from", "a@example.org", "--to", "b@example.org"]
    assert run_cli(args, env).returncode == 0
    by_env = run_cli(
        _send_args(server), cli_env(tmp_path, {"POSTWIRE_TLS_FINGERPRINT": server.fingerprint})
    )
    assert by_env.returncode == 0, by_env.stderr
    config.write_text('[accounts.catcher]\nserver = "127.0.0.1:1"\ntls_fingerprint = "zz"\n')
    bad = run_cli(args, env)
    assert bad.returncode == 78 and "tls_fingerprint" in one_error_line(bad)
    assert server.stop() == 0


# -- the catcher from the command line --------------------------------------------------------


def _api(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def test_capture_web_api_and_maildir_persistence_across_restart(
    start: Callable[..., Running], tmp_path: Path
) -> None:
    maildir = tmp_path / "Maildir"
    server = start("--tls", "none", "--maildir", str(maildir))
    with Client("127.0.0.1", server.port, tls="none", timeout=10) as client:
        client.send(MESSAGE, sender="ada@example.org", recipients=["bob@example.org"])
        client.send(MESSAGE, sender="ada@example.org", recipients=["carol@example.org"])
    server.out.next_line()
    server.out.next_line()
    listed = _api(server.web_url + "api/v1/messages")
    assert listed["total"] == 2
    ids = [m["ID"] for m in listed["messages"]]
    assert server.stop() == 0
    again = start("--tls", "none", "--maildir", str(maildir))
    relisted = _api(again.web_url + "api/v1/messages")
    assert [m["ID"] for m in relisted["messages"]] == ids
    # carol is not in the To header: an envelope-only recipient shows as Bcc (as in Mailpit).
    assert [m["Bcc"] for m in relisted["messages"]] == [
        [{"Name": "", "Address": "carol@example.org"}],
        [],
    ]
    session = _api(again.web_url + f"api/v1/message/{ids[0]}/session")
    assert session["RcptTo"] == ["carol@example.org"]
    assert any(line.startswith("C: EHLO") for line in session["Transcript"])
    assert again.stop() == 0


def test_capture_fault_option(start: Callable[..., Running], tmp_path: Path) -> None:
    server = start("--tls", "none", "--fault", "rcpt:*@bad.example=550:5.1.1 no such user")
    assert "fault scripts: rcpt:*@bad.example=550:5.1.1 no such user" in server.header
    env = cli_env(tmp_path)
    common = ["send", "--server", f"127.0.0.1:{server.port}", "--tls", "none"]
    done = run_cli([*common, "--from", "a@example.org", "--to", "x@bad.example"], env)
    assert done.returncode == 67  # EX_NOUSER: every recipient refused with 5xx
    assert "5.1.1 no such user" in done.stderr
    bad = run_cli(["capture", "--fault", "explode"], env)
    assert bad.returncode == 64 and "unknown fault" in one_error_line(bad)
    assert server.stop() == 0


def test_capture_web_port_in_use(tmp_path: Path) -> None:
    import socket

    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        done = run_cli(["capture", "--port", "0", "--web", f"127.0.0.1:{port}"], cli_env(tmp_path))
    assert done.returncode == 71
    assert f"127.0.0.1:{port} (web UI" in one_error_line(done)
