"""``SMTPHandler(outbox=...)``: records become outbox entries (real SQLite and PostgreSQL),
a worker delivers them to a capture server, and the logging thread never waits for the
database."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from logging_support import OPS, SENDER, all_records, logger_for
from postwire.capture import CaptureServer
from postwire.logging import SMTPHandler
from postwire.outbox import Outbox, State

MakeHandler = Callable[..., SMTPHandler]
StartCapture = Callable[..., CaptureServer]
HOUR = 3600.0
BOUND = 60.0


def test_a_storm_becomes_entries_then_mail_once_a_worker_runs(
    outbox_url: str, handler_for: MakeHandler, start_capture: StartCapture
) -> None:
    handler = handler_for(
        outbox=outbox_url, batch_delay=HOUR, batch_max_records=500, rate_limit=None
    )
    assert handler.target.startswith("the outbox ")
    logger = logger_for(handler)
    for i in range(2000):
        logger.error("storm %04d", i)
    assert handler.send_pending(BOUND)
    assert handler.messages_sent == 4 and handler.records_dropped == 0
    with Outbox(outbox_url) as outbox:
        entries = outbox.list(State.QUEUED)
        assert len(entries) == 4
        assert all(
            e.sender == SENDER and [r.address for r in e.recipients] == [OPS] for e in entries
        )
        server = start_capture()
        stats = outbox.work(
            relay=f"smtp://127.0.0.1:{server.port}",
            client_options={"cafile": str(server.ca_file)},
            until_empty=True,
        )
    assert stats["delivered"] == 4
    messages = server.wait_for(4, timeout=BOUND)
    assert sorted(m.subject or "" for m in messages) == ["app (500 records)"] * 4
    assert sorted(all_records(messages)) == [f"storm {i:04d}" for i in range(2000)]


def test_the_logging_thread_never_waits_for_a_locked_database(
    tmp_path: Path, handler_for: MakeHandler
) -> None:
    url = f"sqlite:///{tmp_path}/outbox.sqlite3"
    Outbox(url).close()  # the tables
    handler = handler_for(outbox=url, batch_delay=0.0, rate_limit=None, flush_timeout=1.0)
    logger = logger_for(handler)
    blocker = sqlite3.connect(tmp_path / "outbox.sqlite3", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        started = time.monotonic()
        for i in range(1000):
            logger.error("while locked %d", i)
        logged = time.monotonic() - started
        waited = time.monotonic()
        assert handler.send_pending(0.5) is False  # the put waits for the lock, not us
        flushed = time.monotonic() - waited
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert logged < 10.0 and flushed < 5.0  # bounded: nothing waited for the database
    assert handler.send_pending(BOUND)  # the lock is gone: the put went through
    with Outbox(url) as outbox:
        bodies = [_body(outbox.message(e.id)) for e in outbox.list(State.QUEUED)]
    records = [line for body in bodies for line in body.splitlines()]
    assert sorted(records) == sorted(f"while locked {i}" for i in range(1000))


def _body(data: bytes) -> str:
    message = message_from_bytes(data, policy=policy.default)
    assert isinstance(message, EmailMessage)
    content = message.get_content()
    assert isinstance(content, str)
    return content


def test_a_database_that_is_down_keeps_the_records_for_another_try(
    tmp_path: Path, handler_for: MakeHandler
) -> None:
    # The outbox's folder is a file: every put fails (StorageError), the records wait.
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    url = f"sqlite:///{blocked}/outbox.sqlite3"
    handler = handler_for(outbox=url, batch_delay=0.0, rate_limit=None, retry_delay=0.1)
    logger_for(handler).error("kept")
    assert handler.send_pending(BOUND) is False
    assert handler.send_failures >= 1 and handler.records_queued == 1
    blocked.unlink()  # the database can be made now
    deadline = time.monotonic() + BOUND
    while not handler.send_pending(1.0):
        assert time.monotonic() < deadline, "the records were never put"
        time.sleep(0.1)  # the back-off holds the retry a moment
    with Outbox(url) as outbox:
        assert len(outbox.list(State.QUEUED)) == 1


def test_an_outbox_object_is_shared_and_true_is_the_default(
    tmp_path: Path, handler_for: MakeHandler, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Outbox(f"sqlite:///{tmp_path}/given.sqlite3") as given:
        handler = handler_for(outbox=given, account=None, batch_delay=0.0)
        logger_for(handler).error("given")
        assert handler.send_pending(BOUND)
        handler.close()
        assert len(given.list()) == 1  # still open: the application's, not the handler's
    monkeypatch.setenv("POSTWIRE_OUTBOX", f"sqlite:///{tmp_path}/default.sqlite3")
    handler = handler_for(outbox=True, batch_delay=0.0)
    logger_for(handler).error("default")
    assert handler.send_pending(BOUND)
    with Outbox(f"sqlite:///{tmp_path}/default.sqlite3") as outbox:
        assert len(outbox.list()) == 1


def test_where_to_connect_is_refused_with_an_outbox(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/outbox.sqlite3"
    with pytest.raises(ValueError, match="mailhost= has no use with outbox="):
        SMTPHandler(("127.0.0.1", 25), SENDER, [OPS], outbox=url)
    with pytest.raises(ValueError, match="scheme"):
        SMTPHandler(fromaddr=SENDER, toaddrs=[OPS], outbox="mysql://x/y")
    with pytest.raises(TypeError):
        SMTPHandler(fromaddr=SENDER, toaddrs=[OPS], outbox=42)
    # Nothing connects before the first record; reports never show the password.
    handler = SMTPHandler(
        fromaddr=SENDER, toaddrs=[OPS], outbox="postgresql://app:secret@127.0.0.1:1/db"
    )
    assert handler.target == "the outbox postgresql://app@127.0.0.1:1/db"
    handler.close()
