"""Soak: thousands of messages through a pool while the server is stopped and restarted.

Every message must end either delivered or reported failed; none may be lost
(success reported, nothing arrived) and none may arrive twice, and a message
reported as failed may only have arrived if it was reported as "possibly
delivered".  Bounded to well under a minute.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections import Counter
from pathlib import Path

from postwire import PossiblyDelivered, SendResult
from postwire.capture import CaptureServer
from postwire.client import Pool

MESSAGES = 6000
RESTARTS = 8


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _delivered_ids(maildir: Path) -> Counter[str]:
    ids: Counter[str] = Counter()
    for folder in ("new", "cur"):
        for path in (maildir / folder).glob("*"):
            m = re.search(rb"Message-ID: <soak-(\d+)@test>", path.read_bytes())
            assert m, path
            ids[m.group(1).decode()] += 1
    return ids


def test_soak_pool_with_server_restarts(tmp_path: Path) -> None:
    port = _free_port()
    maildir = tmp_path / "Maildir"
    servers = [CaptureServer(port=port, tls="none", maildir=maildir)]
    servers[0].start()
    done = threading.Event()
    restarts = 0

    def chaos() -> None:
        nonlocal restarts
        while restarts < RESTARTS and not done.wait(0.4):
            servers[-1].stop()
            time.sleep(0.15)
            server = CaptureServer(port=port, tls="none", maildir=maildir)
            server.start()
            servers.append(server)
            restarts += 1

    items = [
        (
            f"Message-ID: <soak-{i}@test>\r\nSubject: soak {i}\r\n\r\nbody {i}\r\n".encode(),
            "soak@test",
            ["sink@test"],
        )
        for i in range(MESSAGES)
    ]
    thread = threading.Thread(target=chaos)
    t0 = time.monotonic()
    final: dict[int, object] = {}
    rounds = 0
    try:
        with Pool(
            "127.0.0.1", port, tls="none", max_connections=4, timeout=5, check_after=0.0
        ) as pool:
            thread.start()
            # Resend what was reported "not delivered", in rounds, as a caller
            # would: if such a report were wrong, the message would arrive twice.
            todo = list(range(MESSAGES))
            while todo and rounds < 20 and time.monotonic() - t0 < 45:
                rounds += 1
                outcomes = pool.send_many([items[i] for i in todo])
                for i, outcome in zip(todo, outcomes, strict=True):
                    final[i] = outcome
                todo = [
                    i for i in todo if not isinstance(final[i], (SendResult, PossiblyDelivered))
                ]
                if todo:
                    time.sleep(0.1)
    finally:
        done.set()
        thread.join(10)
        for server in servers:
            server.stop()
    elapsed = time.monotonic() - t0

    assert len(final) == MESSAGES
    arrived = _delivered_ids(maildir)
    delivered = failed = possibly = lost = doubled = 0
    for i in range(MESSAGES):
        outcome = final[i]
        count = arrived.get(str(i), 0)
        doubled += count > 1
        if isinstance(outcome, SendResult):
            delivered += 1
            lost += count == 0
        elif isinstance(outcome, PossiblyDelivered):
            possibly += 1
        else:
            failed += 1
            lost += count != 0  # reported as not delivered, yet it arrived
    print(
        f"soak: {MESSAGES} messages in {elapsed:.1f} s, {restarts} restarts, {rounds} rounds: "
        f"delivered={delivered} failed={failed} possibly_delivered={possibly} "
        f"lost={lost} duplicated={doubled}"
    )
    assert lost == 0
    assert doubled == 0
    assert delivered + failed + possibly == MESSAGES
    assert restarts == RESTARTS
    assert delivered > MESSAGES // 2
