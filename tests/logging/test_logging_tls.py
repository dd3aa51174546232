"""Where and how the handler sends: verified TLS, credentials, URLs, accounts, client options.

Against capture servers on 127.0.0.1 with a CA of their own (unknown to the system), with
STARTTLS, implicit TLS or none, and AUTH.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import trustme

from logging_support import HOST, OPS, SENDER, logger_for, records_in
from postwire.capture import CaptureServer
from postwire.errors import ConfigError
from postwire.logging import SMTPHandler

StartCapture = Callable[..., CaptureServer]
MakeHandler = Callable[..., SMTPHandler]
USER, PASSWORD = "app", "s3cret-Pa55"
HOUR = 3600.0


def only_line(err: str) -> str:
    (line,) = err.splitlines()
    return line


def test_an_untrusted_certificate_is_refused_and_reported(
    start_capture: StartCapture, handler_for: MakeHandler, capsys: pytest.CaptureFixture[str]
) -> None:
    server = start_capture(tls="starttls")
    # No CA given: the system's trust store does not know the capture server's private CA.
    handler = handler_for(mailhost=(HOST, server.port), batch_delay=HOUR)
    logger_for(handler).error("secret")
    assert handler.send_pending() is False
    line = only_line(capsys.readouterr().err)
    assert "(dropped): CertificateError:" in line and "cafile" in line
    assert server.messages == []
    assert (handler.send_failures, handler.records_dropped) == (1, 1)


def test_with_its_ca_the_same_server_gets_the_records_over_tls(
    start_capture: StartCapture, handler_for: MakeHandler
) -> None:
    server = start_capture(tls="starttls", auth={USER: PASSWORD})
    handler = handler_for(server, credentials=(USER, PASSWORD), batch_delay=HOUR)
    logger_for(handler).error("hello")
    assert handler.send_pending()
    (message,) = server.messages
    assert message.tls and message.auth_user == USER
    assert records_in(message) == ["hello"]
    assert message.email()["Auto-Submitted"] == "auto-generated"


def test_without_tls_offered_nothing_is_sent_by_default(
    start_capture: StartCapture, handler_for: MakeHandler, capsys: pytest.CaptureFixture[str]
) -> None:
    # The stdlib handler would send these records, and the password, in clear.
    server = start_capture(tls="none", auth={USER: PASSWORD}, auth_require_tls=False)
    handler = handler_for(server, credentials=(USER, PASSWORD), batch_delay=HOUR)
    logger_for(handler).error("secret")
    assert handler.send_pending() is False
    assert "(dropped): TLSRequired:" in only_line(capsys.readouterr().err)
    assert server.messages == []


def test_credentials_go_in_clear_only_when_asked_by_name(
    start_capture: StartCapture, handler_for: MakeHandler, capsys: pytest.CaptureFixture[str]
) -> None:
    server = start_capture(tls="none", auth={USER: PASSWORD}, auth_require_tls=False)
    plain = handler_for(
        server, credentials=(USER, PASSWORD), batch_delay=HOUR, client_options={"tls": "none"}
    )
    logger_for(plain).error("secret")
    assert plain.send_pending() is False  # no TLS asked, but no plain-text password either
    line = only_line(capsys.readouterr().err)
    assert "(dropped): PlaintextAuthRefused:" in line and PASSWORD not in line
    assert server.messages == []

    asked = handler_for(
        server,
        credentials=(USER, PASSWORD),
        batch_delay=HOUR,
        client_options={"tls": "none", "allow_plaintext_auth": True},
    )
    logger_for(asked).error("in clear, as asked")
    assert asked.send_pending()
    (message,) = server.messages
    assert not message.tls and message.auth_user == USER


def test_plain_smtp_without_credentials_when_asked(
    start_capture: StartCapture, handler_for: MakeHandler
) -> None:
    server = start_capture(tls="none")
    handler = handler_for(server, batch_delay=HOUR, client_options={"tls": "none"})
    logger_for(handler).error("to a local relay")
    assert handler.send_pending()
    assert not server.messages[0].tls


def test_a_url_names_the_server_the_tls_mode_and_the_sender(
    start_capture: StartCapture, handler_for: MakeHandler
) -> None:
    server = start_capture(tls="implicit", auth={USER: PASSWORD})
    url = (
        f"smtps://{USER}:{PASSWORD}@{HOST}:{server.port}"
        f"?cafile={server.ca_file}&from=alerts%40example.org"
    )
    handler = handler_for(url=url, fromaddr=None, batch_delay=HOUR)
    logger_for(handler).error("over implicit TLS")
    assert handler.send_pending()
    (message,) = server.messages
    assert message.mail_from == "alerts@example.org"
    assert message.tls and message.auth_user == USER
    assert handler.target == f"{HOST}:{server.port}"


def test_a_config_file_account(
    start_capture: StartCapture,
    handler_for: MakeHandler,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = start_capture(tls="starttls", auth={USER: PASSWORD})
    config = tmp_path / "config.toml"
    config.write_text(
        "[accounts.alerts]\n"
        f'server = "{HOST}:{server.port}"\n'
        f'cafile = "{server.ca_file}"\n'
        f'user = "{USER}"\n'
        'password_env = "ALERTS_PASSWORD"\n'
        'from = "alerts@example.org"\n'
    )
    monkeypatch.setenv("ALERTS_PASSWORD", PASSWORD)
    handler = handler_for(account="alerts", config=str(config), fromaddr=None, batch_delay=HOUR)
    logger_for(handler).error("from the account")
    assert handler.send_pending()
    (message,) = server.messages
    assert (message.mail_from, message.auth_user, message.tls) == (
        "alerts@example.org",
        USER,
        True,
    )
    with pytest.raises(ConfigError):
        handler_for(account="missing", config=str(config))


def test_client_options_reach_the_client_a_pinned_certificate(
    start_capture: StartCapture, handler_for: MakeHandler
) -> None:
    server = start_capture(tls="starttls")
    handler = handler_for(
        mailhost=(HOST, server.port),
        client_options={"tls_fingerprint": server.certificate_fingerprint},
        batch_delay=HOUR,
    )
    logger_for(handler).error("pinned")
    assert handler.send_pending()
    assert server.messages[0].tls


def test_secure_presents_a_client_certificate(
    start_capture: StartCapture, handler_for: MakeHandler, tmp_path: Path
) -> None:
    # The capture server does not ask for one; the point here is that the files named by
    # ``secure`` are loaded and the verified connection still works with them.
    cert = trustme.CA().issue_cert("client.example.org")
    key_file, cert_file = tmp_path / "client.key", tmp_path / "client.pem"
    cert.private_key_pem.write_to_path(str(key_file))
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    server = start_capture(tls="starttls")
    handler = handler_for(server, secure=(str(key_file), str(cert_file)), batch_delay=HOUR)
    logger_for(handler).error("with a client certificate")
    assert handler.send_pending()
    assert server.messages[0].tls


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"fromaddr": None}, "fromaddr"),
        ({"toaddrs": []}, "toaddrs"),
        ({"fromaddr": "app@example.org\r\nBcc: x@evil.example"}, None),
        ({"toaddrs": ["ops@example.org\r\nBcc: x@evil.example"]}, None),
        ({"subject": "two\nlines"}, None),
        ({"client_options": {"tls": "sometimes"}}, "tls"),
        ({"flush_timeout": 0}, "flush_timeout"),
        ({"rate_limit": 0}, "rate_limit"),
        ({"mailhost": None}, "mailhost"),
    ],
)
def test_mistakes_fail_at_configuration_not_at_log_time(
    kwargs: dict[str, object], match: str | None
) -> None:
    arguments: dict[str, object] = {
        "mailhost": ("mx.example.org", 587),
        "fromaddr": SENDER,
        "toaddrs": [OPS],
        "subject": "app",
    }
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=match):
        SMTPHandler(**arguments)  # type: ignore[arg-type]
