"""What the backend adds to Django's: pipelined batches, per-recipient results, OAuth 2.0
tokens, a proxy, checked configuration, system checks; and Django stays optional."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from django.core import checks, mail
from django.core.exceptions import ImproperlyConfigured
from django.core.mail import EmailMessage
from django.test import override_settings

from backend_helpers import PASSWORD, USER, capture_settings, postfix_settings
from mailsite import tokens
from postwire import SendResult
from postwire.capture import CaptureServer
from servers.postfix import PostfixServer
from servers.proxies import HttpProxy

ALICE = "alice@test.example"
BOB = "bob@test.example"
REJECTED = "rejected@test.example"


def _message(*to: str, subject: str = "Hi") -> EmailMessage:
    return EmailMessage(subject, "body\n", "webmaster@test.example", list(to))


# -- a batch on one connection, pipelined ----------------------------------------------------


def test_a_batch_is_pipelined_over_one_connection(postfix_inbox: PostfixServer) -> None:
    lines: list[str] = []
    values = postfix_settings(postfix_inbox)
    values["POSTWIRE_EMAIL"] = {**values["POSTWIRE_EMAIL"], "transcript": lines.append}
    batch = [_message(ALICE, subject=f"n{n}") for n in range(5)]
    with override_settings(**values):
        assert mail.get_connection().send_messages(batch) == 5
    assert len(postfix_inbox.wait_for_messages(5)) == 5
    # Postfix sums up each SMTP session when it ends: all five in one (BDAT: it offers CHUNKING).
    assert _session_summary(postfix_inbox, "mail=5 rcpt=5 bdat=5")
    sent = [n for n, line in enumerate(lines) if " -> MAIL FROM:" in line]
    queued = [n for n, line in enumerate(lines) if " <- 250 " in line and "queued as" in line]
    assert len(sent) == len(queued) == 5
    # RFC 2920: the next message's MAIL went out before the reply that ended the previous one.
    assert all(sent[n + 1] < queued[n] for n in range(4))


def _session_summary(postfix: PostfixServer, counts: str, timeout: float = 15.0) -> str:
    """The maillog's "disconnect from" line of a session with these command counts."""
    deadline = time.monotonic() + timeout
    pattern = re.compile(rf"disconnect from localhost\[127\.0\.0\.1\] .*\b{counts}\b.*")
    while not (found := pattern.search(postfix.maillog.read_text(errors="replace"))):
        assert time.monotonic() < deadline, f"no session with {counts} in the maillog"
        time.sleep(0.05)  # postlogd writes the maillog a moment after the session ends
    return found.group(0)


def test_each_message_keeps_its_per_recipient_result(postfix_inbox: PostfixServer) -> None:
    partly, whole = _message(ALICE, REJECTED), _message(BOB)
    with override_settings(**postfix_settings(postfix_inbox)):
        assert mail.get_connection().send_messages([partly, whole]) == 2
    first, second = partly.postwire_result, whole.postwire_result
    assert isinstance(first, SendResult) and isinstance(second, SendResult)
    assert first.accepted == [ALICE] and list(first.refused) == [REJECTED]
    assert first.refused[REJECTED].code == 550 and not first.ok
    assert second.accepted == [BOB] and second.ok
    assert "queued as" in second.reply.text  # the queue ID, for the logs
    assert len(postfix_inbox.wait_for_messages(2)) == 2  # delivered before the next test


# -- OAuth 2.0: EMAIL_OAUTH2_TOKEN -------------------------------------------------------------


@pytest.fixture
def token_source() -> Iterator[None]:
    tokens.issued.clear()
    tokens.calls = 0
    yield
    tokens.issued.clear()


def _oauth_settings(postfix: PostfixServer, token: object) -> dict[str, object]:
    return postfix_settings(
        postfix, postfix.recording_port, EMAIL_HOST_PASSWORD="", EMAIL_OAUTH2_TOKEN=token
    )


def _authenticated_sender(raw: bytes) -> str:
    head = " ".join(raw.split(b"\n\n")[0].decode().split())
    return head.split("(Authenticated sender: ")[1].split(")")[0]


def test_a_token_provider_named_by_its_dotted_path(
    postfix_inbox: PostfixServer, token_source: None
) -> None:
    token = postfix_inbox.oauth.issue(ALICE)
    tokens.issued.append(token)
    with override_settings(**_oauth_settings(postfix_inbox, "mailsite.tokens.token")):
        assert mail.send_mail("OAuth", "body\n", None, [BOB]) == 1
    (raw,) = postfix_inbox.wait_for_messages(1)
    assert _authenticated_sender(raw) == ALICE  # Dovecot's oauth2 passdb vouched for it
    assert postfix_inbox.oauth.asked[-1] == token and tokens.calls == 1


def test_a_refused_token_is_asked_for_again_once(
    postfix_inbox: PostfixServer, token_source: None
) -> None:
    expired = postfix_inbox.oauth.issue(ALICE)
    postfix_inbox.oauth.revoke(expired)
    fresh = postfix_inbox.oauth.issue(ALICE)
    tokens.issued.extend([expired, fresh])
    with override_settings(**_oauth_settings(postfix_inbox, "mailsite.tokens.token")):
        assert mail.send_mail("OAuth", "body\n", None, [BOB]) == 1
    assert postfix_inbox.oauth.asked[-2:] == [expired, fresh] and tokens.calls == 2
    assert len(postfix_inbox.wait_for_messages(1)) == 1


