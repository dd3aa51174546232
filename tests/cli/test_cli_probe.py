"""``postwire probe`` against the private Postfix and the capture server."""

from __future__ import annotations

import json
import ssl
from pathlib import Path

import pytest
import trustme

from postwire.capture import CaptureServer
from postwire.cli.x509 import parse_certificate
from postwire.config import parse_server
from servers.postfix import PostfixServer
from test_cli_support import cli_env, one_error_line, run_cli


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return cli_env(tmp_path)


def rows(stdout: str) -> dict[str, str]:
    """The report's "label  value" rows (continuation rows are appended to the last label)."""
    found: dict[str, str] = {}
    last = ""
    for line in stdout.splitlines():
        label, value = line[:13].strip(), line[14:]
        if label:
            found[label] = value
            last = label
        else:
            found[last] += "\n" + value
    return found


def test_postfix_submission_verified(postfix: PostfixServer, env: dict[str, str]) -> None:
    server = f"127.0.0.1:{postfix.submission_port}"
    done = run_cli(["probe", server, "--cafile", str(postfix.ca_file)], env)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    report = rows(done.stdout)
    assert report["server"] == server
    assert report["greeting"] == "220 postwire-test.localhost ESMTP postwire test instance"
    assert report["TLS"].startswith("TLSv1.") and report["TLS"].endswith("(starttls)")
    assert "subject   O=trustme" in report["certificate"]
    assert "names     DNS:localhost, IP:127.0.0.1, IP:::1" in report["certificate"]
    assert report["verified"] == "yes"
    # After STARTTLS Postfix offers AUTH (smtpd_tls_auth_only) and its SIZE limit (30 MiB).
    assert set(report["AUTH"].split()) == {"PLAIN", "LOGIN", "CRAM-MD5"}
    assert report["SIZE"] == f"{30 * 1024 * 1024} bytes (30.0 MiB)"
    assert "PIPELINING" in report["extensions"]
    assert report["round trip"].endswith("ms (NOOP)")


