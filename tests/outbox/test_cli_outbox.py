"""``postwire outbox ...`` and ``postwire sendmail --queue`` as processes, on real databases,
delivering to the scripted relay on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from postwire.outbox import Outbox, State
from servers.postgres import free_port
from servers.relay import ScriptedRelay

BOUND = 60


def cli(
    *args: str, stdin: bytes = b"", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "postwire", *args],
        input=stdin.decode(),
        capture_output=True,
        text=True,
        timeout=BOUND,
        env={**os.environ, **(env or {})},
    )


MESSAGE = (
    b"From: Ada <ada@outbox.test>\r\nTo: charles@x.test\r\nBcc: secret@x.test\r\n"
    b"Message-ID: <cli-1@outbox.test>\r\nSubject: engines\r\n\r\nHello!\r\n"
)


def test_put_status_list_show(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/o.sqlite3"
    first = cli("outbox", "put", "-", "--db", db, stdin=MESSAGE)
    assert first.returncode == 0, first.stderr
    entry_id, state, key = first.stdout.split()
    assert state == "queued" and key == "<cli-1@outbox.test>"
    again = cli("outbox", "put", "-", "--db", db, "--json", stdin=MESSAGE)
    assert json.loads(again.stdout)["id"] == int(entry_id)  # same Message-ID: same entry
    built = cli(
        "outbox", "put", "--db", db, "--from", "ada@outbox.test", "--to", "b@x.test",
        "--subject", "hi", "--body", "text", "--priority", "5", "--route", "bulk", "--json",
    )  # fmt: skip
    data = json.loads(built.stdout)
    assert data["priority"] == 5 and data["route"] == "bulk" and data["message_id"]
    status = cli("outbox", "status", "--db", db, "--json")
    assert json.loads(status.stdout)["counts"]["queued"] == 2
    text = cli("outbox", "status", "--db", db).stdout
    assert "queued     2" in text and "oldest waiting:" in text
    listing = cli("outbox", "list", "--db", db, "--state", "queued").stdout.splitlines()
    assert len(listing) == 2 and "charles@x.test, secret@x.test" in listing[1]
    shown = json.loads(cli("outbox", "show", entry_id, "--db", db, "--json").stdout)
    assert [r["address"] for r in shown["recipients"]] == ["charles@x.test", "secret@x.test"]
    stored = cli("outbox", "show", entry_id, "--db", db, "--message").stdout
    assert "Bcc" not in stored and "Hello!" in stored and "Date: " in stored


def test_bad_input_and_missing_entries(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/o.sqlite3"
    no_rcpt = cli(
        "outbox", "put", "-", "--db", db, stdin=b"From: a@x.test\r\nSubject: x\r\n\r\nhi\r\n"
    )
    assert no_rcpt.returncode == 65 and "no recipients" in no_rcpt.stderr
    missing = cli("outbox", "show", "42", "--db", db)
    assert missing.returncode == 66 and "no outbox entry 42" in missing.stderr
    bad_url = cli("outbox", "status", "--db", "mysql://x")
    assert bad_url.returncode == 78 and "unknown outbox URL scheme" in bad_url.stderr
    bad_duration = cli("outbox", "purge", "--db", db, "--older-than", "soon")
    assert bad_duration.returncode == 64
    bad_state = cli("outbox", "list", "--db", db, "--state", "nosuch")
    assert bad_state.returncode == 64 and "no state 'nosuch'" in bad_state.stderr
    assert "internal error" not in bad_state.stderr


def test_operator_commands(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/o.sqlite3"
    entry_id = cli("outbox", "put", "-", "--db", db, stdin=MESSAGE).stdout.split()[0]
    assert cli("outbox", "hold", entry_id, "--db", db).stdout.split() == [entry_id, "held"]
    conflict = cli("outbox", "hold", entry_id, "--db", db)
    assert conflict.returncode == 65 and "cannot hold an entry that is held" in conflict.stderr
    assert cli("outbox", "release", entry_id, "--db", db).stdout.split() == [entry_id, "queued"]
    both = cli("outbox", "cancel", entry_id, "999", "--db", db)
    assert both.returncode == 66 and both.stdout.split() == [entry_id, "cancelled"]
    assert cli("outbox", "retry", entry_id, "--db", db).returncode == 65  # cancelled is final
    time.sleep(0.05)
    purged = cli("outbox", "purge", "--older-than", "0", "--db", db)
    assert purged.stdout.strip() == "purged 1 entries"


def test_work_until_empty(tmp_path: Path, relay: ScriptedRelay) -> None:
    db = f"sqlite:///{tmp_path}/o.sqlite3"
    with Outbox(db) as outbox:
        outbox.put_many(
            [
                (MESSAGE.replace(b"cli-1", f"w-{i}".encode()), "ada@outbox.test", [f"r{i}@x.test"])
                for i in range(20)
            ]
        )
    done = cli("outbox", "work", "--db", db, "--relay", relay.url, "--until-empty", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["delivered"] == 20
    assert len(relay.received()) == 20


def test_a_worker_stops_cleanly_on_sigterm(tmp_path: Path, relay: ScriptedRelay) -> None:
    db = f"sqlite:///{tmp_path}/o.sqlite3"
    Outbox(db).close()
    proc = subprocess.Popen(
        [sys.executable, "-m", "postwire", "outbox", "work", "--db", db, "--relay", relay.url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1.5)
        with Outbox(db) as outbox:
            outbox.put(MESSAGE, sender="ada@outbox.test", recipients=["r@x.test"])
            deadline = time.monotonic() + BOUND
            while outbox.counts()[State.SENT] < 1 and time.monotonic() < deadline:
                time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=BOUND)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and "delivered 1," in err
    assert relay.received() == {("<cli-1@outbox.test>", "r@x.test"): 1}


@pytest.mark.parametrize("workers", [3])
def test_many_worker_processes_share_one_database(
    outbox_url: str, relay: ScriptedRelay, workers: int
) -> None:
    with Outbox(outbox_url) as outbox:
        outbox.put_many(
            [
                (MESSAGE.replace(b"cli-1", f"p-{i}".encode()), "ada@outbox.test", [f"r{i}@x.test"])
                for i in range(300)
            ]
        )
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "postwire",
                "outbox",
                "work",
                "--db",
                outbox_url,
                "--relay",
                relay.url,
                "--until-empty",
                "--batch",
                "8",
                "--concurrency",
                "2",
                "--json",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(workers)
    ]
    delivered = 0
    for proc in procs:
        out, err = proc.communicate(timeout=BOUND)
        assert proc.returncode == 0, err
        delivered += json.loads(out)["delivered"]
    received = relay.received()
    assert len(received) == 300 and set(received.values()) == {1} and delivered == 300
    with Outbox(outbox_url) as outbox:
        assert outbox.counts()[State.SENT] == 300


def sendmail(
    db: str, port: int, *args: str, stdin: bytes = MESSAGE
) -> subprocess.CompletedProcess[str]:
    env = {"POSTWIRE_SERVER": f"127.0.0.1:{port}", "POSTWIRE_TLS": "none", "POSTWIRE_TIMEOUT": "5"}
    return cli("sendmail", "--queue", "--db", db, "-t", *args, stdin=stdin, env=env)


def test_sendmail_queue_when_the_relay_is_down(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/o.sqlite3"
    port = free_port()  # nothing listens there
    done = sendmail(db, port)
    assert done.returncode == 0, done.stderr
    assert "queued as outbox entry 1" in done.stderr
    with Outbox(db) as outbox:
        (entry,) = outbox.list()
        assert [r.address for r in entry.recipients] == ["charles@x.test", "secret@x.test"]
        assert b"Bcc" not in outbox.message(entry.id)
    with ScriptedRelay(port=port) as relay:
        work = cli("outbox", "work", "--db", db, "--relay", relay.url, "--until-empty")
        assert work.returncode == 0, work.stderr
        assert sorted(relay.received()) == [
            ("<cli-1@outbox.test>", "charles@x.test"),
            ("<cli-1@outbox.test>", "secret@x.test"),
        ]


def test_sendmail_queue_sends_at_once_and_queues_only_the_4xx(
    tmp_path: Path, relay: ScriptedRelay
) -> None:
    db = f"sqlite:///{tmp_path}/o.sqlite3"
    msg = MESSAGE.replace(b"To: charles@x.test", b"To: charles@x.test, defer@x.test, bounce@x.test")
    done = sendmail(db, relay.port, stdin=msg)
    assert done.returncode == 67  # bounce@ was refused for good, and said so
    assert "recipient refused: bounce@x.test: 550" in done.stderr
    assert "queued as outbox entry 1 for defer@x.test" in done.stderr
    assert sorted(r for _, r in relay.received()) == ["charles@x.test", "secret@x.test"]
    with Outbox(db) as outbox:
        (entry,) = outbox.list()
        assert [r.address for r in entry.recipients] == ["defer@x.test"]
    plain = sendmail(db, relay.port, stdin=MESSAGE.replace(b"cli-1", b"cli-2"))
    assert plain.returncode == 0 and "queued" not in plain.stderr
