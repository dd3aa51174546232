"""Chaos with real processes, on SQLite and on PostgreSQL, counted at the relay.

Worker processes (``chaos_worker.py``, the real worker) are SIGKILLed at each step of a
delivery (claimed; content sent, no "."; "." marked, not written; replies in, results not
written) and at seeded random moments; one is SIGSTOPped past its lease and SIGCONTed; a
process putting messages is SIGKILLed and its messages put again; PostgreSQL is restarted
with ``-m immediate``; the relay (tests/servers/relay.py) is restarted, drops the connection
after some final dots, delays some final replies, answers 452 after three recipients and
421 to every ninth greeting.  Every phase is bounded in time.

Invariants, counted at the relay by Message-ID and recipient: nothing lost; for every
(Message-ID, recipient), the copies beyond the first never exceed the times that recipient
was marked uncertain (so duplicates never exceed uncertain); open connections never above
the relay's limit, final dots never above its rate in any one-second window.

Set ``POSTWIRE_CHAOS_REPORT=path`` to have the figures appended there as JSON lines
(benchmarks/run.py --only outbox copies them into RESULTS.md).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pytest

from postwire.outbox import Outbox, State
from servers.postgres import PostgresServer
from servers.relay import Faults, ScriptedRelay, max_in_window, max_overlap

HERE = Path(__file__).parent
STEPS = ("claimed", "before_mark", "after_mark", "replied", "before_finish")
LEASE = 1.5
MAX_CONNECTIONS = 4
RATE = 50.0
#: Bounds on every wait: a phase that takes longer fails the test instead of hanging it.
STEP_BOUND = 30.0
SETTLE_BOUND = 150.0


def message(i: int) -> bytes:
    return (
        f"From: chaos@outbox.test\r\nSubject: chaos {i}\r\nMessage-ID: <chaos-{i}@outbox.test>\r\n"
        f"\r\nmessage {i}\r\n" + "x" * 200 + "\r\n"
    ).encode()


def recipients(i: int) -> list[str]:
    return [f"r{i}-{k}@x.test" for k in range(5 if i % 4 == 0 else 1)]


def item(i: int) -> tuple[bytes, str, list[str]]:
    return message(i), "chaos@outbox.test", recipients(i)


@dataclass
class Figures:
    database: str
    messages: int = 0
    recipients: int = 0
    kills: int = 0
    stops: int = 0
    restarts: dict[str, int] = field(default_factory=dict)
    lost: int = 0
    duplicates: int = 0
    uncertain: int = 0
    max_connections: int = 0
    max_rate: int = 0
    seconds: float = 0.0


class Proc:
    """A chaos worker process and what it printed."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.log = log
        with log.open("ab") as err:
            self.popen = subprocess.Popen(
                [sys.executable, str(HERE / "chaos_worker.py"), *args],
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
            )
        self.lines: list[str] = []
        self.stopped = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.append(line.strip())
            if line.startswith("STOPPED"):
                self.stopped.set()

    def wait_stopped(self, timeout: float = STEP_BOUND) -> None:
        assert self.stopped.wait(timeout), f"the worker never reached its step: {self.lines}"
        deadline = time.monotonic() + 5
        while _state(self.popen.pid) != "T":  # the SIGSTOP it sent itself has landed
            assert time.monotonic() < deadline, "the worker did not stop"
            time.sleep(0.01)

    def signal(self, signum: int) -> None:
        if self.popen.poll() is None:
            os.kill(self.popen.pid, signum)

    def end(self, timeout: float = 30.0) -> dict[str, int] | None:
        """SIGTERM, a bounded wait, SIGKILL; the counts it printed, if it could."""
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(10)
        self._reader.join(5)
        for line in reversed(self.lines):
            if line.startswith("{"):
                return dict(json.loads(line))
        return None


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "?"


