"""Every setting Django documents for its SMTP backend, and postwire's own, seen by the server.

Django's "Settings" reference lists EMAIL_HOST, EMAIL_PORT, EMAIL_HOST_USER,
EMAIL_HOST_PASSWORD, EMAIL_USE_TLS, EMAIL_USE_SSL, EMAIL_TIMEOUT, EMAIL_SSL_CERTFILE and
EMAIL_SSL_KEYFILE for the SMTP backend (EMAIL_SUBJECT_PREFIX and EMAIL_USE_LOCALTIME shape the
message, DEFAULT_CHARSET its encoding).  Each test checks on the server's side what the
setting should cause: TLS or not, the AUTH user, the client certificate, the timeout.
"""

from __future__ import annotations

import email
import email.policy
import os
import re
import smtplib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core import mail
from django.test import override_settings

from backend_helpers import PASSWORD, USER, StartCapture, capture_settings, postfix_settings
from postwire import Client, SendResult
from postwire import errors as pw
from postwire.capture import CaptureServer
from postwire.capture.faults import FaultScript
from servers.opendkim import DOMAIN, DkimVerifier, dkim_verdicts
from servers.postfix import PostfixServer

ALICE = "alice@test.example"


def _send(subject: str = "Hi", to: str = ALICE, **connection: object) -> int:
    return mail.send_mail(subject, "body\n", "webmaster@test.example", [to], **connection)


def _received_field(raw: bytes) -> str:
    """The Received field Postfix added (the first one), unfolded."""
    parsed = email.message_from_bytes(raw, policy=email.policy.compat32)
    return " ".join(str(parsed["Received"]).split())


# -- where to, and how: EMAIL_HOST, EMAIL_PORT, EMAIL_USE_TLS, EMAIL_USE_SSL ------------------


def test_email_use_tls_is_starttls_verified_and_logs_in(capture: CaptureServer) -> None:
    with override_settings(**capture_settings(capture)):
        assert _send() == 1
    (got,) = capture.wait_for(1)
    assert "C: STARTTLS" in got.transcript
    assert got.tls and got.tls_version in ("TLSv1.2", "TLSv1.3")
    assert got.auth_user == USER  # EMAIL_HOST_USER / EMAIL_HOST_PASSWORD


def test_email_use_ssl_is_tls_from_the_first_byte(start_capture: StartCapture) -> None:
    server = start_capture(tls="implicit", auth={USER: PASSWORD})
    with override_settings(**capture_settings(server, EMAIL_USE_TLS=False, EMAIL_USE_SSL=True)):
        assert _send() == 1
    (got,) = server.wait_for(1)
    assert got.tls and got.auth_user == USER
    assert "C: STARTTLS" not in got.transcript


def test_implicit_tls_against_postfix_smtps(postfix_inbox: PostfixServer) -> None:
    values = postfix_settings(
        postfix_inbox, postfix_inbox.smtps_port, EMAIL_USE_TLS=False, EMAIL_USE_SSL=True
    )
    with override_settings(**values):
        assert _send() == 1
    (raw,) = postfix_inbox.wait_for_messages(1)
    assert " with ESMTPSA " in _received_field(raw)  # RFC 3848: TLS (S) and AUTH (A)


def test_neither_tls_setting_is_plain_text_as_with_django(start_capture: StartCapture) -> None:
    server = start_capture(tls="starttls")  # STARTTLS offered, and not taken
    with override_settings(EMAIL_HOST="127.0.0.1", EMAIL_PORT=server.port):
        assert _send() == 1
    (got,) = server.wait_for(1)
    assert not got.tls and got.auth_user is None
    assert "C: STARTTLS" not in got.transcript


def test_opportunistic_tls_when_postwire_email_asks_for_it(start_capture: StartCapture) -> None:
    server = start_capture(tls="starttls")
    postwire_email = {"tls": "opportunistic", "cafile": str(server.ca_file)}
    with override_settings(
        EMAIL_HOST="127.0.0.1", EMAIL_PORT=server.port, POSTWIRE_EMAIL=postwire_email
    ):
        assert _send() == 1
    (got,) = server.wait_for(1)
    assert got.tls


