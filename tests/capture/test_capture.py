"""Tests of the capture server itself, driven by the stdlib smtplib over 127.0.0.1."""

from __future__ import annotations

import base64
import logging
import smtplib
import ssl
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from postwire.capture import CapturedMessage, CaptureServer

HOST = "127.0.0.1"
CLIENT_TIMEOUT = 5.0
USERS = {"alice": "s3cret", "bob": "hunter2", "zoë": "pässword"}

MESSAGE = (
    b"From: a@example.org\r\n"
    b"To: b@example.org\r\n"
    b"Subject: Hi there\r\n"
    b"\r\n"
    b"first line\r\n"
    b".a line that starts with a dot\r\n"
    b"trailing spaces   \r\n"
    b"\r\n"
    b"last line\r\n"
)

StartServer = Callable[..., CaptureServer]


@pytest.fixture
def start_server(start_capture: StartServer) -> StartServer:
    """``start_capture`` (tests/conftest.py) under this file's name for it."""
    return start_capture


def plain_client(server: CaptureServer) -> smtplib.SMTP:
    client = smtplib.SMTP(HOST, server.port, timeout=CLIENT_TIMEOUT)
    client.ehlo("client.test")
    return client


def tls_client(server: CaptureServer) -> smtplib.SMTP:
    client = plain_client(server)
    client.starttls(context=server.client_ssl_context())
    client.ehlo("client.test")
    return client


# -- storing messages ----------------------------------------------------------------------------


def test_plain_message_is_stored_byte_exact_in_memory_and_maildir(
    start_server: StartServer, tmp_path: Path
) -> None:
    maildir = tmp_path / "Maildir"
    server = start_server(tls="none", maildir=maildir)
    with plain_client(server) as client:
        refused = client.sendmail("a@example.org", ["b@example.org", "c@example.org"], MESSAGE)
        assert refused == {}
    (msg,) = server.wait_for(1)
    # smtplib dot-stuffed the ".a line"; the server must undo it (RFC 5321 section 4.5.2).
    assert msg.data == MESSAGE
    assert msg.mail_from == "a@example.org"
    assert msg.rcpt_tos == ["b@example.org", "c@example.org"]
    assert msg.tls is False
    assert msg.auth_user is None
    assert msg.peer is not None and msg.peer[0] == HOST
    assert msg.received_at.tzinfo is not None
    assert abs((datetime.now(timezone.utc) - msg.received_at).total_seconds()) < 60
    assert msg.email()["Subject"] == "Hi there"

    # The envelope and session facts go beside the Maildir folders, for a restart to read.
    assert sorted(p.name for p in maildir.iterdir()) == ["cur", "new", "postwire", "tmp"]
    assert list((maildir / "tmp").iterdir()) == []
    (stored,) = list((maildir / "new").iterdir())
    assert msg.path == stored
    assert stored.read_bytes() == MESSAGE


def test_maildir_failure_answers_451(start_server: StartServer, tmp_path: Path) -> None:
    server = start_server(tls="none", maildir=tmp_path)
    (tmp_path / "tmp").rmdir()  # delivery into tmp/ now fails
    with plain_client(server) as client:
        assert client.mail("a@example.org")[0] == 250
        assert client.rcpt("b@example.org")[0] == 250
        code, _ = client.data(MESSAGE)
        assert code == 451  # transient: the client may try again
    assert server.messages == []


def test_eight_bit_and_smtputf8_are_advertised_and_kept(start_server: StartServer) -> None:
    server = start_server(tls="none")
    body = "Subject: Grüße\r\n\r\nпривет, 世界\r\n".encode()
    with plain_client(server) as client:
        assert client.has_extn("8bitmime")
        assert client.has_extn("smtputf8")
        client.sendmail(
            "josé@example.org",
            ["用户@example.org"],
            body,
            mail_options=["BODY=8BITMIME", "SMTPUTF8"],
        )
    (msg,) = server.wait_for(1)
    assert msg.data == body
    assert msg.mail_from == "josé@example.org"
    assert msg.rcpt_tos == ["用户@example.org"]
    assert "BODY=8BITMIME" in msg.mail_options
    assert "SMTPUTF8" in msg.mail_options


