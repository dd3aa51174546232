"""DSN (RFC 3461) against the private Postfix, with the notices that come back; REQUIRETLS
(RFC 8689) against the capture server, which offers it in TLS sessions (issue 14, item 3)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from postwire import DSN, Client
from postwire.capture import CaptureServer
from postwire.errors import ExtensionNotSupported, TLSRequired
from servers.postfix import PostfixServer, delivered_messages, delivery_status

SENDER = "alice@test.example"


def _message(subject: str, to: str) -> bytes:
    return (
        f"From: {SENDER}\r\nTo: {to}\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject.replace(' ', '-')}@test.example>\r\n\r\nhello\r\n"
    ).encode()


def test_a_failure_notice_comes_back_with_the_envelope_id(postfix_inbox: PostfixServer) -> None:
    dsn = DSN(notify=["failure"], ret="hdrs", envid="outbox-entry-7", orcpt=True)
    with Client(postfix_inbox.host, postfix_inbox.smtp_port, cafile=postfix_inbox.ca_file) as c:
        result = c.send(
            _message("bounces", "nobody@bounce.test"),
            sender=SENDER, recipients=["nobody@bounce.test"], dsn=dsn,
        )  # fmt: skip
    assert result.accepted == ["nobody@bounce.test"]  # taken at RCPT, failed later
    (report,) = delivered_messages(postfix_inbox, 1)
    assert report.get_content_type() == "multipart/report"
    assert report.get_param("report-type") == "delivery-status"
    fields = delivery_status(report)
    assert "Original-Envelope-Id: outbox-entry-7" in fields
    assert "Original-Recipient: rfc822;nobody@bounce.test" in fields
    assert "Action: failed" in fields and "Status: 5.1.1" in fields
    # RET=HDRS: the original comes back as its header only.
    returned = [p.get_content_type() for p in report.walk()]
    assert "text/rfc822-headers" in returned and "message/rfc822" not in returned


def test_a_success_notice_when_asked(postfix_inbox: PostfixServer) -> None:
    with Client(postfix_inbox.host, postfix_inbox.smtp_port, cafile=postfix_inbox.ca_file) as c:
        c.send(
            _message("delivered", "bob@test.example"),
            sender=SENDER, recipients=["bob@test.example"],
            dsn=DSN(notify="success", envid="ok-1"),
        )  # fmt: skip
    messages = delivered_messages(postfix_inbox, 2)  # the message itself, and the notice
    reports = [m for m in messages if m.get_content_type() == "multipart/report"]
    assert len(reports) == 1
    fields = delivery_status(reports[0])
    assert "Original-Envelope-Id: ok-1" in fields and "Action: delivered" in fields


def test_postfix_offers_dsn_and_the_capture_server_does_not() -> None:
    with CaptureServer(tls="none") as server:
        with Client("127.0.0.1", server.port, tls="none") as client:
            with pytest.raises(ExtensionNotSupported, match="DSN"):
                client.send(b"x\r\n", sender="a@x", recipients=["b@y"], dsn=DSN(notify="never"))
            assert client.connected  # refused before MAIL: the session goes on
            client.send(b"x\r\n", sender="a@x", recipients=["b@y"])
        assert len(server.wait_for(1)) == 1


@pytest.fixture
def tls_capture() -> Iterator[CaptureServer]:
    with CaptureServer(tls="starttls") as server:
        yield server


def test_requiretls_over_starttls(tls_capture: CaptureServer) -> None:
    with Client("127.0.0.1", tls_capture.port, cafile=tls_capture.ca_file) as client:
        assert client.extensions.requiretls
        client.send(b"Subject: r\r\n\r\nx\r\n", sender="a@x", recipients=["b@y"], require_tls=True)
    (message,) = tls_capture.wait_for(1)
    assert "REQUIRETLS" in message.mail_options and message.tls


def test_requiretls_is_never_sent_in_plain_text() -> None:
    with CaptureServer(tls="starttls") as server:
        with Client("127.0.0.1", server.port, tls="opportunistic", cafile=server.ca_file) as c:
            c.send(b"x\r\n", sender="a@x", recipients=["b@y"], require_tls=True)  # TLS: fine
        with Client("127.0.0.1", server.port, tls="none") as client:
            assert not client.extensions.requiretls  # advertised only after STARTTLS
            with pytest.raises(TLSRequired, match="REQUIRETLS"):
                client.send(b"x\r\n", sender="a@x", recipients=["b@y"], require_tls=True)
        assert len(server.wait_for(1)) == 1
