"""Failures: typed postwire errors that existing Django code can catch as ``smtplib`` exceptions.

Django documents that with ``fail_silently=False`` sending raises ``smtplib.SMTPException``
(its subclasses), and that ``fail_silently=True`` hides those.  Each test provokes the failure
on a real server (refused recipients at the test Postfix, faults of the capture server, a
closed port) and catches it both ways: as the postwire class and as the smtplib class.
"""

from __future__ import annotations

import pickle
import smtplib
import socket

import pytest
from django.core import mail
from django.core.mail import EmailMessage
from django.test import override_settings

from backend_helpers import StartCapture, capture_settings, postfix_settings
from postwire import Reply, SendResult
from postwire import errors as pw
from postwire.capture import CaptureServer
from postwire.capture.faults import FaultScript, RecipientRule
from postwire.django.errors import COUNTERPARTS, as_smtplib_error
from servers.postfix import PostfixServer

ALICE = "alice@test.example"
REJECTED = "rejected@test.example"  # 550 5.1.1 at RCPT (tests/servers/postfix.py)


def _message(*to: str, subject: str = "Hi") -> EmailMessage:
    return EmailMessage(subject, "body\n", "webmaster@test.example", list(to))


# -- refused recipients ----------------------------------------------------------------------


def test_a_refused_recipient_is_smtp_recipients_refused(postfix_inbox: PostfixServer) -> None:
    message = _message(REJECTED)
    with override_settings(**postfix_settings(postfix_inbox)):
        with pytest.raises(smtplib.SMTPRecipientsRefused) as info:
            mail.get_connection().send_messages([message])
        error = info.value
        assert isinstance(error, pw.RecipientsRefused) and error.step == "RCPT"
        # smtplib's shape ({address: (code, bytes)}) and postwire's (the Reply) side by side.
        text = b"5.1.1 <rejected@test.example>: Recipient address rejected: Recipient rejected"
        assert error.recipients == {REJECTED: (550, text + b" by test policy")}
        assert error.refused[REJECTED].code == 550
        assert message.postwire_result is error
        quiet = _message(REJECTED)
        assert mail.get_connection(fail_silently=True).send_messages([quiet]) == 0
        assert isinstance(quiet.postwire_result, smtplib.SMTPRecipientsRefused)


def test_a_partial_refusal_is_sent_and_reports_who_was_refused(
    postfix_inbox: PostfixServer,
) -> None:
    message = _message(ALICE, REJECTED)
    with override_settings(**postfix_settings(postfix_inbox)):
        # As with smtplib.sendmail: accepted for one recipient is sent, no exception.
        assert message.send() == 1
    result = message.postwire_result
    assert isinstance(result, SendResult) and not result.ok
    assert result.accepted == [ALICE]
    assert result.refused[REJECTED].code == 550
    assert result.reply.code == 250  # the server's answer to the end of the data
    (raw,) = postfix_inbox.wait_for_messages(1)
    assert b"Delivered-To: alice@test.example\n" in raw


def test_one_failure_does_not_stop_the_batch_and_is_raised_after_it(
    start_capture: StartCapture,
) -> None:
    faults = FaultScript(refuse_recipients=(RecipientRule("*@gone.example", 550),))
    server = start_capture(tls="none", faults=faults)
    batch = [_message(ALICE, subject="1"), _message("x@gone.example", subject="2")]
    batch.append(_message(ALICE, subject="3"))
    with override_settings(EMAIL_HOST="127.0.0.1", EMAIL_PORT=server.port):
        with pytest.raises(smtplib.SMTPRecipientsRefused, match=r"x@gone\.example"):
            mail.get_connection().send_messages(batch)
    # Unlike Django's backend, which stops at the failure, every message was tried.
    assert [m.subject for m in server.wait_for(2)] == ["1", "3"]
    first, refused, third = (m.postwire_result for m in batch)
    assert isinstance(first, SendResult) and isinstance(third, SendResult)
    assert isinstance(refused, pw.RecipientsRefused)


# -- connecting, TLS and AUTH --------------------------------------------------------------