def test_postfix_json(postfix: PostfixServer, env: dict[str, str]) -> None:
    done = run_cli(
        [
            "probe",
            f"127.0.0.1:{postfix.submission_port}",
            "--cafile",
            str(postfix.ca_file),
            "--json",
        ],
        env,
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["ok"] is True and data["exit_code"] == 0
    assert data["greeting"] == {
        "code": 220,
        "lines": ["postwire-test.localhost ESMTP postwire test instance"],
    }
    assert data["size_limit"] == 30 * 1024 * 1024
    assert set(data["auth_mechanisms"]) == {"PLAIN", "LOGIN", "CRAM-MD5"}
    assert "PIPELINING" in data["extensions"]
    tls = data["tls"]
    assert tls["active"] and tls["how"] == "starttls" and tls["verified"] is True
    assert tls["version"] in ("TLSv1.2", "TLSv1.3") and tls["cipher"]
    cert = tls["certificate"]
    assert cert["names"] == ["DNS:localhost", "IP:127.0.0.1", "IP:::1"]
    assert cert["expires_in_days"] > 300
    assert data["rtt_ms"] >= 0 and data["connect_ms"] > 0


def test_postfix_unverified_says_why_and_shows_the_certificate(
    postfix: PostfixServer, env: dict[str, str]
) -> None:
    done = run_cli(["probe", f"127.0.0.1:{postfix.submission_port}"], env)
    assert done.returncode == 76
    report = rows(done.stdout)
    assert report["verified"].startswith("NO: TLS certificate of")
    assert "did not verify" in report["verified"]
    assert "--cafile" in report["verified"]
    # Still shown, from a second, unverified connection used only for display.
    assert "subject   O=trustme" in report["certificate"]
    assert "issuer    O=trustme" in report["certificate"]
    assert set(report["AUTH"].split()) == {"PLAIN", "LOGIN", "CRAM-MD5"}
    assert "did not verify" in one_error_line(done)
    as_json = run_cli(["probe", f"127.0.0.1:{postfix.submission_port}", "--json"], env)
    data = json.loads(as_json.stdout)
    assert data["ok"] is False and data["exit_code"] == 76
    assert data["tls"]["verified"] is False
    assert "did not verify" in data["tls"]["verify_error"]
    assert data["tls"]["certificate"]["names"][0] == "DNS:localhost"


def test_postfix_implicit_tls_port(postfix: PostfixServer, env: dict[str, str]) -> None:
    done = run_cli(
        [
            "probe",
            f"127.0.0.1:{postfix.smtps_port}",
            "--tls",
            "implicit",
            "--cafile",
            str(postfix.ca_file),
            "--json",
        ],
        env,
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["tls"]["how"] == "implicit" and data["tls"]["verified"] is True


def test_postfix_transcript(postfix: PostfixServer, env: dict[str, str]) -> None:
    done = run_cli(
        [
            "probe",
            f"127.0.0.1:{postfix.smtp_port}",
            "--cafile",
            str(postfix.ca_file),
            "--transcript",
        ],
        env,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    arrows = [line.split()[1] for line in lines]
    assert set(arrows) == {"->", "<-", "**"}
    texts = [line.split(maxsplit=2)[2] for line in lines]
    assert texts[0].startswith("connected to 127.0.0.1:")
    assert "STARTTLS" in texts and "TLS started" in texts
    assert texts.index("STARTTLS") < texts.index("TLS started")
    assert "NOOP" in texts and texts[-2] == "QUIT"


def test_wrong_mode_both_directions(postfix: PostfixServer, env: dict[str, str]) -> None:
    implicit_to_plain = run_cli(
        ["probe", f"127.0.0.1:{postfix.submission_port}", "--tls", "implicit"], env
    )
    assert implicit_to_plain.returncode == 76
    assert "--tls starttls" in one_error_line(implicit_to_plain)
    starttls_to_implicit = run_cli(
        ["probe", f"127.0.0.1:{postfix.smtps_port}", "--tls", "starttls", "--timeout", "1"],
        env,
        timeout=30,
    )
    assert starttls_to_implicit.returncode == 75
    assert "--tls implicit" in one_error_line(starttls_to_implicit)


def test_capture_server_without_starttls(env: dict[str, str]) -> None:
    with CaptureServer(tls="none") as server:
        done = run_cli(["probe", f"127.0.0.1:{server.port}", "--json"], env)
        plain = run_cli(["probe", f"127.0.0.1:{server.port}", "--tls", "none"], env)
        required = run_cli(["probe", f"127.0.0.1:{server.port}", "--tls", "starttls"], env)
    # The probe shows what the server offers, and exits non-zero because a send with
    # the same options (STARTTLS required by default) would fail (issue 10, item 10).
    assert done.returncode == 76, done.stderr
    assert "a send would fail: STARTTLS required but not offered" in done.stderr
    data = json.loads(done.stdout)
    assert data["ok"] is False and "STARTTLS required" in data["problem"]
    assert data["tls"] == {"active": False, "starttls_offered": False}
    assert data["greeting"]["code"] == 220
    assert data["auth_mechanisms"] == []
    # With --tls none a send would work: exit 0, and no "TLS" in the timing line.
    assert plain.returncode == 0, plain.stderr
    timing = next(line for line in plain.stdout.splitlines() if line.startswith("connected in"))
    assert "TLS" not in timing
    # Asking for STARTTLS by name where there is none fails, and says so.
    assert required.returncode == 76
    assert "STARTTLS" in one_error_line(required)


def test_certificate_reader_matches_ssl() -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("mail.example.org", "192.0.2.7", "2001:db8::1", "postmaster@example.org")
    pem = cert.cert_chain_pems[0].bytes().decode("ascii")
    info = parse_certificate(ssl.PEM_cert_to_DER_cert(pem))
    assert info.names == (
        "DNS:mail.example.org",
        "IP:192.0.2.7",
        "IP:2001:db8::1",
        "email:postmaster@example.org",
    )
    assert info.subject.startswith("O=trustme") and "OU=Testing cert" in info.subject
    assert "OU=Testing CA" in info.issuer
    assert info.not_before.year == 2000 and info.not_after.year == 3000
    assert len(info.sha256.split(":")) == 32
    with pytest.raises(ValueError):
        parse_certificate(b"\x30\x03\x02\x01")


@pytest.mark.parametrize(
    ("text", "tls", "expected"),
    [
        ("mail.example.org", "starttls", ("mail.example.org", 587)),
        ("mail.example.org", "implicit", ("mail.example.org", 465)),
        ("mail.example.org", "none", ("mail.example.org", 25)),
        ("127.0.0.1:2525", "starttls", ("127.0.0.1", 2525)),
        ("[::1]:26", "none", ("::1", 26)),
        ("::1", "implicit", ("::1", 465)),
    ],
)
def test_parse_server(text: str, tls: str, expected: tuple[str, int]) -> None:
    assert parse_server(text, tls) == expected


@pytest.mark.parametrize("text", ["host:0", "host:99999", "host:x", "[::1", "a b", ""])
def test_parse_server_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_server(text, "starttls")


def test_probe_says_a_login_would_fail_where_no_auth_is_offered(env: dict[str, str]) -> None:
    with CaptureServer(tls="starttls") as server:
        done = run_cli(
            ["probe", f"127.0.0.1:{server.port}", "--cafile", str(server.ca_file), "--json"],
            {**env, "POSTWIRE_USER": "ada"},
        )
    assert done.returncode == 69, done.stderr
    assert json.loads(done.stdout)["problem"] == "--user ada given, but the server offers no AUTH"
