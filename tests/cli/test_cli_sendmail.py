"""``postwire sendmail`` and a program named ``sendmail``: config file, environment, Postfix."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from postwire.capture import CaptureServer
from postwire.cli.sendmail_mode import parse_sendmail_args
from servers.postfix import PostfixServer, strip_trace
from test_cli_support import cli_env, one_error_line, run_cli

USER, PASSWORD = "cron", "cron-Secret-9"
MESSAGE = (
    b"To: Bob <bob@example.org>\n"
    b"Cc: carol@example.org\n"
    b"Bcc: audit@example.org\n"
    b"Subject: nightly report\n"
    b"\n"
    b"all good\n"
    b".\n"
    b"after the dot line\n"
)


@pytest.fixture
def capture() -> Iterator[CaptureServer]:
    with CaptureServer(tls="starttls", auth={USER: PASSWORD}) as server:
        yield server


def write_config(env: dict[str, str], text: str) -> Path:
    path = Path(env["XDG_CONFIG_HOME"]) / "postwire" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def capture_config(server: CaptureServer) -> str:
    return f"""\
default = "local"

[defaults]
tls = "starttls"
timeout = 20

[accounts.local]
server = "127.0.0.1:{server.port}"
cafile = "{server.ca_file}"
user = "{USER}"
password_env = "CRON_SMTP_PASSWORD"
from = "cron@host.example"

[accounts.broken]
server = "127.0.0.1:1"
"""


@pytest.fixture
def env(tmp_path: Path, capture: CaptureServer) -> dict[str, str]:
    env = cli_env(tmp_path, {"CRON_SMTP_PASSWORD": PASSWORD})
    write_config(env, capture_config(capture))
    return env


def test_t_i_reads_recipients_from_the_header(capture: CaptureServer, env: dict[str, str]) -> None:
    done = run_cli(["sendmail", "-t", "-i"], env, stdin=MESSAGE)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and done.stderr == ""  # sendmail is silent on success
    [msg] = capture.wait_for(1)
    assert msg.mail_from == "cron@host.example"  # from the config
    assert msg.rcpt_tos == ["bob@example.org", "carol@example.org", "audit@example.org"]
    assert msg.tls and msg.auth_user == USER
    assert b"Bcc" not in msg.data and b"audit@" not in msg.data
    # -i: the lone "." is content; From, Date and Message-ID were added as sendmail adds them.
    assert msg.data.endswith(b"all good\r\n.\r\nafter the dot line\r\n")
    parsed = msg.email()
    assert parsed["From"] == "cron@host.example"
    assert parsed["Date"] is not None
    assert parsed["Message-ID"].endswith("@host.example>")


def test_without_i_a_dot_line_ends_the_message(capture: CaptureServer, env: dict[str, str]) -> None:
    done = run_cli(["sendmail", "-t"], env, stdin=MESSAGE)
    assert done.returncode == 0, done.stderr
    [msg] = capture.wait_for(1)
    assert msg.data.endswith(b"all good\r\n")
    assert b"after the dot line" not in msg.data


def test_argument_recipients_f_and_F(capture: CaptureServer, env: dict[str, str]) -> None:
    done = run_cli(
        [
            "sendmail",
            "-oi",
            "-fdaemon@host.example",
            "-F",
            "Backup Daemon",
            "--",
            "ops@example.org",
            "dev@example.org",
        ],
        env,
        stdin=b"Subject: no From field\n\nbody\n",
    )
    assert done.returncode == 0, done.stderr
    [msg] = capture.wait_for(1)
    assert msg.mail_from == "daemon@host.example"
    assert msg.rcpt_tos == ["ops@example.org", "dev@example.org"]
    assert msg.email()["From"] == "Backup Daemon <daemon@host.example>"


def test_explicit_config_and_account_options(
    capture: CaptureServer, env: dict[str, str], tmp_path: Path
) -> None:
    elsewhere = tmp_path / "other.toml"
    elsewhere.write_text(
        capture_config(capture).replace('default = "local"', 'default = "broken"'),
        encoding="utf-8",
    )
    done = run_cli(
        ["sendmail", "-C", str(elsewhere), "-a", "local", "-t", "-i"], env, stdin=MESSAGE
    )
    assert done.returncode == 0, done.stderr
    env["POSTWIRE_CONFIG"] = str(elsewhere)
    env["POSTWIRE_ACCOUNT"] = "local"
    again = run_cli(["sendmail", "-t", "-i"], env, stdin=MESSAGE)
    assert again.returncode == 0, again.stderr
    assert len(capture.wait_for(2)) == 2


def test_environment_without_config_file(capture: CaptureServer, tmp_path: Path) -> None:
    env = cli_env(
        tmp_path,
        {
            "POSTWIRE_SERVER": f"127.0.0.1:{capture.port}",
            "POSTWIRE_TLS": "starttls",
            "POSTWIRE_CAFILE": str(capture.ca_file),
            "POSTWIRE_USER": USER,
            "POSTWIRE_PASSWORD_ENV": "MY_PW",
            "MY_PW": PASSWORD,
            "POSTWIRE_FROM": "env@host.example",
        },
    )
    done = run_cli(["sendmail", "-i", "bob@example.org"], env, stdin=b"Subject: env\n\nhi\n")
    assert done.returncode == 0, done.stderr
    [msg] = capture.wait_for(1)
    assert (msg.mail_from, msg.rcpt_tos, msg.auth_user) == (
        "env@host.example",
        ["bob@example.org"],
        USER,
    )


def test_program_named_sendmail(
    capture: CaptureServer, env: dict[str, str], tmp_path: Path
) -> None:
    # What a console script is: a launcher calling postwire.cli:main; reached by a symlink.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    launcher = bindir / "postwire"
    launcher.write_text(
        f"#!{sys.executable}\nimport sys\nfrom postwire.cli import main\nsys.exit(main())\n",
        encoding="utf-8",
    )
    launcher.chmod(0o755)
    os.symlink(launcher, bindir / "sendmail")
    done = run_cli(["-t", "-i"], env, stdin=MESSAGE, program=[str(bindir / "sendmail")])
    assert done.returncode == 0, done.stderr
    [msg] = capture.wait_for(1)
    assert msg.rcpt_tos == ["bob@example.org", "carol@example.org", "audit@example.org"]
    # The same launcher under its own name is the normal command line.
    normal = run_cli(["sendmail", "-t", "-i"], env, stdin=MESSAGE, program=[str(launcher)])
    assert normal.returncode == 0, normal.stderr
    assert len(capture.wait_for(2)) == 2


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["--", "-oQ/tmp/x@example.org"], 64, "may not start with '-'"),
        (["-bp"], 64, "-bp"),
        (["-q"], 64, "unknown option -q"),
        (["-f"], 64, "needs a value"),
        ([], 64, "no recipients"),
        (["-F", "Evil\nBcc: x@example.org", "bob@example.org"], 64, "line breaks"),
        (["-a", "nosuch", "-t"], 78, "no account named 'nosuch'"),
        (["-a", "broken", "-f", "x@example.org", "-t"], 69, "cannot connect"),
    ],
)
def test_bad_invocations(
    capture: CaptureServer, env: dict[str, str], args: list[str], code: int, needle: str
) -> None:
    done = run_cli(["sendmail", *args], env, stdin=MESSAGE)
    assert done.returncode == code, (done.stdout, done.stderr)
    assert needle in one_error_line(done)
    assert capture.messages == []


@pytest.mark.parametrize(
    ("config", "needle"),
    [
        ("default = [", "not valid TOML"),
        ('[accounts.a]\nserver = "h"\npassword = "plain"\n', "may not be written"),
        ('[accounts.a]\nserver = "h"\ntls = "sometimes"\n', "tls must be one of"),
        ('[accounts.a]\nservre = "h"\n', "unknown setting 'servre'"),
        ('[accounts.a]\nserver = "h"\n[accounts.b]\nserver = "h"\n', "several accounts"),
        ('[accounts.a]\nfrom = "x@example.org"\n', "no server"),
    ],
)
def test_config_errors_are_78(env: dict[str, str], config: str, needle: str) -> None:
    write_config(env, config)
    done = run_cli(["sendmail", "-t", "-i"], env, stdin=MESSAGE)
    assert done.returncode == 78, (done.stdout, done.stderr)
    assert needle in one_error_line(done)


def test_password_source_missing_in_config(env: dict[str, str], capture: CaptureServer) -> None:
    write_config(env, capture_config(capture).replace('password_env = "CRON_SMTP_PASSWORD"\n', ""))
    done = run_cli(["sendmail", "-t", "-i"], env, stdin=MESSAGE)
    assert done.returncode == 78
    assert "no password source" in one_error_line(done)
    assert capture.messages == []


def test_parse_sendmail_args() -> None:
    args = parse_sendmail_args(["-tv", "-oem", "-odi", "-fme@x.example", "-B8BITMIME", "a@x", "-b"])
    assert args.extract and args.transcript and args.ignore_dots is False
    assert args.sender == "me@x.example"
    assert args.recipients == ["a@x", "-b"]  # options end at the first recipient
    args = parse_sendmail_args(["-oi", "-r", "r@x", "-N", "never", "-v", "--account=w", "--"])
    assert (args.ignore_dots, args.sender, args.transcript, args.account) == (
        True,
        "r@x",
        True,
        "w",
    )
    assert args.recipients == []


# -- Postfix -------------------------------------------------------------------------------


def test_sendmail_mode_to_postfix(postfix_inbox: PostfixServer, tmp_path: Path) -> None:
    env = cli_env(tmp_path, {"ALICE_PW": postfix_inbox.users["alice@test.example"]})
    write_config(
        env,
        f"""\
