"""LMTP (RFC 2033) against Dovecot's LMTP server, over TCP and a Unix socket (issue 14, item 2).

Dovecot accepts ``full`` at RCPT and refuses it after the data (its quota is one byte), so one
transaction shows all three fates: delivered, refused at RCPT, refused after the data.
"""

from __future__ import annotations

import asyncio

import pytest

from postwire import AsyncClient, Client, SendResult
from postwire.errors import RecipientsRefused
from servers.lmtp import LmtpServer

MESSAGE = b"From: a@example.org\r\nSubject: lmtp\r\n\r\nhello\r\n.dot\r\n"
RECIPIENTS = ["ada", "full", "nosuch", "bob"]


def _check(result: SendResult, server: LmtpServer) -> None:
    assert result.accepted == ["ada", "bob"]
    assert result.refused["nosuch"].code == 550 and result.refused["nosuch"].command == "RCPT"
    full = result.refused["full"]
    assert full.code == 552 and full.command == "end of data" and "Quota" in full.text
    for user in ("ada", "bob"):
        (delivered,) = server.messages(user)
        assert delivered.endswith(b"\nhello\n.dot\n")  # Dovecot stores LF line endings
    assert server.messages("full") == []


def test_sync_over_tcp_reports_each_recipient(lmtp_boxes: LmtpServer) -> None:
    with Client(lmtp_boxes.host, lmtp_boxes.port, lmtp=True, tls="none") as client:
        _check(client.send(MESSAGE, sender="a@example.org", recipients=RECIPIENTS), lmtp_boxes)


def test_async_over_the_unix_socket(lmtp_boxes: LmtpServer) -> None:
    async def main() -> SendResult:
        async with AsyncClient(str(lmtp_boxes.socket_path), lmtp=True, tls="none") as client:
            return await client.send(MESSAGE, sender="a@example.org", recipients=RECIPIENTS)

    _check(asyncio.run(main()), lmtp_boxes)


def test_sync_over_the_unix_socket_from_a_url(lmtp_boxes: LmtpServer) -> None:
    with Client.from_url(f"lmtp://{lmtp_boxes.socket_path}") as client:
        assert client.host == str(lmtp_boxes.socket_path) and client.lmtp
        _check(client.send(MESSAGE, sender="a@example.org", recipients=RECIPIENTS), lmtp_boxes)


def test_every_recipient_refused_after_the_data(lmtp_boxes: LmtpServer) -> None:
    with Client(lmtp_boxes.host, lmtp_boxes.port, lmtp=True, tls="none") as client:
        with pytest.raises(RecipientsRefused) as info:
            client.send(MESSAGE, sender="a@example.org", recipients=["full"])
        assert info.value.step == "end of data" and info.value.refused["full"].code == 552
        assert client.connected  # the session goes on
        result = client.send(MESSAGE, sender="a@example.org", recipients=["ada"])
    assert result.accepted == ["ada"]


def test_send_many_over_lmtp(lmtp_boxes: LmtpServer) -> None:
    items = [(MESSAGE.replace(b"lmtp", b"lmtp %d" % i), "a@example.org", ["ada", "full"])
             for i in range(5)]  # fmt: skip
    with Client(lmtp_boxes.host, lmtp_boxes.port, lmtp=True, tls="none") as client:
        outcomes = client.send_many(items)
    assert all(isinstance(o, SendResult) and o.accepted == ["ada"] for o in outcomes)
    assert all(isinstance(o, SendResult) and o.refused["full"].code == 552 for o in outcomes)
    assert len(lmtp_boxes.messages("ada")) == 5


def test_unix_socket_paths_need_no_tls_or_a_name() -> None:
    with pytest.raises(ValueError, match="Unix socket has no host name"):
        Client("/run/x.sock", tls="starttls")
    Client("/run/x.sock", tls="starttls", server_hostname="mail.example.org")
    assert Client("/run/x.sock", tls="none").port == 0
    assert Client("127.0.0.1", lmtp=True, tls="none").port == 24