def test_a_wrong_password_is_smtp_authentication_error(capture: CaptureServer) -> None:
    with override_settings(**capture_settings(capture, EMAIL_HOST_PASSWORD="wrong")):
        backend = mail.get_connection()
        with pytest.raises(smtplib.SMTPAuthenticationError) as info:
            backend.open()
        assert isinstance(info.value, pw.AuthenticationError)
        assert info.value.smtp_code == 535 and info.value.code == 535
        assert backend.connection is None
        quiet = mail.get_connection(fail_silently=True)
        assert quiet.open() is None  # Django: None when a failure passed silently
        message = _message(ALICE)
        assert quiet.send_messages([message]) == 0
        assert isinstance(message.postwire_result, pw.AuthenticationError)
    assert capture.messages == []


def test_a_closed_port_is_smtp_connect_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens on it once closed
    with override_settings(EMAIL_HOST="127.0.0.1", EMAIL_PORT=port):
        with pytest.raises(smtplib.SMTPConnectError) as info:
            mail.send_mail("x", "y", None, [ALICE])
        assert isinstance(info.value, pw.ConnectError) and isinstance(info.value, ConnectionError)
        assert mail.send_mail("x", "y", None, [ALICE], fail_silently=True) == 0


def test_a_421_greeting_is_smtp_connect_error(start_capture: StartCapture) -> None:
    server = start_capture(tls="none", faults=FaultScript(greeting_421=True))
    with override_settings(EMAIL_HOST="127.0.0.1", EMAIL_PORT=server.port):
        with pytest.raises(smtplib.SMTPConnectError) as info:
            mail.get_connection().open()
    assert isinstance(info.value, pw.GreetingError) and info.value.smtp_code == 421


def test_an_unverified_certificate_never_falls_back_to_plain_text(capture: CaptureServer) -> None:
    # Django CVE-2026-7666: a failed STARTTLS left a connection that later sent in clear text.
    values = capture_settings(capture, POSTWIRE_EMAIL={})  # the capture CA is not trusted
    with override_settings(**values):
        with pytest.raises(smtplib.SMTPException) as info:
            mail.send_mail("x", "y", None, [ALICE])
        assert isinstance(info.value, pw.CertificateError)
        backend = mail.get_connection(fail_silently=True)
        for _ in range(2):
            assert backend.send_messages([_message(ALICE)]) == 0
            assert backend.connection is None
    assert capture.messages == []


def test_starttls_not_offered_is_smtp_not_supported(start_capture: StartCapture) -> None:
    server = start_capture(tls="none")
    with override_settings(EMAIL_HOST="127.0.0.1", EMAIL_PORT=server.port, EMAIL_USE_TLS=True):
        with pytest.raises(smtplib.SMTPNotSupportedError) as info:
            mail.send_mail("x", "y", None, [ALICE])
    assert isinstance(info.value, pw.TLSRequired)
    assert server.messages == []


def test_a_connection_dropped_after_the_data_is_a_possible_delivery(
    start_capture: StartCapture,
) -> None:
    server = start_capture(tls="none", faults=FaultScript(drop_after_data=True))
    message = _message(ALICE)
    with override_settings(EMAIL_HOST="127.0.0.1", EMAIL_PORT=server.port):
        backend = mail.get_connection()
        with pytest.raises(smtplib.SMTPServerDisconnected) as info:
            with backend:
                backend.send_messages([message])
        assert isinstance(info.value, pw.PossiblyDelivered)
        assert message.postwire_result is info.value
        assert backend.connection is None  # not reused: the next send connects again
    assert len(server.wait_for(1)) == 1


# -- the combined classes themselves -----------------------------------------------------------


@pytest.mark.parametrize("name", pw.__all__)
def test_every_error_class_has_a_combined_one(name: str) -> None:
    cls = getattr(pw, name)
    counterpart = next((COUNTERPARTS[b] for b in cls.__mro__ if b in COUNTERPARTS), None)
    if counterpart is None:  # ConfigError & co.: raised as they are
        assert not issubclass(cls, pw.SMTPError)
        return
    reply = Reply(550, ("5.7.1 no",))
    original = cls.__new__(cls)
    Exception.__init__(original, f"{name} happened")
    original.__dict__.update(reply=reply, step="MAIL", refused={"a@x": reply})
    combined = as_smtplib_error(original, sender="s@x")
    assert isinstance(combined, cls) and isinstance(combined, counterpart)
    assert str(combined) == f"{name} happened"
    if isinstance(combined, smtplib.SMTPResponseException):
        assert (combined.smtp_code, combined.smtp_error) == (550, b"5.7.1 no")
    if isinstance(combined, pw.SMTPError):
        again = pickle.loads(pickle.dumps(combined))
        assert type(again) is type(combined) and str(again) == str(combined)
