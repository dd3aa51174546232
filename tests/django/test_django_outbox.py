"""``postwire.django.OutboxBackend`` and ``manage.py postwire_outbox_work`` on real databases
(a SQLite file and the session's PostgreSQL) and real servers (the capture server, Postfix).

What is stored is read back from the outbox; what the worker sends is read back at the
server, byte for byte against what was stored: the envelope (Bcc there), the headers (Bcc
never), the attachments.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage as StdMessage
from pathlib import Path
from typing import Any

import pytest
from django.core import checks, mail
from django.core.exceptions import ImproperlyConfigured
from django.core.mail import EmailMessage, EmailMultiAlternatives
from django.core.management import CommandError, call_command
from django.test import override_settings

from backend_helpers import StartCapture, capture_settings, postfix_settings
from postwire.django import OutboxBackend
from postwire.errors import StorageError
from postwire.outbox import Entry, Outbox, State
from servers.postfix import PostfixServer, strip_trace

BACKEND = "postwire.django.OutboxBackend"
FROM = "webmaster@test.example"
ALICE, BOB, CAROL = "alice@test.example", "bob@test.example", "carol@test.example"
#: Bytes no text encoding leaves alone: the attachment must arrive as they are.
PAYLOAD = bytes(range(256)) * 4
#: Generous bounds: a loaded 2-core machine is slow, never this slow.
BOUND = 60.0
HERE = Path(__file__).parent


@pytest.fixture
def outbox_settings(outbox_url: str) -> Iterator[str]:
    """EMAIL_BACKEND = OutboxBackend, POSTWIRE_OUTBOX = a new SQLite or PostgreSQL outbox."""
    with override_settings(EMAIL_BACKEND=BACKEND, POSTWIRE_OUTBOX=outbox_url):
        yield outbox_url


def _rich(subject: str = "Report") -> EmailMultiAlternatives:
    """To, Cc, Bcc, a text body, an HTML alternative and a binary attachment."""
    message = EmailMultiAlternatives(
        subject, "text body\n", FROM, [ALICE], bcc=[CAROL], cc=[BOB], headers={"X-Test": "1"}
    )
    message.attach_alternative("<p>html body</p>", "text/html")
    message.attach("data.bin", PAYLOAD, "application/octet-stream")
    return message


def _queued(url: str) -> list[Entry]:
    with Outbox(url) as outbox:
        return list(reversed(outbox.list(State.QUEUED)))


def _stored(url: str, entry: Entry) -> bytes:
    with Outbox(url) as outbox:
        return outbox.message(entry.id)


def _parsed(data: bytes) -> StdMessage:
    parsed = message_from_bytes(data, policy=policy.default)
    assert isinstance(parsed, StdMessage)
    return parsed


def _attachment(message: StdMessage) -> bytes:
    (part,) = list(message.iter_attachments())
    content = part.get_content()
    assert isinstance(content, bytes)
    return content


# -- putting -----------------------------------------------------------------------------------


def test_send_mail_queues_one_entry_and_records_it(outbox_settings: str) -> None:
    assert mail.send_mail("Hello", "body\n", FROM, [ALICE]) == 1
    (entry,) = _queued(outbox_settings)
    assert entry.sender == FROM and [r.address for r in entry.recipients] == [ALICE]
    stored = _parsed(_stored(outbox_settings, entry))
    assert stored["Subject"] == "Hello" and stored["Message-ID"] == entry.message_id
    assert entry.key == entry.message_id  # idempotent on the Message-ID


def test_bcc_attachments_and_alternatives_are_stored_as_django_serializes_them(
    outbox_settings: str,
) -> None:
    message = _rich()
    with mail.get_connection() as connection:
        assert connection.send_messages([message]) == 1
    entry = message.postwire_entry
    assert isinstance(entry, Entry) and entry.state is State.QUEUED
    assert [r.address for r in entry.recipients] == [ALICE, BOB, CAROL]  # Bcc in the envelope
    raw = _stored(outbox_settings, entry)
    assert b"\nBcc:" not in raw and CAROL.encode() not in raw  # never in the headers
    stored = _parsed(raw)
    assert stored["X-Test"] == "1"
    html = stored.get_body(("html",))
    assert html is not None and html.get_content().strip() == "<p>html body</p>"
    assert _attachment(stored) == PAYLOAD


def test_send_mass_mail_queues_every_message_in_one_call(outbox_settings: str) -> None:
    data = [("one", "1\n", FROM, [ALICE]), ("two", "2\n", FROM, [BOB, CAROL])]
    assert mail.send_mass_mail(data) == 2
    entries = _queued(outbox_settings)
    assert sorted(_parsed(_stored(outbox_settings, e))["Subject"] for e in entries) == [
        "one",
        "two",
    ]


def test_a_message_id_in_the_headers_makes_sending_again_idempotent(outbox_settings: str) -> None:
    def message() -> EmailMessage:
        return EmailMessage("Once", "b\n", FROM, [ALICE], headers={"Message-ID": "<once@t.e>"})

    first, second = message(), message()
    assert mail.get_connection().send_messages([first]) == 1
    assert mail.get_connection().send_messages([second]) == 1
    assert first.postwire_entry.id == second.postwire_entry.id
    assert len(_queued(outbox_settings)) == 1


def test_per_message_route_priority_and_settings_dict(outbox_url: str) -> None:
    setting = {"url": outbox_url, "route": "bulk", "priority": 1}
    with override_settings(EMAIL_BACKEND=BACKEND, POSTWIRE_OUTBOX=setting):
        plain = EmailMessage("p", "b\n", FROM, [ALICE])
        urgent = EmailMessage("u", "b\n", FROM, [BOB])
        urgent.postwire_route = "alerts"
        urgent.postwire_priority = 9
        nobody = EmailMessage("n", "b\n", FROM, [])
        assert mail.get_connection().send_messages([plain, urgent, nobody]) == 2
    assert (plain.postwire_entry.route, plain.postwire_entry.priority) == ("bulk", 1)
    assert (urgent.postwire_entry.route, urgent.postwire_entry.priority) == ("alerts", 9)
    assert nobody.postwire_entry is None  # no recipient: skipped, as Django skips it


def test_one_outbox_connection_between_open_and_close(outbox_settings: str) -> None:
    backend = mail.get_connection()
    assert isinstance(backend, OutboxBackend)
    assert backend.open() is True and backend.open() is False
    outbox = backend.outbox
    backend.send_messages([EmailMessage("a", "b\n", FROM, [ALICE])])
    backend.send_messages([EmailMessage("c", "d\n", FROM, [BOB])])
    assert backend.outbox is outbox  # reused, not reopened per call
    backend.close()
    assert backend.outbox is None
    with mail.get_connection() as connection:
        assert connection.outbox is not None
    assert connection.outbox is None
    assert len(_queued(outbox_settings)) == 2


def test_returns_at_once_while_the_relay_is_down(outbox_settings: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead_port = sock.getsockname()[1]  # nothing listens once the socket is closed
    # A relay that is down (and one that does not exist) costs the request nothing.
    with override_settings(EMAIL_HOST="127.0.0.1", EMAIL_PORT=dead_port):
        started = time.monotonic()
        sent = mail.send_mass_mail([(f"s{n}", "b\n", FROM, [ALICE]) for n in range(20)])
        elapsed = time.monotonic() - started
    assert sent == 20 and len(_queued(outbox_settings)) == 20
    assert elapsed < 10.0  # a put per message, no connection: well under any SMTP timeout


# -- errors ------------------------------------------------------------------------------------


@pytest.fixture
def dead_database() -> str:
    """A PostgreSQL URL where nothing listens: every open fails at once (refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"postgresql://postwire@127.0.0.1:{port}/nothing"


def test_a_database_that_fails_follows_fail_silently(dead_database: str) -> None:
    with override_settings(EMAIL_BACKEND=BACKEND, POSTWIRE_OUTBOX=dead_database):
        assert mail.send_mail("s", "b\n", FROM, [ALICE], fail_silently=True) == 0
        with pytest.raises(StorageError):
            mail.send_mail("s", "b\n", FROM, [ALICE])
        backend = mail.get_connection(fail_silently=True)
        assert backend.open() is None


def test_a_storage_error_while_putting_is_recorded_on_the_message(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/outbox.sqlite3"
    with override_settings(EMAIL_BACKEND=BACKEND, POSTWIRE_OUTBOX=url):
        backend = mail.get_connection(fail_silently=True)
        backend.open()
        # The database goes away under an open backend (a real file made unreadable).
        backend.outbox.close()
        (tmp_path / "outbox.sqlite3").unlink()
        (tmp_path / "outbox.sqlite3").mkdir()
        message = EmailMessage("s", "b\n", FROM, [ALICE])
        assert backend.send_messages([message]) == 0
        assert isinstance(message.postwire_entry, StorageError)
        backend.fail_silently = False
        with pytest.raises(StorageError):
            backend.send_messages([EmailMessage("s", "b\n", FROM, [ALICE])])


def test_bad_settings_are_refused_before_anything_is_stored() -> None:
    with override_settings(EMAIL_BACKEND=BACKEND, POSTWIRE_OUTBOX="mysql://x/y"):
        with pytest.raises(ImproperlyConfigured, match="scheme"):
            mail.get_connection(fail_silently=True)
        errors = checks.run_checks()
        assert [e.id for e in errors] == ["postwire.E001"]
    with override_settings(EMAIL_BACKEND=BACKEND, POSTWIRE_OUTBOX={"ur": "x"}):
        with pytest.raises(ImproperlyConfigured, match="unknown key 'ur'"):
            mail.get_connection()
    with pytest.raises(TypeError, match="does not connect"):
        OutboxBackend(host="smtp.example.org")
    with pytest.raises(ValueError):  # a bad address: nothing queued, whatever fail_silently
        OutboxBackend(fail_silently=True).send_messages(
            [EmailMessage("s", "b\n", FROM, ["bad\naddress@x.test"])]
        )


# -- the worker: manage.py postwire_outbox_work ------------------------------------------------


def test_the_command_delivers_through_the_email_settings(
    outbox_settings: str, start_capture: StartCapture
) -> None:
    server = start_capture(tls="starttls", auth={"django-app": "s3cret-Pa55"})
    first, second = _rich("first"), EmailMessage("second", "plain\n", FROM, [BOB])
    assert mail.get_connection().send_messages([first, second]) == 2
    with override_settings(**capture_settings(server)):
        call_command("postwire_outbox_work", "--until-empty", "--min-backoff", "1")
    received = {m.subject: m for m in server.wait_for(2, timeout=BOUND)}
    rich = received["first"]
    assert rich.mail_from == FROM and sorted(rich.rcpt_tos) == [ALICE, BOB, CAROL]
    assert rich.tls and rich.auth_user == "django-app"  # EMAIL_USE_TLS and the credentials
    # Byte for byte what OutboxBackend stored: no Bcc, the attachment intact.
    assert rich.data == _stored(outbox_settings, first.postwire_entry)
    assert b"\nBcc:" not in rich.data and _attachment(rich.email()) == PAYLOAD
    assert received["second"].data == _stored(outbox_settings, second.postwire_entry)
    with Outbox(outbox_settings) as outbox:
        assert outbox.get(first.postwire_entry.id).state is State.SENT


def test_the_command_through_postfix(outbox_settings: str, postfix_inbox: PostfixServer) -> None:
    message = _rich("via postfix")
    assert mail.get_connection().send_messages([message]) == 1
    with override_settings(**postfix_settings(postfix_inbox)):
        call_command("postwire_outbox_work", "--until-empty", "--json", stdout=(out := _Out()))
    assert json.loads(out.text)["delivered"] == 3
    delivered = postfix_inbox.wait_for_messages(3)  # alice, bob, carol (Bcc): one copy each
    stored = _stored(outbox_settings, message.postwire_entry)
    for raw in delivered:
        assert strip_trace(raw) == stored  # as sent: Postfix added only its trace fields


def test_the_command_refuses_settings_it_cannot_use(outbox_settings: str) -> None:
    with override_settings(EMAIL_USE_TLS=True, EMAIL_USE_SSL=True):
        with pytest.raises(CommandError, match="mutually exclusive"):
            call_command("postwire_outbox_work", "--until-empty")
    with pytest.raises(CommandError, match="scheme"):
        call_command("postwire_outbox_work", "--until-empty", "--db", "mysql://x/y")


class _Out:
    """A stdout for call_command that keeps what was written."""

    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> None:
        self.text += text

    def flush(self) -> None:
        pass


# -- manage.py as a process --------------------------------------------------------------------


def _manage(settings: dict[str, Any], *args: str) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "MAILSITE_SETTINGS": json.dumps(settings),
        # The project (tests/django) and postwire's sources, as in this process.
        "PYTHONPATH": os.pathsep.join([str(HERE), *sys.path]),
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return subprocess.Popen(
        [sys.executable, str(HERE / "manage.py"), "postwire_outbox_work", *args],
        env=env,
        cwd=HERE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_manage_py_delivers_and_stops_on_sigterm(
    outbox_settings: str, start_capture: StartCapture
) -> None:
    server = start_capture(tls="starttls", auth={"django-app": "s3cret-Pa55"})
    message = _rich("from a process")
    assert mail.get_connection().send_messages([message]) == 1
    settings = {**capture_settings(server), "POSTWIRE_OUTBOX": outbox_settings}
    worker = _manage(settings, "--poll", "0.2")
    try:
        (received,) = server.wait_for(1, timeout=BOUND)
        assert received.data == _stored(outbox_settings, message.postwire_entry)
        assert sorted(received.rcpt_tos) == [ALICE, BOB, CAROL]
        # Mail put while it runs is delivered too (the worker waits, it does not exit).
        assert mail.send_mail("later", "b\n", FROM, [ALICE]) == 1
        server.wait_for(2, timeout=BOUND)
        worker.send_signal(signal.SIGTERM)
        out, err = worker.communicate(timeout=BOUND)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.communicate(timeout=BOUND)
    assert worker.returncode == 0, err
    assert "delivered 4," in out  # counted per recipient: 3, then 1
