"""Errors seen from the command line name its options, not the library's arguments (issue 10).

Each run goes against a real capture server and fails the way a user's would;
the one error line must say ``--tls implicit``, never ``tls='implicit'``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from postwire.capture import CaptureServer
from test_cli_support import cli_env, one_error_line, run_cli

MESSAGE = ["--from", "a@example.org", "--to", "b@example.org", "--subject", "x", "--body", "x"]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return cli_env(tmp_path, {"PW": "secret"})


@pytest.fixture
def plain() -> Iterator[CaptureServer]:
    with CaptureServer(tls="none", auth={"ada": "secret"}, auth_require_tls=False) as server:
        yield server


def _no_python_keywords(line: str) -> None:
    for keyword in ("tls='", "allow_plaintext_auth", "cafile=", "ssl_context", "tls_fingerprint="):
        assert keyword not in line, line


def test_starttls_not_offered_names_the_tls_option(
    plain: CaptureServer, env: dict[str, str]
) -> None:
    done = run_cli(["send", "--server", f"127.0.0.1:{plain.port}", *MESSAGE], env)
    line = one_error_line(done)
    assert done.returncode == 76
    assert "--tls implicit" in line and "--tls none" in line
    _no_python_keywords(line)


def test_credentials_in_clear_text_name_the_option(
    plain: CaptureServer, env: dict[str, str]
) -> None:
    done = run_cli(
        ["send", "--server", f"127.0.0.1:{plain.port}", "--tls", "none", "--user", "ada",
         "--password-env", "PW", *MESSAGE],
        env,
    )  # fmt: skip
    line = one_error_line(done)
    assert "--allow-plaintext-auth" in line
    _no_python_keywords(line)
    assert plain.messages == []


def test_an_untrusted_certificate_names_cafile(env: dict[str, str]) -> None:
    with CaptureServer(tls="starttls") as server:
        done = run_cli(["send", "--server", f"127.0.0.1:{server.port}", *MESSAGE], env)
    line = one_error_line(done)
    assert "pass --cafile" in line
    _no_python_keywords(line)


def test_sendmail_reads_dev_null_as_an_empty_configuration(
    plain: CaptureServer, env: dict[str, str]
) -> None:
    # -C /dev/null: no settings from any file; the server comes from the environment.
    env = {**env, "POSTWIRE_SERVER": f"127.0.0.1:{plain.port}", "POSTWIRE_TLS": "none"}
    done = run_cli(
        ["sendmail", "-C", "/dev/null", "-f", "a@example.org", "b@example.org"],
        env,
        stdin=b"Subject: empty config\n\nhello\n",
    )
    assert done.returncode == 0, done.stderr
    assert plain.wait_for(1)[0].rcpt_tos == ["b@example.org"]
    missing = run_cli(["sendmail", "-C", "/nonexistent/postwire.toml", "b@example.org"], env)
    assert missing.returncode == 78 and "does not exist" in one_error_line(missing)