def test_credentials_are_never_sent_in_clear_text(start_capture: StartCapture) -> None:
    # AUTH offered before STARTTLS: Django's backend would send the password unencrypted.
    server = start_capture(tls="starttls", auth={USER: PASSWORD}, auth_require_tls=False)
    lines: list[str] = []
    traced = {"transcript": lines.append}
    with override_settings(**capture_settings(server, EMAIL_USE_TLS=False, POSTWIRE_EMAIL=traced)):
        with pytest.raises(pw.PlaintextAuthRefused, match="EMAIL_USE_TLS = True") as info:
            _send()
        assert _send(fail_silently=True) == 0
    assert server.messages == []
    sent = [line.split("-> ", 1)[1] for line in lines if "-> " in line]
    assert sent[0].startswith("EHLO")  # the connection was made, then AUTH held back
    assert not any(line.startswith("AUTH") for line in sent)
    assert isinstance(info.value, smtplib.SMTPException)


def test_allow_plaintext_auth_sends_them_when_asked(start_capture: StartCapture) -> None:
    server = start_capture(tls="starttls", auth={USER: PASSWORD}, auth_require_tls=False)
    postwire_email = {"allow_plaintext_auth": True}
    with override_settings(
        **capture_settings(server, EMAIL_USE_TLS=False, POSTWIRE_EMAIL=postwire_email)
    ):
        assert _send() == 1
    (got,) = server.wait_for(1)
    assert not got.tls and got.auth_user == USER


def test_host_and_port_come_from_the_settings_and_arguments_override_them(
    capture: CaptureServer,
) -> None:
    # The settings point nowhere; the arguments (as get_connection passes them) win.
    with override_settings(**capture_settings(capture, EMAIL_PORT=1, EMAIL_HOST_USER="nobody")):
        backend = mail.get_connection(
            host="127.0.0.1", port=capture.port, username=USER, password=PASSWORD, use_tls=True
        )
        assert _send(connection=backend) == 1
    (got,) = capture.wait_for(1)
    assert got.tls and got.auth_user == USER


# -- EMAIL_SSL_CERTFILE / EMAIL_SSL_KEYFILE: the client certificate ---------------------------


def test_the_client_certificate_is_presented(postfix_inbox: PostfixServer) -> None:
    values = postfix_settings(
        postfix_inbox,
        postfix_inbox.recording_port,
        EMAIL_SSL_CERTFILE=str(postfix_inbox.client_cert_file),
        EMAIL_SSL_KEYFILE=str(postfix_inbox.client_key_file),
    )
    with override_settings(**values):
        assert _send("with a certificate") == 1
    with override_settings(**postfix_settings(postfix_inbox, postfix_inbox.recording_port)):
        assert _send("without") == 1
    with_cert, without = (_received_field(raw) for raw in postfix_inbox.wait_for_messages(2))
    # Postfix checked the certificate against the test CA (smtpd_tls_CAfile) and wrote it down.
    assert 'Client CN "postwire-client.test"' in with_cert and "(verified OK)" in with_cert
    assert "Client CN" not in without
    assert "(Authenticated sender: alice@test.example)" in with_cert


def test_a_key_file_without_a_certificate_is_a_configuration_error() -> None:
    from django.core.exceptions import ImproperlyConfigured

    with override_settings(EMAIL_SSL_KEYFILE="/nonexistent/client.key"):
        with pytest.raises(ImproperlyConfigured, match="EMAIL_SSL_CERTFILE"):
            mail.get_connection()


def test_an_unreadable_certificate_fails_at_open_as_with_django(capture: CaptureServer) -> None:
    values = capture_settings(capture, EMAIL_SSL_CERTFILE="/nonexistent/client.pem")
    with override_settings(**values):
        with pytest.raises(FileNotFoundError):
            _send()
        assert _send(fail_silently=True) == 0  # an OSError of open(): hidden, as Django does
    assert capture.messages == []


# -- EMAIL_TIMEOUT --------------------------------------------------------------------------


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port whose server accepts connections and never says anything."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        yield listener.getsockname()[1]


def test_email_timeout_bounds_every_step(silent_server: int) -> None:
    with override_settings(EMAIL_HOST="127.0.0.1", EMAIL_PORT=silent_server, EMAIL_TIMEOUT=0.5):
        backend = mail.get_connection()
        assert backend.timeout == 0.5
        with pytest.raises(pw.Timeout, match="greeting") as info:
            backend.open()
    assert isinstance(info.value, TimeoutError)  # as socket.timeout is for smtplib
    assert isinstance(info.value, smtplib.SMTPException)


def test_email_timeout_none_is_postwires_default_not_forever() -> None:
    with override_settings(EMAIL_TIMEOUT=None):
        backend = mail.get_connection()
    assert backend.timeout is None
    client = Client(**backend.config.client_options())
    assert client.timeouts.command == client.timeouts.greeting == 60.0