def test_a_callable_token_as_the_backends_argument(postfix_inbox: PostfixServer) -> None:
    token = postfix_inbox.oauth.issue(ALICE)
    with override_settings(**_oauth_settings(postfix_inbox, None)):
        backend = mail.get_connection(oauth2_token=lambda: token)
        assert mail.send_mail("OAuth", "body\n", None, [BOB], connection=backend) == 1
    assert postfix_inbox.oauth.asked[-1] == token
    assert _authenticated_sender(postfix_inbox.wait_for_messages(1)[0]) == ALICE


def test_a_token_needs_a_user_and_must_be_callable() -> None:
    with override_settings(EMAIL_HOST_USER="", EMAIL_OAUTH2_TOKEN=lambda: "t"):
        with pytest.raises(ImproperlyConfigured, match="EMAIL_HOST_USER"):
            mail.get_connection()
    with override_settings(EMAIL_HOST_USER=ALICE, EMAIL_OAUTH2_TOKEN="mailsite.tokens.nothing"):
        with pytest.raises(ImproperlyConfigured, match="cannot import"):
            mail.get_connection()
    with override_settings(EMAIL_HOST_USER=ALICE, EMAIL_OAUTH2_TOKEN="mailsite.tokens.issued"):
        with pytest.raises(ImproperlyConfigured, match="callable"):
            mail.get_connection()


# -- other client options --------------------------------------------------------------------


def test_through_an_http_connect_proxy(capture: CaptureServer, http_proxy: HttpProxy) -> None:
    options = {"cafile": str(capture.ca_file), "proxy": http_proxy.url()}
    with override_settings(**capture_settings(capture, POSTWIRE_EMAIL=options)):
        assert mail.send_mail("Proxied", "body\n", None, [ALICE]) == 1
    (got,) = capture.wait_for(1)
    assert got.tls and got.auth_user == USER
    assert str(capture.port) in http_proxy.log_text()  # tinyproxy carried the connection


@pytest.mark.parametrize(
    ("postwire_email", "message"),
    [
        ("smtp://x", "must be a dict"),
        ({"cafille": "/x"}, "unknown option 'cafille'"),
        ({"host": "x"}, "'host' is Django's EMAIL_HOST setting"),
        ({"password": "x"}, "EMAIL_HOST_PASSWORD"),
        ({"url": "smtp://a", "account": "b"}, "not both"),
        ({"url": "ftp://x"}, "POSTWIRE_EMAIL: "),
        ({"transcript": "mailsite.tokens.nothing"}, "cannot import"),
        ({"dkim": {"key": "/nonexistent.pem", "domain": "x"}}, "needs 'selector'"),
        ({"dkim": {"key": "/nonexistent.pem", "domain": "x", "selector": "s"}}, "cannot read"),
    ],
)
def test_a_bad_postwire_email_is_a_configuration_error(
    postwire_email: object, message: str
) -> None:
    with override_settings(POSTWIRE_EMAIL=postwire_email):
        with pytest.raises(ImproperlyConfigured, match=message):
            mail.get_connection()


def test_keyword_arguments_are_postwire_email_keys() -> None:
    backend = mail.get_connection(tls_fingerprint="AB" * 32, pipelining=False)
    assert backend.config.options == {"tls_fingerprint": "AB" * 32, "pipelining": False}
    with pytest.raises(TypeError, match="unknown option 'bogus'"):
        mail.get_connection(bogus=1)


def test_tls_and_ssl_are_mutually_exclusive_as_in_django() -> None:
    django_message = "EMAIL_USE_TLS/EMAIL_USE_SSL are mutually exclusive"
    with override_settings(EMAIL_USE_TLS=True, EMAIL_USE_SSL=True):
        with pytest.raises(ValueError, match=django_message):
            mail.get_connection()
    with pytest.raises(ValueError, match=django_message):
        mail.get_connection(use_tls=True, use_ssl=True)


# -- system checks (INSTALLED_APPS has "postwire.django") -----------------------------------


def _postwire_checks() -> list[str]:
    return [m.id for m in checks.run_checks() if m.id and m.id.startswith("postwire.")]


def test_system_checks_report_settings_that_cannot_work() -> None:
    with override_settings(EMAIL_HOST_USER=USER, EMAIL_HOST_PASSWORD=PASSWORD):
        assert _postwire_checks() == ["postwire.E002"]  # credentials, no TLS
        with override_settings(EMAIL_USE_TLS=True):
            assert _postwire_checks() == []
        with override_settings(POSTWIRE_EMAIL={"allow_plaintext_auth": True}):
            assert _postwire_checks() == []
    with override_settings(POSTWIRE_EMAIL={"cafille": "/x"}):
        assert _postwire_checks() == ["postwire.E001"]
        with override_settings(EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend"):
            assert _postwire_checks() == []  # not postwire's backend: not postwire's business


# -- Django stays optional -------------------------------------------------------------------


def test_importing_postwire_does_not_import_django() -> None:
    code = (
        "import sys, postwire, postwire.config, postwire.capture, postwire.cli\n"
        "import postwire.django\n"  # the package itself imports the backend lazily
        "assert not any(m == 'django' or m.startswith('django.') for m in sys.modules), "
        "sorted(m for m in sys.modules if m.startswith('django'))\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
