"""Chaos with a real relay that restarts: the capture server (aiosmtpd), stopped and started
again on the same port while worker processes deliver to it, and a worker SIGKILLed meanwhile.

The scripted relay of test_chaos.py restarts too; this one is the real server the issue names.
Counted at the capture servers (before and after the restart) by Message-ID and recipient:
nothing lost, and the copies beyond the first never exceed that recipient's uncertain marks.
"""

from __future__ import annotations

import collections
import re
import time
from pathlib import Path

import pytest

from postwire.capture import CaptureServer
from postwire.outbox import Outbox, State
from test_chaos import Chaos, Figures, item, report, settle

TOTAL = 240
#: Bounds on every wait.
DELIVERY_BOUND = 60.0

MESSAGE_ID = re.compile(rb"^Message-ID:\s*(<[^>]+>)", re.IGNORECASE | re.MULTILINE)


class RestartingRelay:
    """The capture server on one port, restartable; ``url`` for the workers."""

    def __init__(self) -> None:
        self.servers = [CaptureServer("127.0.0.1", 0, tls="none")]
        self.servers[0].start()
        self.port = self.servers[0].port
        self.url = f"smtp://127.0.0.1:{self.port}?tls=none"

    def delivered(self) -> int:
        return sum(len(s.messages) for s in self.servers)

    def restart(self, down: float) -> None:
        self.servers[-1].stop()
        time.sleep(down)  # workers meet a refused connection meanwhile, and defer
        server = CaptureServer("127.0.0.1", self.port, tls="none")
        server.start()
        self.servers.append(server)

    def received(self) -> collections.Counter[tuple[str, str]]:
        copies: collections.Counter[tuple[str, str]] = collections.Counter()
        for server in self.servers:
            for message in server.messages:
                found = MESSAGE_ID.search(message.data)
                assert found, message.data[:200]
                for rcpt in message.rcpt_tos:
                    copies[(found.group(1).decode(), rcpt)] += 1
        return copies

    def stop(self) -> None:
        self.servers[-1].stop()


@pytest.mark.timeout(300)
def test_the_capture_server_restarting_under_the_workers(outbox_url: str, tmp_path: Path) -> None:
    figures = Figures(outbox_url.split(":", 1)[0] + "+capture")
    started = time.monotonic()
    relay = RestartingRelay()
    chaos = Chaos(outbox_url, relay, figures, tmp_path)  # it only needs relay.url
    try:
        with Outbox(outbox_url) as outbox:
            outbox.put_many([item(i) for i in range(TOTAL)])
        doomed = chaos.start(concurrency=2, rate=False)
        chaos.start(concurrency=2, rate=False)
        deadline = time.monotonic() + DELIVERY_BOUND
        while relay.delivered() < TOTAL // 4:
            assert time.monotonic() < deadline, "no delivery under way"
            time.sleep(0.02)
        relay.restart(down=1.0)
        figures.restarts["capture"] = 1
        while relay.delivered() < TOTAL // 2:
            assert time.monotonic() < deadline, "nothing delivered after the restart"
            time.sleep(0.02)
        chaos.kill(doomed)
        chaos.start(concurrency=2, rate=False)
        settle(outbox_url, TOTAL, tmp_path)
    finally:
        chaos.end()
        relay.stop()
    received = relay.received()
    with Outbox(outbox_url) as outbox:
        entries = [outbox.get(e.id) for e in outbox.list(limit=TOTAL + 10)]
    assert len(entries) == TOTAL and {e.state for e in entries} == {State.SENT}
    lost = duplicates = uncertain = 0
    for entry in entries:
        for r in entry.recipients:
            copies = received[(entry.message_id or "", r.address)]
            lost += copies == 0
            duplicates += max(0, copies - 1)
            uncertain += r.uncertain
            assert copies - 1 <= r.uncertain, (entry.message_id, r.address, copies)
    figures.messages, figures.recipients = TOTAL, sum(len(e.recipients) for e in entries)
    figures.lost, figures.duplicates, figures.uncertain = lost, duplicates, uncertain
    figures.seconds = round(time.monotonic() - started, 1)
    report(figures)
    assert lost == 0 and duplicates <= uncertain
    # The restart really happened under load: both servers took mail.
    assert all(server.messages for server in relay.servers)