# -- what Django's message layer reads: EMAIL_USE_LOCALTIME, DEFAULT_CHARSET ----------------


@pytest.fixture
def process_time_zone() -> Iterator[None]:
    """The process's TZ as it was: Django sets it when TIME_ZONE changes, and on restore."""
    saved = os.environ.get("TZ")
    yield
    if saved is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = saved
    time.tzset()


def test_email_use_localtime_and_default_charset(
    start_capture: StartCapture, process_time_zone: None
) -> None:
    server = start_capture(tls="none")
    with override_settings(
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=server.port,
        TIME_ZONE="Asia/Kolkata",
        EMAIL_USE_LOCALTIME=True,
        DEFAULT_CHARSET="iso-8859-1",
    ):
        assert mail.send_mail("Café", "Crème brûlée\n", None, [ALICE]) == 1
    (got,) = server.wait_for(1)
    assert re.search(rb"^Date: .* \+0530\r$", got.data, re.MULTILINE)
    assert b'charset="iso-8859-1"' in got.data
    assert got.email().get_content().rstrip() == "Crème brûlée"


# -- POSTWIRE_EMAIL: the client's other options ------------------------------------------------


def test_a_pinned_certificate_instead_of_a_ca(capture: CaptureServer) -> None:
    pin = {"tls_fingerprint": capture.certificate_fingerprint}
    with override_settings(**capture_settings(capture, POSTWIRE_EMAIL=pin)):
        assert _send() == 1
    (got,) = capture.wait_for(1)
    assert got.tls and got.auth_user == USER


def test_an_smtp_url_replaces_the_connection_settings(capture: CaptureServer) -> None:
    url = f"smtp+starttls://{USER}:{PASSWORD}@127.0.0.1:{capture.port}?cafile={capture.ca_file}"
    # EMAIL_HOST and friends say something else: the URL wins over those six settings.
    with override_settings(**capture_settings(capture, EMAIL_PORT=1, POSTWIRE_EMAIL={"url": url})):
        backend = mail.get_connection()
        assert (backend.port, backend.use_tls) == (capture.port, True)
        assert _send(connection=backend) == 1
    (got,) = capture.wait_for(1)
    assert got.tls and got.auth_user == USER


def test_a_config_file_account(capture: CaptureServer, tmp_path: Path) -> None:
    (tmp_path / "password").write_text(PASSWORD + "\n")
    config = tmp_path / "config.toml"
    config.write_text(
        f'[accounts.app]\nserver = "127.0.0.1:{capture.port}"\ntls = "starttls"\n'
        f'user = "{USER}"\npassword_file = "{tmp_path / "password"}"\n'
        f'cafile = "{capture.ca_file}"\n'
    )
    postwire_email = {"account": "app", "config": str(config)}
    with override_settings(POSTWIRE_EMAIL=postwire_email):
        assert _send() == 1
    (got,) = capture.wait_for(1)
    assert got.tls and got.auth_user == USER


def test_dkim_signing_from_postwire_email(
    postfix_inbox: PostfixServer, dkim_oracle: DkimVerifier
) -> None:
    dkim = {"key": str(dkim_oracle.key_files["ed"]), "domain": DOMAIN, "selector": "ed"}
    values = postfix_settings(postfix_inbox, postfix_inbox.dkim_port)
    values["POSTWIRE_EMAIL"] = {**values["POSTWIRE_EMAIL"], "dkim": dkim}
    with override_settings(**values):
        assert mail.send_mail("Signed", "body\n", f"news@{DOMAIN}", [ALICE]) == 1
    (raw,) = postfix_inbox.wait_for_messages(1)
    assert dkim_verdicts(raw) == ["pass"]  # OpenDKIM, Postfix's milter, verified it


def test_no_final_reply_within_email_timeout_is_a_possible_delivery(
    start_capture: StartCapture,
) -> None:
    server = start_capture(tls="none", faults=FaultScript(delay_data_reply=2))
    message = mail.EmailMessage("slow", "x\n", None, [ALICE])
    with override_settings(EMAIL_HOST="127.0.0.1", EMAIL_PORT=server.port, EMAIL_TIMEOUT=0.5):
        assert mail.get_connection(fail_silently=True).send_messages([message]) == 0
    # Past the final dot the server may have kept it: postwire says so, and does not count it.
    assert isinstance(message.postwire_result, pw.PossiblyDelivered)
    assert not isinstance(message.postwire_result, SendResult)