class Chaos:
    def __init__(self, url: str, relay: ScriptedRelay, figures: Figures, logs: Path) -> None:
        self.logs = logs
        self.url = url
        self.relay = relay
        self.figures = figures
        self.procs: list[Proc] = []

    def start(self, *, stop_at: str = "", concurrency: int = 2, rate: bool = True) -> Proc:
        args = [
            "--db", self.url, "--relay", self.relay.url, "--lease", str(LEASE),
            "--concurrency", str(concurrency), "--max-connections", str(MAX_CONNECTIONS),
        ]  # fmt: skip
        if rate:
            args += ["--rate", str(RATE)]
        if stop_at:
            args += ["--stop-at", stop_at]
        proc = Proc(args, self.logs / f"worker-{len(self.procs)}.log")
        self.procs.append(proc)
        return proc

    def kill(self, proc: Proc) -> None:
        proc.signal(signal.SIGKILL)
        proc.popen.wait(10)
        self.figures.kills += 1

    def end(self) -> None:
        for proc in self.procs:
            proc.end()


def put_with_a_killed_putter(url: str, numbers: range, seed: int) -> None:
    """A process putting one message at a time is SIGKILLed mid-way; then everything is put
    again (same keys: the Message-IDs), as a caller who got no answer would."""
    code = (
        "import sys\nfrom postwire.outbox import Outbox\n"
        "sys.path[:0] = [sys.argv[2], sys.argv[3]]\nfrom test_chaos import item\n"
        "with Outbox(sys.argv[1]) as o:\n"
        f"    for i in range({numbers.start}, {numbers.stop}):\n"
        "        o.put(item(i)[0], sender=item(i)[1], recipients=item(i)[2])\n"
    )
    putter = subprocess.Popen([sys.executable, "-c", code, url, str(HERE), str(HERE.parent)])
    time.sleep(0.3 + random.Random(seed).random() * 0.3)
    putter.kill()
    putter.wait(10)
    with Outbox(url) as outbox:
        outbox.put_many([item(i) for i in numbers])


def check(url: str, relay: ScriptedRelay, total: int, figures: Figures) -> None:
    received = relay.received()
    with Outbox(url) as outbox:
        entries = outbox.list(limit=total + 10)
        states = {e.state for e in entries}
        full = [outbox.get(e.id) for e in entries]
    assert len(entries) == total, "a put went in twice, or was lost"
    assert states == {State.SENT}, states
    lost = duplicates = uncertain = 0
    for entry in full:
        for r in entry.recipients:
            copies = received.get((entry.message_id or "", r.address), 0)
            lost += copies == 0
            duplicates += max(0, copies - 1)
            uncertain += r.uncertain
            # Every copy beyond the first is accounted for by an uncertain mark.
            assert copies - 1 <= r.uncertain, (entry.message_id, r.address, copies, r.uncertain)
    # One final dot per (connection, moment): a message, whatever its recipients.
    dots = sorted({(d.connection, d.at) for d in relay.deliveries})
    figures.messages = total
    figures.recipients = sum(len(e.recipients) for e in full)
    figures.lost, figures.duplicates, figures.uncertain = lost, duplicates, uncertain
    figures.max_connections = max_overlap([(s.first, s.last) for s in relay.spans])
    figures.max_rate = max_in_window([at for _, at in dots])
    assert lost == 0
    assert duplicates <= uncertain
    assert figures.max_connections <= MAX_CONNECTIONS
    assert figures.max_rate <= RATE


def settle(url: str, total: int, logs: Path | None = None) -> None:
    deadline = time.monotonic() + SETTLE_BOUND
    with Outbox(url) as outbox:
        while outbox.counts()[State.SENT] < total:
            if time.monotonic() > deadline:
                tails = (
                    ""
                    if logs is None
                    else "\n".join(
                        f"{p.name}: {p.read_text(errors='replace')[-3000:]}"
                        for p in logs.glob("*.log")
                    )
                )
                raise AssertionError(f"not delivered in time: {outbox.counts()}\n{tails}")
            time.sleep(0.2)


def report(figures: Figures) -> None:
    print(f"\nchaos figures: {json.dumps(asdict(figures))}")
    path = os.environ.get("POSTWIRE_CHAOS_REPORT")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(asdict(figures)) + "\n")


def chaos_faults() -> Faults:
    dropped: set[str] = set()

    def drop_once(message_id: str) -> bool:
        number = (
            int(message_id.split("-")[1].split("@")[0]) if message_id.startswith("<chaos-") else 1
        )
        if number % 19 == 0 and message_id not in dropped:
            dropped.add(message_id)
            return True
        return False

    return Faults(
        drop_after_dot=drop_once,
        delay_final=lambda m: 0.4 if m.endswith("3@outbox.test>") else 0.0,
        max_recipients=3,
        greeting_421_every=9,
    )


