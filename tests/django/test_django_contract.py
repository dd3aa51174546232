"""Django's e-mail backend contract, kept by ``postwire.django.EmailBackend`` against real servers.

What Django documents for its SMTP backend ("Email backends", "Sending email"): ``open()`` says
whether it opened a connection, the backend is a context manager, ``send_messages()`` returns
the number sent, ``recipients()`` (Bcc included) is the envelope, ``send_mail``,
``send_mass_mail`` and ``mail_admins`` go through ``get_connection``.  Each test sends to the
capture server or the test Postfix on 127.0.0.1 and checks what arrived there.
"""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage as PyMessage

import pytest
from django.core import mail
from django.core.mail import EmailMessage, EmailMultiAlternatives
from django.test import override_settings

from backend_helpers import USER, StartCapture, capture_settings, postfix_settings
from postwire import SendResult
from postwire.capture import CaptureServer
from postwire.django import EmailBackend
from servers.postfix import PostfixServer, strip_trace

ALICE = "alice@test.example"
BOB = "bob@test.example"
CAROL = "carol@test.example"


def _message(to: str = ALICE, subject: str = "Hello", **kwargs: object) -> EmailMessage:
    return EmailMessage(subject, "Body text\n", "webmaster@test.example", [to], **kwargs)


def _parsed(raw: bytes) -> PyMessage:
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parsed, PyMessage)
    return parsed


def test_get_connection_gives_postwires_backend_from_the_settings() -> None:
    with override_settings(EMAIL_HOST="mail.test.example", EMAIL_PORT=587, EMAIL_USE_TLS=True):
        backend = mail.get_connection()
    assert isinstance(backend, EmailBackend)
    assert (backend.host, backend.port, backend.use_tls, backend.use_ssl) == (
        "mail.test.example", 587, True, False,
    )  # fmt: skip
    assert backend.connection is None  # nothing is opened before it is asked for
    with override_settings(EMAIL_PORT="2525"):  # os.environ["EMAIL_PORT"], as smtplib takes it
        assert mail.get_connection().port == 2525


def test_open_says_whether_it_opened_and_close_closes(capture: CaptureServer) -> None:
    with override_settings(**capture_settings(capture)):
        backend = mail.get_connection()
        assert backend.open() is True
        assert backend.open() is False  # already open: Django returns False
        assert backend.connection is not None and backend.connection.connected
        assert backend.send_messages([_message(subject="one"), _message(subject="two")]) == 2
        assert backend.send_messages([_message(subject="three")]) == 1
        backend.close()
        assert backend.connection is None
        backend.close()  # closing twice is harmless
    received = capture.wait_for(3)
    # Messages sent while the backend was open shared its one connection (and its AUTH).
    assert len({m.peer for m in received}) == 1
    assert [m.subject for m in received] == ["one", "two", "three"]
    assert all(m.tls and m.auth_user == USER for m in received)


def test_as_a_context_manager_one_connection_for_every_send(capture: CaptureServer) -> None:
    with override_settings(**capture_settings(capture)):
        with mail.get_connection() as backend:
            for n in range(3):
                _message(subject=f"n{n}", connection=backend).send()
        assert backend.connection is None
        # Outside a with block each send_messages() opens and closes its own connection.
        backend.send_messages([_message(subject="alone")])
        assert backend.connection is None
    received = capture.wait_for(4)
    assert received[0].peer == received[1].peer == received[2].peer != received[3].peer


def test_an_empty_list_and_a_message_without_recipients_count_zero(capture: CaptureServer) -> None:
    with override_settings(**capture_settings(capture)):
        backend = mail.get_connection()
        assert backend.send_messages([]) == 0
        nobody = _message()
        nobody.to = []
        # A message without recipients is skipped, as Django's backend skips it.
        assert backend.send_messages([nobody]) == 0
        assert nobody.postwire_result is None
        assert backend.send_messages([nobody, _message(subject="real")]) == 1
    (only,) = capture.wait_for(1)
    assert only.subject == "real"
    assert len(capture.messages) == 1


def test_send_mail_and_send_mass_mail(capture: CaptureServer) -> None:
    with override_settings(**capture_settings(capture)):
        assert mail.send_mail("Single", "body\n", None, [ALICE]) == 1
        datatuple = [("Mass 1", "b1\n", None, [ALICE]), ("Mass 2", "b2\n", None, [BOB, CAROL])]
        assert mail.send_mass_mail(datatuple) == 2
    single, mass1, mass2 = capture.wait_for(3)
    assert single.mail_from == "webmaster@test.example"  # DEFAULT_FROM_EMAIL
    assert single.rcpt_tos == [ALICE] and single.subject == "Single"
    # send_mass_mail uses one connection for all its messages.
    assert mass1.peer == mass2.peer != single.peer
    assert mass2.rcpt_tos == [BOB, CAROL]