def test_null_reverse_path_and_several_messages_on_one_connection(
    start_server: StartServer,
) -> None:
    server = start_server(tls="none")
    with plain_client(server) as client:
        client.sendmail("", ["postmaster@example.org"], b"Subject: bounce\r\n\r\nx\r\n")
        client.sendmail("a@example.org", ["b@example.org"], b"Subject: second\r\n\r\ny\r\n")
    first, second = server.wait_for(2)
    assert first.mail_from == ""
    assert first.summary().split()[1] == "from=<>"
    assert second.data == b"Subject: second\r\n\r\ny\r\n"


def test_message_over_the_size_limit_is_refused(start_server: StartServer) -> None:
    server = start_server(tls="none", data_size_limit=1000)
    with plain_client(server) as client:
        assert client.has_extn("size")
        assert client.esmtp_features["size"] == "1000"
        with pytest.raises(smtplib.SMTPSenderRefused) as err:  # SIZE= in MAIL (RFC 1870)
            client.sendmail("a@example.org", ["b@example.org"], b"x" * 2000)
        assert err.value.smtp_code == 552
        client.rset()
        # Without SIZE= the limit is enforced after the data.
        assert client.mail("a@example.org")[0] == 250
        assert client.rcpt("b@example.org")[0] == 250
        assert client.data((b"y" * 98 + b"\r\n") * 20)[0] == 552
    assert server.messages == []


# -- TLS -----------------------------------------------------------------------------------------


def test_starttls_verified_with_client_ssl_context(start_server: StartServer) -> None:
    server = start_server(tls="starttls")
    with plain_client(server) as client:
        assert client.has_extn("starttls")
        client.starttls(context=server.client_ssl_context())
        sock = client.sock
        assert isinstance(sock, ssl.SSLSocket)
        assert sock.version() in ("TLSv1.2", "TLSv1.3")
        client.ehlo("client.test")
        assert not client.has_extn("starttls")
        client.sendmail("a@example.org", ["b@example.org"], MESSAGE)
    (msg,) = server.wait_for(1)
    assert msg.tls is True
    assert msg.data == MESSAGE
    assert "tls=yes" in msg.summary()


def test_starttls_verified_with_ca_file(start_server: StartServer) -> None:
    server = start_server(tls="starttls")
    assert server.ca_file.read_bytes() == server.ca_pem
    context = ssl.create_default_context(cafile=str(server.ca_file))
    with plain_client(server) as client:
        client.starttls(context=context)
        client.ehlo("client.test")
        sock = client.sock
        assert isinstance(sock, ssl.SSLSocket)
        cert = sock.getpeercert()
        assert cert is not None
        assert ("IP Address", HOST) in cert["subjectAltName"]
        assert ("DNS", "localhost") in cert["subjectAltName"]
        client.sendmail("a@example.org", ["b@example.org"], MESSAGE)
    assert server.wait_for(1)[0].tls is True


def test_starttls_is_refused_by_a_client_that_does_not_trust_the_ca(
    start_server: StartServer,
) -> None:
    server = start_server(tls="starttls")
    with plain_client(server) as client, pytest.raises(ssl.SSLCertVerificationError):
        client.starttls(context=ssl.create_default_context())


def test_certificate_is_ec_p256_short_lived_and_signed_by_the_ca(
    start_server: StartServer,
) -> None:
    server = start_server(tls="implicit")
    ca = x509.load_pem_x509_certificate(server.ca_pem)
    pem = ssl.get_server_certificate((HOST, server.port), timeout=CLIENT_TIMEOUT)
    leaf = x509.load_pem_x509_certificate(pem.encode("ascii"))
    assert leaf.issuer == ca.subject
    leaf.verify_directly_issued_by(ca)
    assert leaf.public_key().curve.name == "secp256r1"  # type: ignore[union-attr]
    lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert lifetime.days <= 2
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1", "::1"]


def test_implicit_tls(start_server: StartServer) -> None:
    server = start_server(tls="implicit", auth=USERS)
    with smtplib.SMTP_SSL(
        HOST, server.port, timeout=CLIENT_TIMEOUT, context=server.client_ssl_context()
    ) as client:
        client.ehlo("client.test")
        assert not client.has_extn("starttls")
        # The whole connection is encrypted, so AUTH is offered at once.
        assert client.has_extn("auth")
        client.login("alice", "s3cret")
        client.sendmail("a@example.org", ["b@example.org"], MESSAGE)
    (msg,) = server.wait_for(1)
    assert msg.tls is True
    assert msg.auth_user == "alice"
    assert msg.data == MESSAGE


