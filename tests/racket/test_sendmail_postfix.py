"""postwire.sendmail with Postfix's real ``/usr/sbin/sendmail``, into the private Postfix.

``MAIL_CONFIG`` points Postfix's sendmail (a child of the test, which inherits the
environment) at the session's instance; mail to ``*@test.example`` lands in its Maildir.
"""

from __future__ import annotations

import email
import email.policy
import time
from email.message import EmailMessage

import pytest

from postwire.errors import SendmailError
from postwire.sendmail import (
    X_MAILER,
    find_sendmail,
    send_mail_message,
    send_mail_message_port,
    sendmail_program,
)
from servers.postfix import PostfixServer, strip_trace

WAIT = 20.0  # seconds for Postfix to deliver


@pytest.fixture
def inbox(postfix_inbox: PostfixServer, monkeypatch: pytest.MonkeyPatch) -> PostfixServer:
    monkeypatch.setenv("MAIL_CONFIG", str(postfix_inbox.mail_config))
    return postfix_inbox


def parse(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def by_delivered_to(raws: list[bytes]) -> dict[str, EmailMessage]:
    messages = [parse(raw) for raw in raws]
    return {str(m["Delivered-To"]): m for m in messages}


def header_of(raw: bytes) -> bytes:
    return raw.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0]


def body_of(raw: bytes) -> bytes:
    return raw.split(b"\n\n", 1)[1]


def test_the_search_finds_postfix_sendmail() -> None:
    assert find_sendmail() == "/usr/sbin/sendmail"


def test_send_mail_message_delivers(inbox: PostfixServer) -> None:
    send_mail_message(
        "Sender <sender@test.example>",
        "Hello from postwire",
        ["alice@test.example"],
        ["carol@test.example"],
        ["hidden@test.example"],
        ["first line", ".", ".leading dot", "..", "last line"],
        "X-Test-Case: delivers",
    )
    raws = inbox.wait_for_messages(3, WAIT)
    assert len(raws) == 3
    delivered = by_delivered_to(raws)
    # The Bcc recipient got the message too: one copy per recipient.
    assert set(delivered) == {"alice@test.example", "carol@test.example", "hidden@test.example"}
    for raw in raws:
        message = parse(raw)
        assert message["Subject"] == "Hello from postwire"
        assert message["From"] == "Sender <sender@test.example>"
        assert message["To"] == "alice@test.example"
        assert message["CC"] == "carol@test.example"
        assert message["X-Mailer"] == X_MAILER
        assert message["X-Test-Case"] == "delivers"
        assert "Bcc" not in message
        # Past the fields Postfix adds on delivery, no header names the Bcc recipient.
        assert b"hidden@test.example" not in header_of(strip_trace(raw))
        # -i: the "." line did not end the message, and nothing was dot-stuffed.
        assert body_of(raw) == b"first line\n.\n.leading dot\n..\nlast line\n"


def test_no_bcc_header_in_any_copy(inbox: PostfixServer) -> None:
    send_mail_message(None, "bcc only", [], [], ["secret@test.example"], ["body"])
    (raw,) = inbox.wait_for_messages(1, WAIT)
    message = parse(raw)
    assert message["Delivered-To"] == "secret@test.example"
    assert "Bcc" not in message
    assert b"secret@test.example" not in header_of(strip_trace(raw))
    assert body_of(raw) == b"body\n"


def test_send_mail_message_port_delivers_non_ascii(inbox: PostfixServer) -> None:
    subject = "Grüße aus Köln — 日本語"
    with send_mail_message_port(
        "Jöhn Dœ <john@test.example>",
        subject,
        ["Zoë <zoe@test.example>", "bob@test.example"],
        [],
        [],
    ) as port:
        port.write("Dear Zoë,\n")
        print(".", file=port)
        print("héllo in UTF-8", file=port)
    raws = inbox.wait_for_messages(2, WAIT)
    assert set(by_delivered_to(raws)) == {"zoe@test.example", "bob@test.example"}
    for raw in raws:
        header = header_of(raw)
        assert b"Subject: =?UTF-8?B?" in header  # RFC 2047, beyond Latin-1
        assert header.isascii()
        message = parse(raw)
        assert message["Subject"] == subject
        assert message["From"].addresses[0].display_name == "Jöhn Dœ"
        to = message["To"].addresses
        assert [a.addr_spec for a in to] == ["zoe@test.example", "bob@test.example"]
        assert to[0].display_name == "Zoë"
        assert body_of(raw) == "Dear Zoë,\n.\nhéllo in UTF-8\n".encode()


def test_latin1_subject_uses_q_encoding(inbox: PostfixServer) -> None:
    send_mail_message(None, "Café crème", ["alice@test.example"], [], [], ["x"])
    (raw,) = inbox.wait_for_messages(1, WAIT)
    assert b"Subject: =?ISO-8859-1?Q?Caf=E9_cr=E8me?=\n" in raw
    assert parse(raw)["Subject"] == "Café crème"


def test_many_recipients_fold_and_all_arrive(inbox: PostfixServer) -> None:
    recipients = [f"recipient-number-{i:02d}@test.example" for i in range(6)]
    send_mail_message(None, "folded", recipients[:3], recipients[3:], [], ["x"])
    raws = inbox.wait_for_messages(6, WAIT)
    assert set(by_delivered_to(raws)) == set(recipients)
    message = parse(raws[0])
    assert [a.addr_spec for a in message["To"].addresses] == recipients[:3]
    assert [a.addr_spec for a in message["CC"].addresses] == recipients[3:]


def test_aborted_port_delivers_nothing(inbox: PostfixServer) -> None:
    with (
        pytest.raises(RuntimeError),
        send_mail_message_port(None, "aborted", ["alice@test.example"], [], []) as port,
    ):
        port.write("half a message\n")
        port.flush()
        raise RuntimeError("the body could not be produced")
    send_mail_message(None, "after the abort", ["alice@test.example"], [], [], ["x"])
    (raw,) = inbox.wait_for_messages(1, WAIT)
    assert parse(raw)["Subject"] == "after the abort"
    time.sleep(2.0)  # bounded: give a wrongly queued first message time to show up
    assert len(inbox.messages()) == 1


def test_postfix_failure_is_reported(inbox: PostfixServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAIL_CONFIG", str(inbox.base / "no-such-config"))
    with pytest.raises(SendmailError) as info:
        send_mail_message(None, "never", ["alice@test.example"], [], [], ["x"])
    err = info.value
    assert err.returncode not in (None, 0)
    assert "main.cf" in err.stderr
    assert "main.cf" in str(err)


def test_explicit_program_parameter(inbox: PostfixServer) -> None:
    with sendmail_program.parameterize("/usr/sbin/sendmail"):
        send_mail_message(None, "explicit", ["alice@test.example"], [], [], ["x"])
    (raw,) = inbox.wait_for_messages(1, WAIT)
    assert parse(raw)["Subject"] == "explicit"
