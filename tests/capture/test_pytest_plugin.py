"""The pytest plugin (``pytest11`` entry point), run inside pytest with ``pytester``."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(autouse=True)
def _inner_ini(pytester: pytest.Pytester) -> None:
    # The inner sessions get the settings the project's own session has.
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")


SEND = """
import smtplib


def send(box, subject, to="user@example.org", body="hello"):
    message = f"From: app@example.org\\r\\nTo: {to}\\r\\nSubject: {subject}\\r\\n\\r\\n{body}\\r\\n"
    with smtplib.SMTP(box.host, box.port, timeout=10) as client:
        client.sendmail("app@example.org", [to], message.encode())
"""


def test_mailbox_per_test_and_helpers(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        helpers=SEND,
        test_mail="""
import pytest
from helpers import send


def test_one(mailbox):
    send(mailbox, "hello one", body="Confirm: https://app.example/confirm?t=abc123 (code 123456)")
    message = mailbox.latest()
    assert mailbox.links(message) == ["https://app.example/confirm?t=abc123"]
    assert mailbox.code() == "123456"
    mailbox.assert_sent_to("user@example.org")
    mailbox.assert_header("Subject", "hello one")


def test_two_sees_only_its_own_mail(mailbox, mail_catcher):
    send(mailbox, "hello two", to="other@example.org")
    assert [m.email()["Subject"] for m in mailbox.wait_for(1)] == ["hello two"]
    assert len(mail_catcher.messages) == 2  # the session's catcher has both tests' mail


def test_waiting_is_bounded(mailbox):
    with pytest.raises(TimeoutError):
        mailbox.wait_for(1, timeout=0.2)
    with pytest.raises(AssertionError, match="no mail to nobody@example.org"):
        mailbox.assert_sent_to("nobody@example.org", timeout=0.2)


def test_faults_from_the_fixture(mailbox):
    import smtplib
    with mailbox.faulty(refuse_recipients={"*@bounce.example": 550}):
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            send(mailbox, "bounced", to="x@bounce.example")
    send(mailbox, "fine", to="x@bounce.example")
    assert [m.rcpt_tos for m in mailbox.wait_for(1)] == [["x@bounce.example"]]


def test_flask_config(mailbox):
    config = mailbox.flask_config()
    assert (config["MAIL_SERVER"], config["MAIL_PORT"]) == (mailbox.host, mailbox.port)
    with smtplib_from(config) as client:
        client.sendmail("a@example.org", ["b@example.org"], b"Subject: flask\\r\\n\\r\\nx\\r\\n")
    assert mailbox.latest().rcpt_tos == ["b@example.org"]


def smtplib_from(config):
    import smtplib
    return smtplib.SMTP(config["MAIL_SERVER"], config["MAIL_PORT"], timeout=10)
""",
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=5)


def test_nothing_starts_or_loads_unless_asked(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_plain="""
import sys


def test_no_catcher():
    assert "postwire.capture.pytest_plugin" in sys.modules  # the plugin is registered...
    for module in ("postwire.capture.server", "aiosmtpd", "aiohttp"):
        assert module not in sys.modules  # ...and imported nothing heavy
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_web_ui_option(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_web="""
import json, urllib.request


def test_web(mail_catcher):
    with urllib.request.urlopen(mail_catcher.web_url + "api/v1/info", timeout=10) as r:
        assert json.load(r)["Messages"] == 0
"""
    )
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--mail-catcher-web", "127.0.0.1:0"
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*mail catcher web UI: http://127.0.0.1:*"])


def test_with_a_small_django_project(pytester: pytest.Pytester) -> None:
    pytester.mkpydir("mysite")
    pytester.mkpydir("signup")
    pytester.makepyfile(
        **{
            "mysite/settings": """
SECRET_KEY = "test-only"
DEBUG = False
ALLOWED_HOSTS = ["testserver"]
ROOT_URLCONF = "mysite.urls"
INSTALLED_APPS = ["signup"]
DATABASES = {}
USE_TZ = True
# The real configuration points at a server the tests must never reach.
EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
EMAIL_HOST = "smtp.invalid"
""",
            "mysite/urls": """
from django.urls import path
from signup.views import register

urlpatterns = [path("register/", register)]
""",
            "signup/views": """
from django.core.mail import send_mail
from django.http import HttpResponse


def register(request):
    code = "424242"
    send_mail(
        "Confirm your account",
        f"Your code is {code}. Or open https://app.example/confirm/{code}/",
        "noreply@app.example",
        [request.POST["email"]],
        html_message=f'<p>Code <b>{code}</b>, <a href="https://app.example/confirm/{code}/">confirm</a></p>',
    )
    return HttpResponse("ok")
""",
            "conftest": """
import os

import django
from django.test.utils import setup_test_environment

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
django.setup()
setup_test_environment()  # what Django's test runner does: mail goes to mail.outbox
""",
            "test_signup": """
import smtplib

import pytest
from django.core import mail
from django.test import Client


def test_signup_sends_a_code(django_mailbox):
    response = Client().post("/register/", {"email": "ada@example.org"})
    assert response.status_code == 200
    message = django_mailbox.wait_for_message(to="ada@example.org", subject="Confirm")
    assert django_mailbox.code(message) == "424242"
    assert django_mailbox.links(message) == ["https://app.example/confirm/424242/"]
    assert message.email().get_content_type() == "multipart/alternative"
    assert mail.outbox == []  # it really went over SMTP
    assert type(mail.get_connection()).__module__ == "postwire.django.backend"


def test_a_bounce_is_handled(django_mailbox):
    with django_mailbox.faulty(refuse_recipients={"*@gone.example": 550}):
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            Client().post("/register/", {"email": "x@gone.example"})


def test_without_django(mailbox):  # any code that sends over SMTP
    message = b"Subject: hi\\r\\n\\r\\nhttps://x.example/\\r\\n"
    with smtplib.SMTP(mailbox.host, mailbox.port) as smtp:
        smtp.sendmail("a@example.org", ["b@example.org"], message)
    mailbox.assert_sent_to("b@example.org")
    assert mailbox.links() == ["https://x.example/"]


def test_settings_are_restored_after_the_test():
    from django.conf import settings
    assert settings.EMAIL_BACKEND == "django.core.mail.backends.locmem.EmailBackend"
""",
        }
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)