def test_require_starttls_refuses_mail_before_starttls(start_server: StartServer) -> None:
    server = start_server(tls="starttls", require_starttls=True)
    with plain_client(server) as client:
        assert client.mail("a@example.org")[0] == 530
        client.starttls(context=server.client_ssl_context())
        client.ehlo("client.test")
        assert client.mail("a@example.org")[0] == 250


def test_no_tls_mode_offers_no_starttls_and_no_certificate(start_server: StartServer) -> None:
    server = start_server(tls="none")
    with plain_client(server) as client:
        assert not client.has_extn("starttls")
    with pytest.raises(RuntimeError):
        _ = server.ca_file
    with pytest.raises(RuntimeError):
        server.client_ssl_context()


# -- AUTH ----------------------------------------------------------------------------------------


def _login_with(
    client: smtplib.SMTP, mechanism: str, user: str, password: str, *, initial: bool = True
) -> None:
    """AUTH with one mechanism; ``initial`` sends an initial response (RFC 4954) when possible."""
    client.user, client.password = user, password
    methods: dict[str, Any] = {
        "PLAIN": client.auth_plain,
        "LOGIN": client.auth_login,
        "CRAM-MD5": client.auth_cram_md5,
    }
    client.auth(mechanism, methods[mechanism], initial_response_ok=initial)


@pytest.mark.parametrize(
    ("mechanism", "initial"),
    [("PLAIN", True), ("PLAIN", False), ("LOGIN", True), ("LOGIN", False), ("CRAM-MD5", False)],
)
@pytest.mark.parametrize("user", ["alice", "bob"])  # smtplib cannot send zoë's password
def test_auth_success(start_server: StartServer, mechanism: str, initial: bool, user: str) -> None:
    server = start_server(tls="starttls", auth=USERS)
    with tls_client(server) as client:
        advertised = client.esmtp_features["auth"].split()
        assert sorted(advertised) == ["CRAM-MD5", "LOGIN", "PLAIN"]
        _login_with(client, mechanism, user, USERS[user], initial=initial)
        client.sendmail("a@example.org", ["b@example.org"], MESSAGE)
    (msg,) = server.wait_for(1)
    assert msg.auth_user == user
    assert f"auth={user}" in msg.summary()


@pytest.mark.parametrize(
    ("mechanism", "initial"),
    [("PLAIN", True), ("PLAIN", False), ("LOGIN", True), ("LOGIN", False), ("CRAM-MD5", False)],
)
@pytest.mark.parametrize(("user", "password"), [("alice", "wrong"), ("mallory", "s3cret")])
def test_auth_failure_answers_535_promptly(
    start_server: StartServer, mechanism: str, initial: bool, user: str, password: str
) -> None:
    server = start_server(tls="starttls", auth=USERS)
    with tls_client(server) as client:
        started = time.monotonic()
        with pytest.raises(smtplib.SMTPAuthenticationError) as err:
            _login_with(client, mechanism, user, password, initial=initial)
        assert err.value.smtp_code == 535
        assert time.monotonic() - started < 2.0
        # The session goes on: a second, correct attempt works.
        _login_with(client, mechanism, "alice", "s3cret", initial=initial)
        assert client.noop()[0] == 250


def test_auth_plain_with_utf8_credentials(start_server: StartServer) -> None:
    # smtplib only sends ASCII credentials; RFC 4616 allows UTF-8, so speak AUTH PLAIN directly.
    server = start_server(tls="starttls", auth=USERS)
    with tls_client(server) as client:
        bad = base64.b64encode("\0zoë\0password".encode()).decode("ascii")
        assert client.docmd("AUTH", f"PLAIN {bad}")[0] == 535
        good = base64.b64encode("\0zoë\0pässword".encode()).decode("ascii")
        assert client.docmd("AUTH", f"PLAIN {good}")[0] == 235
        client.sendmail("a@example.org", ["b@example.org"], MESSAGE)
    assert server.wait_for(1)[0].auth_user == "zoë"


def test_auth_is_hidden_until_starttls_by_default(start_server: StartServer) -> None:
    server = start_server(tls="starttls", auth=USERS)
    with plain_client(server) as client:
        assert not client.has_extn("auth")
        code, _ = client.docmd("AUTH", "PLAIN AGFsaWNlAHMzY3JldA==")
        assert code == 538  # RFC 4954: encryption required for requested mechanism


def test_auth_over_plain_text_when_allowed(start_server: StartServer) -> None:
    server = start_server(tls="starttls", auth=USERS, auth_require_tls=False)
    with plain_client(server) as client:
        assert client.has_extn("auth")
        client.login("alice", "s3cret")
        client.sendmail("a@example.org", ["b@example.org"], MESSAGE)
    (msg,) = server.wait_for(1)
    assert (msg.tls, msg.auth_user) == (False, "alice")