[accounts.postfix]
server = "127.0.0.1:{postfix_inbox.submission_port}"
cafile = "{postfix_inbox.ca_file}"
user = "alice@test.example"
password_env = "ALICE_PW"
""",
    )
    message = (
        b"From: Cron Daemon <root@client.example>\n"
        b"To: alice@test.example\n"
        b"Bcc: bob@test.example\n"
        b"Subject: via sendmail mode\n"
        b"Date: Mon, 1 Jan 2024 00:00:00 +0000\n"
        b"\n"
        b".dotted\n"
    )
    done = run_cli(["sendmail", "-t", "-i"], env, stdin=message)
    assert done.returncode == 0, done.stderr
    delivered = [strip_trace(raw) for raw in postfix_inbox.wait_for_messages(2)]
    expected = message.replace(b"Bcc: bob@test.example\n", b"").replace(b"\n", b"\r\n")
    # Alice and (Bcc) Bob each got it, Bcc removed, and a Message-ID added (as Postfix's own
    # sendmail does for local submissions) in the sender's domain, the same in both copies.
    first_lines = {raw.split(b"\r\n", 1)[0] for raw in delivered}
    assert len(first_lines) == 1
    (msg_id_line,) = first_lines
    assert re.fullmatch(rb"Message-ID: <[a-z2-7.]+@client\.example>", msg_id_line)
    assert [raw.split(b"\r\n", 1)[1] for raw in delivered] == [expected, expected]
