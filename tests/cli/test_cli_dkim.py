"""DKIM on the command line (issue 14, item 1): ``send --dkim-*`` and the account's settings.

OpenDKIM, the test Postfix's milter, gives the verdict (tests/servers/opendkim.py).
"""

from __future__ import annotations

from pathlib import Path

from servers.opendkim import DOMAIN, DkimVerifier, dkim_verdicts
from servers.postfix import PostfixServer
from test_cli_support import cli_env, run_cli

SENDER = f"cli@{DOMAIN}"


def test_send_signs_with_the_dkim_options(
    postfix_inbox: PostfixServer, dkim_oracle: DkimVerifier, tmp_path: Path
) -> None:
    env = cli_env(tmp_path)
    done = run_cli(
        ["send", "--server", f"127.0.0.1:{postfix_inbox.dkim_port}",
         "--cafile", str(postfix_inbox.ca_file), "--from", SENDER, "--to", "a@test.example",
         "--subject", "signed by the CLI", "--body", "body\n.dot\n",
         "--dkim-key", str(dkim_oracle.key_files["ed"]), "--dkim-selector", "ed",
         "--dkim-domain", DOMAIN, "--dkim-canonicalization", "relaxed/simple"],
        env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (delivered,) = postfix_inbox.wait_for_messages(1, timeout=30)
    assert dkim_verdicts(delivered) == ["pass"]
    assert b"c=relaxed/simple" in delivered


def test_sendmail_and_send_many_sign_with_the_accounts_settings(
    postfix_inbox: PostfixServer, dkim_oracle: DkimVerifier, tmp_path: Path
) -> None:
    # A key path relative to the config file, and a header list as a TOML array.
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "rsa.pem").write_bytes(dkim_oracle.key_files["rsa1"].read_bytes())
    config = tmp_path / "config.toml"
    config.write_text(
        f"""\
[accounts.signed]
server = "127.0.0.1:{postfix_inbox.dkim_port}"
tls = "none"
from = "{SENDER}"
dkim_key = "keys/rsa.pem"
dkim_selector = "rsa1"
dkim_domain = "{DOMAIN}"
dkim_headers = ["From", "To", "Subject", "From"]
""",
        encoding="utf-8",
    )
    env = cli_env(tmp_path)
    env["POSTWIRE_CONFIG"] = str(config)
    mailed = run_cli(["sendmail", "-t"], env, stdin=b"To: b@test.example\nSubject: sendmail\n\nx\n")
    assert mailed.returncode == 0, mailed.stderr
    folder = tmp_path / "eml"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i}.eml").write_bytes(
            f"From: {SENDER}\nTo: c@test.example\nSubject: many {i}\n\nm\n".encode()
        )
    many = run_cli(["send", "--many", str(folder)], env)
    assert many.returncode == 0, many.stderr
    delivered = postfix_inbox.wait_for_messages(4, timeout=30)
    assert [dkim_verdicts(m) for m in delivered] == [["pass"]] * 4
    assert all(b"h=from : to : subject : from" in m.replace(b"\r\n", b"\n").replace(b"\n ", b" ")
               for m in delivered)  # fmt: skip


def test_an_unusable_key_is_a_configuration_error_before_sending(
    postfix_inbox: PostfixServer, tmp_path: Path
) -> None:
    env = cli_env(tmp_path)
    server = f"127.0.0.1:{postfix_inbox.dkim_port}"
    base = ["send", "--server", server, "--tls", "none", "--from", SENDER,
            "--to", "a@test.example", "--subject", "s", "--body", "b"]  # fmt: skip
    (tmp_path / "cert.pem").write_bytes(postfix_inbox.ca_file.read_bytes())
    cases = {
        "holds a CERTIFICATE": ["--dkim-key", str(tmp_path / "cert.pem"),
                                "--dkim-selector", "s", "--dkim-domain", DOMAIN],
        "cannot read the DKIM key": ["--dkim-key", str(tmp_path / "none.pem"),
                                     "--dkim-selector", "s", "--dkim-domain", DOMAIN],
        "dkim_selector is not": ["--dkim-key", str(tmp_path / "cert.pem"),
                                 "--dkim-domain", DOMAIN],
        "dkim_key is not": ["--dkim-selector", "s"],
    }  # fmt: skip
    for expected, options in cases.items():
        done = run_cli([*base, *options], env)
        assert done.returncode == 78 and expected in done.stderr, (options, done.stderr)
    assert postfix_inbox.messages() == []