def test_require_auth_refuses_mail_before_auth(start_server: StartServer) -> None:
    server = start_server(tls="none", auth=USERS, require_auth=True)
    with plain_client(server) as client:
        code, text = client.mail("a@example.org")
        assert code == 530
        assert b"Authentication required" in text
        with pytest.raises(smtplib.SMTPSenderRefused):
            client.sendmail("a@example.org", ["b@example.org"], MESSAGE)
        client.login("alice", "s3cret")
        assert client.sendmail("a@example.org", ["b@example.org"], MESSAGE) == {}
    assert [m.auth_user for m in server.wait_for(1)] == ["alice"]


def test_without_auth_mapping_auth_is_not_offered(start_server: StartServer) -> None:
    server = start_server(tls="none")
    with plain_client(server) as client:
        assert not client.has_extn("auth")
        code, _ = client.docmd("AUTH", "PLAIN AGFsaWNlAHMzY3JldA==")
        assert code == 504


# -- summary, callback, logging ------------------------------------------------------------------


def test_summary_line_format() -> None:
    data = b'Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe_"quoted"?=\r\n\r\nbody\r\n'
    msg = CapturedMessage(
        mail_from="a@x",
        rcpt_tos=["b@y", "c@z"],
        data=data,
        peer=(HOST, 12345),
        tls=True,
        auth_user="alice",
        received_at=datetime(2026, 11, 28, 10, 0, 0, 123456, tzinfo=timezone.utc),
    )
    assert msg.subject == 'Grüße "quoted"'
    assert msg.summary() == (
        f"2026-11-28T10:00:00Z from=<a@x> to=<b@y>,<c@z> size={len(data)} tls=yes auth=alice "
        'subject="Grüße \\"quoted\\""'
    )


def test_summary_without_subject_tls_or_auth() -> None:
    msg = CapturedMessage(
        mail_from="a@x",
        rcpt_tos=["b@y"],
        data=b"X-Other: 1\r\n\r\nSubject: not a header\r\n",  # 37 bytes
        peer=None,
        tls=False,
        auth_user=None,
        received_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
    )
    assert msg.subject is None
    assert msg.summary() == (
        '2026-01-02T03:04:05Z from=<a@x> to=<b@y> size=37 tls=no auth=- subject=""'
    )


