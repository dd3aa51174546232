"""The command line over LMTP, a Unix socket and proxies (issue 14)."""

from __future__ import annotations

from pathlib import Path

from postwire.capture import CaptureServer
from servers.lmtp import LmtpServer
from servers.proxies import HttpProxy, SocksProxy
from test_cli_support import cli_env, one_error_line, run_cli


def test_the_command_line_speaks_lmtp(lmtp_boxes: LmtpServer, tmp_path: Path) -> None:
    message = ["--from", "a@example.org", "--to", "ada", "--to", "full", "--subject", "cli",
               "--body", "x"]  # fmt: skip
    done = run_cli(
        ["send", "--lmtp", "--server", f"127.0.0.1:{lmtp_boxes.port}", "--tls", "none", *message],
        cli_env(tmp_path),
    )
    assert done.returncode == 67, done.stderr  # one recipient refused (5xx)
    assert "accepted: ada" in done.stdout and "refused: full: 552" in done.stdout
    unix = run_cli(
        ["send", "--lmtp", "--server", str(lmtp_boxes.socket_path), *message[:4], *message[6:]],
        cli_env(tmp_path),
    )
    assert unix.returncode == 0, unix.stderr
    assert len(lmtp_boxes.messages("ada")) == 2


def test_the_command_line_goes_through_a_proxy(
    socks_proxy: SocksProxy, http_proxy: HttpProxy, tmp_path: Path
) -> None:
    with CaptureServer(tls="starttls") as server:
        for proxy in (socks_proxy, http_proxy):
            done = run_cli(
                ["send", "--server", f"localhost:{server.port}", "--cafile", str(server.ca_file),
                 "--proxy", proxy.url(), "--from", "a@example.org", "--to", "b@example.org",
                 "--subject", proxy.kind, "--body", "x"],
                cli_env(tmp_path),
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
            assert f"localhost:{server.port}" in proxy.log_text() or str(server.port) in (
                proxy.log_text()
            )
        assert sorted(m.subject for m in server.wait_for(2)) == ["dante", "tinyproxy"]
        refused = run_cli(
            ["send", "--server", f"localhost:{server.port}", "--cafile", str(server.ca_file),
             "--proxy", f"http://127.0.0.1:{http_proxy.port}", "--from", "a@example.org",
             "--to", "b@example.org", "--subject", "x", "--body", "x"],
            cli_env(tmp_path),
        )  # fmt: skip
        assert refused.returncode == 69
        line = one_error_line(refused)
        assert ("407" in line or "401" in line) and "credentials" in line
