"""Checks of the private Postfix fixture itself, with the standard library's smtplib as client.

These make sure the server behaves as the integration tests of postwire expect (TLS modes, AUTH,
byte-exact delivery, recipient failures); they do not test postwire.
"""

from __future__ import annotations

import base64
import os
import smtplib
import ssl
import subprocess
import time

import pytest

from servers.postfix import PostfixServer, strip_trace

TIMEOUT = 10.0
SENDER = "sender@client.example"
ALICE = "alice@test.example"
BOB = "bob@test.example"  # the user with a non-ASCII password


def tls_context(server: PostfixServer) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(server.ca_file))


def plain_response(user: str, password: str) -> str:
    # RFC 4616: authzid NUL authcid NUL passwd, all UTF-8.
    raw = b"\0" + user.encode("utf-8") + b"\0" + password.encode("utf-8")
    return base64.b64encode(raw).decode("ascii")


def wait_for_log(server: PostfixServer, needle: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while needle not in server.maillog.read_text(errors="replace"):
        assert time.monotonic() < deadline, f"{needle!r} not in maillog after {timeout} s"
        time.sleep(0.05)


def test_ehlo_advertises_what_clients_rely_on(postfix: PostfixServer) -> None:
    with smtplib.SMTP(postfix.host, postfix.smtp_port, timeout=TIMEOUT) as smtp:
        code, _ = smtp.ehlo("client.example")
        assert code == 250
        for keyword in ("starttls", "pipelining", "chunking", "smtputf8", "8bitmime", "dsn"):
            assert smtp.has_extn(keyword), keyword
        assert smtp.esmtp_features["size"] == str(30 * 1024 * 1024)
        # smtpd_tls_auth_only=no: AUTH is offered before STARTTLS on this port.
        assert set(smtp.esmtp_features["auth"].split()) == {"PLAIN", "LOGIN", "CRAM-MD5"}


def test_starttls_then_auth_plain_with_utf8_password(postfix: PostfixServer) -> None:
    password = postfix.users[BOB]
    assert not password.isascii()
    with smtplib.SMTP(postfix.host, postfix.smtp_port, timeout=TIMEOUT) as smtp:
        smtp.ehlo("client.example")
        code, _ = smtp.starttls(context=tls_context(postfix))
        assert code == 220
        smtp.ehlo("client.example")
        # Failed attempts must not slow down later ones: with Dovecot's anvil penalty each would
        # wait 2, 4, 8 ... s; without it each failure costs at most Dovecot's 0.5 s timer tick.
        started = time.monotonic()
        for _ in range(3):
            code, _ = smtp.docmd("AUTH", "PLAIN " + plain_response(BOB, "wrong"))
            assert code == 535
        assert time.monotonic() - started < 3.0
        code, _ = smtp.docmd("AUTH", "PLAIN " + plain_response(BOB, password))
        assert code == 235


@pytest.mark.parametrize("mechanism", ["CRAM-MD5", "LOGIN", "PLAIN"])
def test_every_mechanism_authenticates(postfix: PostfixServer, mechanism: str) -> None:
    with smtplib.SMTP(postfix.host, postfix.smtp_port, timeout=TIMEOUT) as smtp:
        smtp.starttls(context=tls_context(postfix))
        smtp.user, smtp.password = ALICE, postfix.users[ALICE]
        if mechanism == "CRAM-MD5":
            code, _ = smtp.auth(mechanism, smtp.auth_cram_md5)
        elif mechanism == "LOGIN":
            code, _ = smtp.auth(mechanism, smtp.auth_login)
        else:
            code, _ = smtp.auth(mechanism, smtp.auth_plain)
        assert code == 235


def test_certificate_is_rejected_without_the_test_ca(postfix: PostfixServer) -> None:
    with smtplib.SMTP(postfix.host, postfix.smtp_port, timeout=TIMEOUT) as smtp:
        smtp.ehlo("client.example")
        with pytest.raises(ssl.SSLCertVerificationError):
            smtp.starttls(context=ssl.create_default_context())


def test_dot_lines_arrive_byte_exact(postfix_inbox: PostfixServer) -> None:
    message = (
        b"From: <sender@client.example>\r\n"
        b"To: <alice@test.example>\r\n"
        b"Subject: dots\r\n"
        b"\r\n"
        b".starts with a dot\r\n"
        b"..starts with two dots\r\n"
        b".\r\n"
        b"the line above is a single dot\r\n"
        b" \r\n"
        b"last line\r\n"
    )
    with smtplib.SMTP(postfix_inbox.host, postfix_inbox.smtp_port, timeout=TIMEOUT) as smtp:
        smtp.starttls(context=tls_context(postfix_inbox))
        assert smtp.sendmail(SENDER, [ALICE], message) == {}
    [raw] = postfix_inbox.wait_for_messages(1)
    assert strip_trace(raw) == message


def test_utf8_message_arrives_byte_exact(postfix_inbox: PostfixServer) -> None:
    message = (
        "From: Jöran <jöran@client.example>\r\n"
        "To: <ünïcode@test.example>\r\n"
        "Subject: grüße, 日本語\r\n"
        "\r\n"
        "8-bit body: ÄÖÜ ß € 🚀\r\n"
    ).encode()
    with smtplib.SMTP(postfix_inbox.host, postfix_inbox.smtp_port, timeout=TIMEOUT) as smtp:
        refused = smtp.sendmail(
            "jöran@client.example",
            ["ünïcode@test.example"],
            message,
            mail_options=["SMTPUTF8", "BODY=8BITMIME"],
        )
        assert refused == {}
    [raw] = postfix_inbox.wait_for_messages(1)
    assert raw.startswith("Return-Path: <jöran@client.example>\n".encode())
    assert strip_trace(raw) == message


def test_recipient_failures_are_per_recipient(postfix_inbox: PostfixServer) -> None:
    recipients = [ALICE, postfix_inbox.rejected_recipient, postfix_inbox.tempfail_recipient]
    recipients.append("sink@discard.test")
    message = b"Subject: partial\r\n\r\nbody\r\n"
    with smtplib.SMTP(postfix_inbox.host, postfix_inbox.smtp_port, timeout=TIMEOUT) as smtp:
        refused = smtp.sendmail(SENDER, recipients, message)
    assert set(refused) == {postfix_inbox.rejected_recipient, postfix_inbox.tempfail_recipient}
    assert refused[postfix_inbox.rejected_recipient][0] == 550
    assert refused[postfix_inbox.tempfail_recipient] == (
        450,
        b"4.2.0 <tempfail@test.example>: Recipient address rejected: try later",
    )
    # Accepted for discard.test, but never in the Maildir.
    wait_for_log(postfix_inbox, "to=<sink@discard.test>")
    [raw] = postfix_inbox.wait_for_messages(1)
    assert b"Delivered-To: alice@test.example\n" in raw
    assert len(postfix_inbox.messages()) == 1


def test_other_domains_are_refused(postfix: PostfixServer) -> None:
    with smtplib.SMTP(postfix.host, postfix.smtp_port, timeout=TIMEOUT) as smtp:
        smtp.starttls(context=tls_context(postfix))
        smtp.login(ALICE, postfix.users[ALICE])  # authenticated clients may not relay either
        assert smtp.mail(SENDER)[0] == 250
        code, _ = smtp.rcpt("someone@example.org")
        assert code == 554


def test_implicit_tls_port(postfix: PostfixServer) -> None:
    with smtplib.SMTP_SSL(
        postfix.host, postfix.smtps_port, context=tls_context(postfix), timeout=TIMEOUT
    ) as smtp:
        smtp.ehlo("client.example")
        assert not smtp.has_extn("starttls")
        code, _ = smtp.login(ALICE, postfix.users[ALICE])
        assert code == 235
        assert smtp.noop()[0] == 250


def test_submission_port_requires_starttls(postfix: PostfixServer) -> None:
    with smtplib.SMTP(postfix.host, postfix.submission_port, timeout=TIMEOUT) as smtp:
        smtp.ehlo("client.example")
        assert smtp.has_extn("starttls")
        assert not smtp.has_extn("auth")
        code, _ = smtp.docmd("AUTH", "PLAIN " + plain_response(ALICE, postfix.users[ALICE]))
        assert 500 <= code < 600
        assert smtp.mail(SENDER)[0] == 530
        smtp.starttls(context=tls_context(postfix))
        smtp.ehlo("client.example")
        assert smtp.has_extn("auth")
        assert smtp.login(ALICE, postfix.users[ALICE])[0] == 235


def _xoauth2(user: str, token: str) -> str:
    raw = f"user={user}\x01auth=Bearer {token}\x01\x01".encode()
    return "XOAUTH2 " + base64.b64encode(raw).decode("ascii")


def test_recording_port_writes_down_the_client_certificate(postfix_inbox: PostfixServer) -> None:
    context = tls_context(postfix_inbox)
    context.load_cert_chain(postfix_inbox.client_cert_file, postfix_inbox.client_key_file)
    with smtplib.SMTP(postfix_inbox.host, postfix_inbox.recording_port, timeout=TIMEOUT) as smtp:
        smtp.starttls(context=context)
        smtp.login(ALICE, postfix_inbox.users[ALICE])
        smtp.sendmail(SENDER, [BOB], b"Subject: cert\r\n\r\nx\r\n")
    with smtplib.SMTP(postfix_inbox.host, postfix_inbox.recording_port, timeout=TIMEOUT) as smtp:
        smtp.starttls(context=tls_context(postfix_inbox))
        smtp.sendmail(SENDER, [BOB], b"Subject: no cert\r\n\r\nx\r\n")
    with_cert, without = (
        " ".join(raw.decode().split("\n\n")[0].split())
        for raw in postfix_inbox.wait_for_messages(2)
    )
    assert '(Client CN "postwire-client.test", Issuer ' in with_cert
    assert "(verified OK)" in with_cert and "(using TLSv1." in with_cert
    assert "(Authenticated sender: alice@test.example)" in with_cert
    assert "Client CN" not in without and "Authenticated sender" not in without


def test_recording_port_takes_bearer_tokens_the_endpoint_vouches_for(
    postfix: PostfixServer,
) -> None:
    token = postfix.oauth.issue(ALICE)
    with smtplib.SMTP(postfix.host, postfix.recording_port, timeout=TIMEOUT) as smtp:
        smtp.starttls(context=tls_context(postfix))
        smtp.ehlo("client.example")
        assert {"XOAUTH2", "OAUTHBEARER"} <= set(smtp.esmtp_features["auth"].split())
        # An unknown token: Dovecot's JSON error challenge (RFC 7628 §3.2.2), then 535.
        assert smtp.docmd("AUTH", _xoauth2(ALICE, "not-a-token"))[0] == 334
        assert smtp.docmd("")[0] == 535
        postfix.oauth.revoke(token)
        assert smtp.docmd("AUTH", _xoauth2(ALICE, token))[0] == 334
        assert smtp.docmd("")[0] == 535
        fresh = postfix.oauth.issue(ALICE)
        assert smtp.docmd("AUTH", _xoauth2(ALICE, fresh))[0] == 235
    assert postfix.oauth.asked[-3:] == ["not-a-token", token, fresh]


def test_postfix_sendmail_binary_submits_into_the_instance(postfix_inbox: PostfixServer) -> None:
    message = b"Subject: via sendmail\n\nhello from /usr/sbin/sendmail\n"
    env = {**os.environ, "MAIL_CONFIG": str(postfix_inbox.mail_config)}
    done = subprocess.run(
        ["/usr/sbin/sendmail", "-i", "--", "x@test.example"],
        input=message,
        env=env,
        capture_output=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    [raw] = postfix_inbox.wait_for_messages(1)
    assert b"Delivered-To: x@test.example\n" in raw
    assert b"\nSubject: via sendmail\n" in raw
    assert raw.endswith(b"\n\nhello from /usr/sbin/sendmail\n")


def test_wait_for_messages_is_bounded(postfix_inbox: PostfixServer) -> None:
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        postfix_inbox.wait_for_messages(1, timeout=0.2)
    assert time.monotonic() - started < 2.0


def test_strip_trace_removes_only_what_postfix_added() -> None:
    raw = (
        b"Return-Path: <a@client.example>\n"
        b"X-Original-To: alice@test.example\n"
        b"Delivered-To: alice@test.example\n"
        b"Received: from client.example (localhost [127.0.0.1])\n"
        b"\tby postwire-test.localhost (Postfix) with ESMTPS id 4F00\n"
        b"\tfor <alice@test.example>; Fri, 28 Nov 2025 10:45:00 +0000 (UTC)\n"
        b"Received: by the client itself\n"
        b"Subject: x\n"
        b"\n"
        b"body\n"
    )
    assert strip_trace(raw) == (b"Received: by the client itself\r\nSubject: x\r\n\r\nbody\r\n")
    assert strip_trace(b"Subject: no trace\n\nbody\n") == b"Subject: no trace\r\n\r\nbody\r\n"