def test_on_message_callback_and_log_line(
    start_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[tuple[CapturedMessage, str]] = []
    event = threading.Event()

    def on_message(msg: CapturedMessage) -> None:
        seen.append((msg, threading.current_thread().name))
        event.set()

    caplog.set_level(logging.INFO, logger="postwire.capture")
    server = start_server(tls="none", on_message=on_message)
    with plain_client(server) as client:
        client.sendmail("a@example.org", ["b@example.org"], MESSAGE)
    assert event.wait(CLIENT_TIMEOUT)
    (msg,) = server.messages
    assert seen[0][0] is msg
    summaries = [r.getMessage() for r in caplog.records if r.name == "postwire.capture"]
    assert msg.summary() in summaries
    assert 'subject="Hi there"' in msg.summary()
    assert f"size={len(MESSAGE)}" in msg.summary()


def test_failing_callback_does_not_refuse_the_message(start_server: StartServer) -> None:
    def on_message(msg: CapturedMessage) -> None:
        raise RuntimeError("boom")

    server = start_server(tls="none", on_message=on_message)
    with plain_client(server) as client:
        assert client.sendmail("a@example.org", ["b@example.org"], MESSAGE) == {}
    assert len(server.wait_for(1)) == 1


# -- waiting, clearing, life cycle ---------------------------------------------------------------


def test_wait_for_times_out(start_server: StartServer) -> None:
    server = start_server(tls="none")
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        server.wait_for(1, timeout=0.3)
    assert 0.25 <= time.monotonic() - started < 3.0


def test_wait_for_wakes_up_when_a_message_arrives(start_server: StartServer) -> None:
    server = start_server(tls="none")

    def send_later() -> None:
        time.sleep(0.2)
        with plain_client(server) as client:
            client.sendmail("a@example.org", ["b@example.org"], MESSAGE)

    sender = threading.Thread(target=send_later)
    sender.start()
    try:
        assert len(server.wait_for(1, timeout=CLIENT_TIMEOUT)) == 1
    finally:
        sender.join(CLIENT_TIMEOUT)


def test_clear_and_messages_copy(start_server: StartServer) -> None:
    server = start_server(tls="none")
    with plain_client(server) as client:
        client.sendmail("a@example.org", ["b@example.org"], MESSAGE)
    snapshot = server.wait_for(1)
    snapshot.clear()
    assert len(server.messages) == 1
    server.clear()
    assert server.messages == []


def test_port_zero_gives_a_real_port() -> None:
    server = CaptureServer(HOST, 0, tls="none")
    with pytest.raises(RuntimeError):
        _ = server.port
    with server:
        assert server.host == HOST
        assert 0 < server.port < 65536
        with plain_client(server) as client:
            assert client.noop()[0] == 250


def test_two_servers_at_once(start_server: StartServer) -> None:
    first = start_server(tls="none")
    second = start_server(tls="starttls")
    assert first.port != second.port
    with plain_client(first) as client:
        client.sendmail("a@example.org", ["one@example.org"], b"Subject: 1\r\n\r\n1\r\n")
    with tls_client(second) as client:
        client.sendmail("a@example.org", ["two@example.org"], b"Subject: 2\r\n\r\n2\r\n")
    assert [m.rcpt_tos for m in first.wait_for(1)] == [["one@example.org"]]
    assert [m.rcpt_tos for m in second.wait_for(1)] == [["two@example.org"]]
    assert (first.messages[0].tls, second.messages[0].tls) == (False, True)


def test_stop_closes_the_port_and_removes_the_ca_file() -> None:
    server = CaptureServer(HOST, 0)
    with server:
        port = server.port
        ca_file = server.ca_file
        assert ca_file.exists()
        with tls_client(server) as client:
            client.sendmail("a@example.org", ["b@example.org"], MESSAGE)
        server.wait_for(1)
    assert not ca_file.exists()
    assert len(server.messages) == 1  # kept after stop
    with pytest.raises(OSError):
        smtplib.SMTP(HOST, port, timeout=CLIENT_TIMEOUT)
    server.stop()  # stopping twice is harmless


def test_stop_with_a_client_still_connected() -> None:
    server = CaptureServer(HOST, 0, tls="none")
    server.start()
    client = plain_client(server)
    try:
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 3.0
        with pytest.raises((smtplib.SMTPServerDisconnected, OSError)):
            client.noop()
    finally:
        client.close()


def test_start_twice_is_an_error(start_server: StartServer) -> None:
    server = start_server(tls="none")
    with pytest.raises(RuntimeError):
        server.start()


def test_port_in_use_raises_on_start(start_server: StartServer) -> None:
    first = start_server(tls="starttls")
    second = CaptureServer(HOST, first.port, tls="starttls")
    started = time.monotonic()
    with pytest.raises(OSError):
        second.start()
    assert time.monotonic() - started < 2.0
    with pytest.raises(RuntimeError):
        _ = second.ca_file  # nothing left behind
    second.stop()
    with plain_client(first) as client:  # the first server is unharmed
        assert client.noop()[0] == 250


@pytest.mark.parametrize(
    "kwargs",
    [
        {"tls": "ssl"},
        {"require_auth": True},
        {"tls": "none", "auth": USERS, "auth_require_tls": True},
        {"port": 70000},
    ],
)
def test_bad_arguments(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        CaptureServer(HOST, **kwargs)


@pytest.mark.parametrize(
    "arg",
    [
        "<a@example.org>",
        "<a.b+c@example.org> SIZE=100 BODY=8BITMIME",
        "<first.last@sub.example-x.org>",
        "<a@b>",
        "<>",
        "<a..b@example.org>",
        '<"quoted local"@example.org>',
        "<a@[127.0.0.1]>",
        "<@relay.example:a@example.org>",
        "a@example.org",
        "<a@example.org",
        "<josé@example.org>",
        "<a@-bad.example>",
        "<a@example.org> (comment) SIZE=1",
        "<a@example.org>\tSIZE=1",
    ],
)
def test_fast_path_reads_paths_as_aiosmtpd_does(arg: str) -> None:
    from aiosmtpd.smtp import SMTP

    from postwire.capture.protocol import CaptureHandler, CaptureSMTP

    ours = CaptureSMTP(
        CaptureHandler(lambda m: None, advertise_auth=False), users=None, require_auth=False
    )
    theirs = SMTP(CaptureHandler(lambda m: None, advertise_auth=False))
    assert ours._getaddr(arg) == theirs._getaddr(arg)