def test_mail_admins_and_mail_managers_through_get_connection(capture: CaptureServer) -> None:
    with override_settings(**capture_settings(capture), MANAGERS=[("Carol", CAROL)]):
        mail.mail_admins("Disk full", "on db1\n")
        mail.mail_managers("New order", "#42\n")
    admins, managers = capture.wait_for(2)
    assert admins.mail_from == "django@test.example"  # SERVER_EMAIL
    assert admins.rcpt_tos == ["ada@test.example", BOB]  # ADMINS
    assert admins.subject == "[mailsite] Disk full"  # EMAIL_SUBJECT_PREFIX
    assert managers.rcpt_tos == [CAROL] and managers.subject == "[mailsite] New order"


def test_bcc_is_delivered_but_not_in_the_header(postfix_inbox: PostfixServer) -> None:
    message = _message(to=ALICE, cc=[BOB], bcc=[CAROL])
    with override_settings(**postfix_settings(postfix_inbox)):
        assert message.send() == 1
    assert isinstance(message.postwire_result, SendResult)
    assert sorted(message.postwire_result.accepted) == [ALICE, BOB, CAROL]
    delivered = [_parsed(raw) for raw in postfix_inbox.wait_for_messages(3)]
    # Postfix delivers one copy per recipient; X-Original-To names the envelope recipient.
    assert sorted(str(m["X-Original-To"]) for m in delivered) == [ALICE, BOB, CAROL]
    for copy in delivered:
        assert copy["To"] == ALICE and copy["Cc"] == BOB
        assert "Bcc" not in copy and CAROL not in strip_trace(copy.as_bytes()).decode()


def test_attachments_and_alternatives_arrive_intact(postfix_inbox: PostfixServer) -> None:
    blob = bytes(range(256)) * 40  # every byte value: base64 must round-trip it
    message = EmailMultiAlternatives(
        "Report ✓", "Plain text, naïve café\n", "webmaster@test.example", [ALICE]
    )
    message.attach_alternative("<p>HTML <b>café</b></p>", "text/html")
    message.attach("data.bin", blob, "application/octet-stream")
    message.attach("notes.txt", "line one\nline two — ünïcode\n", "text/plain")
    with override_settings(**postfix_settings(postfix_inbox)):
        assert message.send() == 1
    (raw,) = postfix_inbox.wait_for_messages(1)
    got = _parsed(raw)
    assert got["Subject"] == "Report ✓" and got.get_content_type() == "multipart/mixed"
    body = got.get_body(("plain",))
    html = got.get_body(("html",))
    assert body is not None and body.get_content() == "Plain text, naïve café\n"
    assert html is not None and html.get_content() == "<p>HTML <b>café</b></p>"
    attachments = {part.get_filename(): part for part in got.iter_attachments()}
    assert attachments["data.bin"].get_content() == blob
    assert attachments["notes.txt"].get_content() == "line one\nline two — ünïcode\n"


def test_addresses_are_sanitized_for_the_envelope(start_capture: StartCapture) -> None:
    server = start_capture(tls="none")
    message = EmailMessage(
        "Names", "x\n", "Zoë Ünicode <zoe@test.example>",
        ["Ada Lovelace <ada@test.example>", "reader@bücher.example"],
    )  # fmt: skip
    with override_settings(EMAIL_HOST="127.0.0.1", EMAIL_PORT=server.port):
        assert message.send() == 1
    (got,) = server.wait_for(1)
    # The envelope takes the addr-spec; an IDN domain goes as its A-label (IDNA), as Django does.
    assert got.mail_from == "zoe@test.example"
    assert got.rcpt_tos == ["ada@test.example", "reader@xn--bcher-kva.example"]
    assert got.email()["From"].addresses[0].display_name == "Zoë Ünicode"


def test_a_header_injection_attempt_is_refused_before_anything_is_sent(
    start_capture: StartCapture,
) -> None:
    server = start_capture(tls="none")
    bad = _message(to="ada@test.example\r\nBcc: victim@test.example")
    with override_settings(EMAIL_HOST="127.0.0.1", EMAIL_PORT=server.port):
        backend = mail.get_connection(fail_silently=True)
        # fail_silently hides SMTP errors, not bad input: Django raises this ValueError too.
        with pytest.raises(ValueError, match="newlines"):
            backend.send_messages([_message(subject="fine"), bad])
    assert backend.connection is None
    assert server.messages == []  # not even the good message: the batch was refused whole