@pytest.mark.timeout(400)
@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_chaos(database: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    postgres: PostgresServer | None = None
    if database == "postgresql":
        postgres = request.getfixturevalue("postgres")
        url = postgres.database("chaos")
    else:
        url = f"sqlite:///{tmp_path}/chaos.sqlite3"
    rng = random.Random(20261203)
    figures = Figures(database)
    started = time.monotonic()
    with ScriptedRelay(chaos_faults()) as relay:
        chaos = Chaos(url, relay, figures, tmp_path)
        try:
            # A: a crash at each step of a delivery (one worker, alone, so it gets there).
            with Outbox(url) as outbox:
                outbox.put_many([item(i) for i in range(60)])
            for step in STEPS:
                proc = chaos.start(stop_at=f"{step}:2", concurrency=1)
                proc.wait_stopped()
                chaos.kill(proc)
            # B: a worker stopped past its lease in the middle of a transaction, then resumed:
            # its entry was reaped meanwhile, so its commit-point mark is refused (fenced).
            stopped = chaos.start(stop_at="before_mark:2", concurrency=1)
            stopped.wait_stopped()
            figures.stops += 1
            base = [chaos.start() for _ in range(2)]
            time.sleep(LEASE * 2.5)
            stopped.signal(signal.SIGCONT)
            # C: the flow, with everything else going wrong.
            with Outbox(url) as outbox:
                outbox.put_many([item(i) for i in range(60, 200)])
            base.append(chaos.start())
            put_with_a_killed_putter(url, range(200, 300), rng.randrange(1 << 30))
            figures.kills += 1
            for _ in range(3):
                time.sleep(rng.uniform(0.2, 0.7))
                victim = rng.choice([p for p in base if p.popen.poll() is None])
                chaos.kill(victim)
                base.append(chaos.start())
            relay.restart(down=0.3)
            figures.restarts["relay"] = 1
            if postgres is not None:
                time.sleep(0.3)
                postgres.restart("immediate")
                figures.restarts["postgresql"] = 1
            settle(url, 300, tmp_path)
        finally:
            chaos.end()
        figures.seconds = round(time.monotonic() - started, 1)
        check(url, relay, 300, figures)
    report(figures)


def test_sigstop_after_the_mark_counts_the_duplicate(tmp_path: Path) -> None:
    """Stopped between its commit-point mark and the final ".", past its lease: the entry is
    reaped as uncertain and sent again by another worker; resumed, the first worker sends
    its "." (a real duplicate, counted), and its result is refused by the fence."""
    url = f"sqlite:///{tmp_path}/stop.sqlite3"
    with ScriptedRelay() as relay:
        chaos = Chaos(url, relay, Figures("sqlite"), tmp_path)
        try:
            with Outbox(url) as outbox:
                outbox.put_many([item(i) for i in range(1, 6)])
            stopped = chaos.start(stop_at="after_mark:1", concurrency=1, rate=False)
            stopped.wait_stopped()
            other = chaos.start(concurrency=1, rate=False)
            settle(url, 5)
            stopped.signal(signal.SIGCONT)
            deadline = time.monotonic() + STEP_BOUND
            while sum(relay.received().values()) < sum(len(recipients(i)) for i in range(1, 6)) + 1:
                assert time.monotonic() < deadline, "the resumed worker did not send its '.'"
                time.sleep(0.05)
            counts = stopped.end()
            other.end()
        finally:
            chaos.end()
        # Its whole batch was taken over meanwhile: every one of its results is refused.
        assert counts is not None and counts["lease_lost"] >= 1
        received = relay.received()
        with Outbox(url) as outbox:
            entries = [outbox.get(e.id) for e in outbox.list()]
        twice = [key for key, n in received.items() if n == 2]
        assert len(twice) == 1 and set(received.values()) == {1, 2}
        by_key = {(e.message_id, r.address): r for e in entries for r in e.recipients}
        assert by_key[twice[0]].uncertain == 1  # the duplicate is accounted for
        assert all(e.state is State.SENT for e in entries)
        duplicated = next(e for e in entries if e.message_id == twice[0][0])
        assert [a.outcome for a in duplicated.history] == ["uncertain", "delivered"]
        assert duplicated.history[0].phase == "lease"
