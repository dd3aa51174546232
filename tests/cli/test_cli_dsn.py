"""DSN options on the command line: send --dsn-*, and sendmail's -N, -R, -V (issue 14)."""

from __future__ import annotations

from pathlib import Path

from servers.postfix import PostfixServer, delivered_messages, delivery_status
from test_cli_support import cli_env, run_cli

SENDER = "alice@test.example"


def test_cli_send_and_sendmail_ask_for_notices(
    postfix_inbox: PostfixServer, tmp_path: Path
) -> None:
    env = cli_env(tmp_path)
    server = ["--server", f"127.0.0.1:{postfix_inbox.smtp_port}", "--cafile",
              str(postfix_inbox.ca_file)]  # fmt: skip
    done = run_cli(
        ["send", *server, "--from", SENDER, "--to", "x@bounce.test", "--subject", "cli",
         "--body", "x", "--dsn-notify", "failure", "--dsn-ret", "hdrs", "--dsn-envid", "cli-1"],
        env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    env.update(POSTWIRE_SERVER=f"127.0.0.1:{postfix_inbox.smtp_port}",
               POSTWIRE_CAFILE=str(postfix_inbox.ca_file))  # fmt: skip
    mailed = run_cli(
        ["sendmail", "-f", SENDER, "-N", "failure", "-V", "sendmail-2", "y@bounce.test"],
        env,
        stdin=b"Subject: via sendmail\n\nx\n",
    )
    assert mailed.returncode == 0, mailed.stderr
    ids = sorted(
        line.split(": ", 1)[1]
        for report in delivered_messages(postfix_inbox, 2)
        for line in delivery_status(report).splitlines()
        if line.startswith("Original-Envelope-Id")
    )
    assert ids == ["cli-1", "sendmail-2"]
    bad = run_cli(["send", *server, "--from", SENDER, "--to", "z@test.example",
                   "--subject", "s", "--dsn-notify", "never,success"], env)  # fmt: skip
    assert bad.returncode == 64 and "NEVER cannot be combined" in bad.stderr
