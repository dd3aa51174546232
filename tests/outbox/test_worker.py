"""The worker against real databases (both) and a real relay over 127.0.0.1 (the scripted relay).

Every figure is counted at the relay, by Message-ID and recipient.  Durations are seconds
(back-off, lifetime, leases); no test asserts how fast anything was, only that it happened
before a generous bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from postwire.outbox import (
    AsyncOutbox,
    Outbox,
    RecipientState,
    RelayLimits,
    RetryPolicy,
    State,
)
from servers.postgres import PostgresServer
from servers.relay import Faults, ScriptedRelay, max_in_window, max_overlap

FAST = RetryPolicy(min_backoff=0.2, max_backoff=0.5, lifetime=30, jitter=0.1)
#: Generous bounds for waits: a loaded 2-core CI machine is slow, never this slow.
BOUND = 30.0


def message(i: int, *, subject: str = "test") -> bytes:
    head = f"Subject: {subject} {i}\r\nMessage-ID: <{subject}-{i}@outbox.test>\r\n"
    return f"{head}\r\nbody {i}\r\n".encode()


@contextlib.contextmanager
def worker(url: str, relay: str, **options: Any) -> Iterator[dict[str, Any]]:
    """A worker in a thread until the block ends; yields a dict that gets its stats."""
    stop = threading.Event()
    result: dict[str, Any] = {}
    options.setdefault("policy", FAST)
    options.setdefault("lease", 5.0)
    options.setdefault("poll_interval", 0.2)

    def run() -> None:
        with Outbox(url) as outbox:
            result.update(outbox.work(relay=relay, stop=stop, **options))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield result
    finally:
        stop.set()
        thread.join(BOUND)
        assert not thread.is_alive(), "the worker did not stop"


def wait_for(predicate: Any, timeout: float = BOUND, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.05)


def settled(outbox: Outbox, n: int) -> bool:
    counts = outbox.counts()
    return sum(counts[s] for s in (State.SENT, State.BOUNCED, State.EXPIRED)) >= n


def test_delivers_every_recipient_exactly_once(outbox_url: str, relay: ScriptedRelay) -> None:
    items = [
        (message(i), "s@outbox.test", [f"r{i}@x.test", f"cc{i}@x.test"][: 1 + i % 2])
        for i in range(40)
    ]
    with Outbox(outbox_url) as outbox:
        entries = outbox.put_many(items)
        stats = outbox.work(relay=relay.url, until_empty=True, policy=FAST, lease=5)
        assert stats["delivered"] == 60
        assert outbox.counts()[State.SENT] == 40
        received = relay.received()
        assert len(received) == 60 and set(received.values()) == {1}
        entry = outbox.get(entries[1].id)
        assert [r.state for r in entry.recipients] == [RecipientState.DELIVERED] * 2
        assert entry.recipients[0].reply is not None and entry.recipients[0].reply.code == 250
        (attempt,) = entry.history
        assert attempt.outcome == "delivered" and attempt.relay == f"127.0.0.1:{relay.port}"
        assert attempt.phase == "end of data" and attempt.worker


def test_each_recipient_has_its_own_fate(outbox_url: str, relay: ScriptedRelay) -> None:
    policy = RetryPolicy(min_backoff=0.2, max_backoff=0.3, lifetime=1.5, jitter=0.0)
    with Outbox(outbox_url) as outbox:
        entry = outbox.put(
            message(1),
            sender="s@outbox.test",
            recipients=["ok@x.test", "bounce@x.test", "defer@x.test"],
        )
        with worker(outbox_url, relay.url, policy=policy):
            wait_for(lambda: outbox.get(entry.id).state is State.EXPIRED, what="expiry")
        found = outbox.get(entry.id)
        states = [r.state for r in found.recipients]
        assert states == [RecipientState.DELIVERED, RecipientState.BOUNCED, RecipientState.EXPIRED]
        assert found.recipients[1].reply is not None and found.recipients[1].reply.code == 550
        assert "expired after 1.5 s" in found.recipients[2].error
        # The deferred recipient was tried several times, the others once.
        assert relay.received() == {("<test-1@outbox.test>", "ok@x.test"): 1}
        assert len(found.history) >= 3
        assert found.history[0].outcome == "partial"


def test_too_many_recipients_splits_and_the_limit_is_learned(
    outbox_url: str,
) -> None:
    with ScriptedRelay(Faults(max_recipients=3)) as relay, Outbox(outbox_url) as outbox:
        rcpts = [f"r{i}@x.test" for i in range(8)]
        entry = outbox.put(message(1), sender="s@outbox.test", recipients=rcpts)
        outbox.work(relay=relay.url, until_empty=True, policy=FAST, lease=5)
        assert outbox.get(entry.id).state is State.SENT
        received = relay.received()
        assert sorted(r for _, r in received) == sorted(rcpts) and set(received.values()) == {1}
        # 3 + (learned: 3) + 2: three transactions, no back-off between them.
        assert len({d.at for d in relay.deliveries}) == 3
        (status,) = outbox.relays()
        assert status.recipient_limit == 3


def test_recipients_are_pre_split_to_the_cap(outbox_url: str, relay: ScriptedRelay) -> None:
    policy = RetryPolicy(min_backoff=0.2, max_backoff=0.5, max_recipients=2)
    with Outbox(outbox_url) as outbox:
        entry = outbox.put(
            message(1), sender="s@outbox.test", recipients=[f"r{i}@x.test" for i in range(5)]
        )
        outbox.work(relay=relay.url, until_empty=True, policy=policy, lease=5)
        assert outbox.get(entry.id).state is State.SENT
        assert len(relay.received()) == 5
        assert len({d.at for d in relay.deliveries}) == 3  # 2 + 2 + 1


def test_a_drop_after_the_dot_is_uncertain_and_resent_counted(
    outbox_url: str,
) -> None:
    dropped: set[str] = set()

    def drop_once(message_id: str) -> bool:
        if message_id.startswith("<lost-") and message_id not in dropped:
            dropped.add(message_id)
            return True
        return False

    with ScriptedRelay(Faults(drop_after_dot=drop_once)) as relay, Outbox(outbox_url) as outbox:
        items = [
            (message(i, subject="lost" if i % 3 == 0 else "ok"), "s@outbox.test", [f"r{i}@x.test"])
            for i in range(12)
        ]
        entries = outbox.put_many(items)
        # The message pipelined behind a lost one was started, not finished: deferred.
        with worker(outbox_url, relay.url):
            wait_for(lambda: settled(outbox, 12), what="every message delivered")
        assert outbox.counts()[State.SENT] == 12
        received = relay.received()
        duplicates = sum(n - 1 for n in received.values())
        uncertain = sum(outbox.get(e.id).uncertain for e in entries)
        assert len(received) == 12 and duplicates == 4
        assert uncertain == 4 and duplicates <= uncertain
        lost = outbox.get(entries[0].id)
        assert lost.recipients[0].uncertain == 1 and lost.history[0].outcome == "uncertain"
        assert lost.history[0].phase == "end of data"


def test_the_hold_policy_waits_for_an_operator(outbox_url: str) -> None:
    with (
        ScriptedRelay(Faults(drop_after_dot=lambda m: m.startswith("<lost-"))) as relay,
        Outbox(outbox_url) as outbox,
    ):
        entry = outbox.put(
            message(1, subject="lost"), sender="s@outbox.test", recipients=["r@x.test"]
        )
        hold = RetryPolicy(min_backoff=0.2, max_backoff=0.5, uncertain="hold")
        outbox.work(relay=relay.url, until_empty=True, policy=hold, lease=5)
        held = outbox.get(entry.id)
        assert held.state is State.UNCERTAIN and held.next_attempt_at is None
        assert relay.received() == {("<lost-1@outbox.test>", "r@x.test"): 1}
        relay.faults.drop_after_dot = lambda _: False
        assert outbox.release(entry.id).state is State.UNCERTAIN  # ready again, still in doubt
        outbox.work(relay=relay.url, until_empty=True, policy=hold, lease=5)
        done = outbox.get(entry.id)
        assert done.state is State.SENT and done.uncertain == 1
        assert relay.received() == {("<lost-1@outbox.test>", "r@x.test"): 2}


def test_a_relay_that_refuses_to_talk_defers_and_goes_dead(outbox_url: str) -> None:
    limits = RelayLimits(max_connections=3, initial=1, dead_time=60)
    with ScriptedRelay(Faults(greeting_421=1000)) as relay, Outbox(outbox_url) as outbox:
        entries = outbox.put_many([(message(i), "s@outbox.test", ["r@x.test"]) for i in range(5)])
        outbox.work(relay=relay.url, until_empty=True, policy=FAST, limits=limits, lease=5)
        states = {outbox.get(e.id).state for e in entries}
        # One connection tried: its batch is deferred; the relay is dead, so the rest wait.
        assert states <= {State.DEFERRED, State.QUEUED} and State.DEFERRED in states
        assert relay.greeted == 1
        (status,) = outbox.relays()
        assert status.dead_until is not None and status.window == 1
        deferred = next(
            outbox.get(e.id) for e in entries if outbox.get(e.id).state is State.DEFERRED
        )
        assert deferred.last_reply is not None and deferred.last_reply.code == 421
        assert deferred.history[0].phase == "greeting"


def test_a_put_wakes_an_idle_worker(outbox_url: str, relay: ScriptedRelay) -> None:
    # Polling every 60 s: only the wake-up (NOTIFY, or the SQLite socket) can be this quick.
    with Outbox(outbox_url) as outbox, worker(outbox_url, relay.url, poll_interval=60):
        time.sleep(1.0)  # the worker is idle, waiting
        for i in range(3):
            outbox.put(message(i), sender="s@outbox.test", recipients=["r@x.test"])
            wait_for(lambda i=i: len(relay.deliveries) > i, timeout=15, what="wake-up")


def test_listen_again_after_postgresql_restarts(
    postgres: PostgresServer, relay: ScriptedRelay
) -> None:
    url = postgres.database()
    with Outbox(url) as outbox, worker(url, relay.url, poll_interval=60):
        outbox.put(message(1), sender="s@outbox.test", recipients=["r@x.test"])
        wait_for(lambda: len(relay.deliveries) == 1, timeout=15, what="first delivery")
        postgres.restart("immediate")
        time.sleep(1.0)  # every connection was cut; the listener connects again
        for _ in range(20):
            try:
                outbox.put(message(2), sender="s@outbox.test", recipients=["r@x.test"])
                break
            except Exception:
                time.sleep(0.25)
        wait_for(lambda: len(relay.deliveries) == 2, timeout=15, what="wake-up after restart")


def test_metrics_in_prometheus_text_format(outbox_url: str, relay: ScriptedRelay) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    with Outbox(outbox_url) as outbox:
        outbox.put_many(
            [(message(i), "s@outbox.test", ["r@x.test", "bounce@x.test"]) for i in range(3)]
        )
        from postwire.outbox.worker import Worker

        w = Worker(
            outbox_url, relay=relay.url, policy=FAST, lease=5, metrics_port=0, poll_interval=0.2
        )
        thread = threading.Thread(target=w.run, daemon=True)
        thread.start()
        try:
            wait_for(lambda: settled(outbox, 3), what="delivery")
            wait_for(lambda: w.metrics_address is not None)
            with urllib.request.urlopen(
                f"http://127.0.0.1:{w.metrics_address}/metrics", timeout=10
            ) as response:
                text = response.read().decode()
        finally:
            w.stop()
            thread.join(BOUND)
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("postwire_outbox_deliveries_total", ())] == 3
    assert samples[("postwire_outbox_bounces_total", ())] == 3
    assert samples[("postwire_outbox_entries", (("state", "sent"),))] == 3
    assert samples[("postwire_outbox_entries", (("state", "queued"),))] == 0
    assert ("postwire_outbox_oldest_queued_age_seconds", ()) in samples
    assert samples[("postwire_outbox_relay_window", (("relay", f"127.0.0.1:{relay.port}"),))] >= 1


def test_routes_name_config_file_accounts(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/outbox.sqlite3"
    with ScriptedRelay() as first, ScriptedRelay() as second, Outbox(url) as outbox:
        config = tmp_path / "config.toml"
        config.write_text(
            'default = "main"\n[defaults]\ntls = "none"\n'
            f'[accounts.main]\nserver = "127.0.0.1:{first.port}"\n'
            f'[accounts.bulk]\nserver = "127.0.0.1:{second.port}"\n'
        )
        outbox.put(message(1), sender="s@outbox.test", recipients=["a@x.test"])
        outbox.put(message(2), sender="s@outbox.test", recipients=["b@x.test"], route="bulk")
        lost = outbox.put(message(3), sender="s@outbox.test", recipients=["c@x.test"], route="nope")
        stop = threading.Event()
        thread = threading.Thread(
            target=lambda: Outbox(url).work(
                config=str(config), policy=FAST, lease=5, stop=stop, poll_interval=0.2
            ),
            daemon=True,
        )
        thread.start()
        try:
            wait_for(lambda: settled(outbox, 2), what="delivery through both accounts")
        finally:
            stop.set()
            thread.join(BOUND)
        assert list(first.received()) == [("<test-1@outbox.test>", "a@x.test")]
        assert list(second.received()) == [("<test-2@outbox.test>", "b@x.test")]
        # An unknown account leaves its entries waiting, visible, not lost.
        assert outbox.get(lost.id).state is State.QUEUED


def test_default_relay_options_replace_the_default_account(tmp_path: Path) -> None:
    # What the Django command passes: the project's settings as client options for the
    # entries without a route; a named route is still a config-file account.
    url = f"sqlite:///{tmp_path}/outbox.sqlite3"
    with ScriptedRelay() as default, ScriptedRelay() as bulk, Outbox(url) as outbox:
        config = tmp_path / "config.toml"
        config.write_text(
            'default = "bulk"\n[defaults]\ntls = "none"\n'
            f'[accounts.bulk]\nserver = "127.0.0.1:{bulk.port}"\n'
        )
        outbox.put(message(1), sender="s@outbox.test", recipients=["a@x.test"])
        outbox.put(message(2), sender="s@outbox.test", recipients=["b@x.test"], route="bulk")
        stats = outbox.work(
            config=str(config),
            default_relay={"host": "127.0.0.1", "port": default.port, "tls": "none"},
            policy=FAST,
            lease=5,
            poll_interval=0.2,
            until_empty=True,
        )
        assert stats["delivered"] == 2
        assert list(default.received()) == [("<test-1@outbox.test>", "a@x.test")]
        assert list(bulk.received()) == [("<test-2@outbox.test>", "b@x.test")]


def test_priority_and_not_before(outbox_url: str, relay: ScriptedRelay) -> None:
    with Outbox(outbox_url) as outbox:
        later = outbox.put(
            message(0), sender="s@outbox.test", recipients=["r@x.test"], not_before=time.time() + 2
        )
        for i in range(1, 4):
            outbox.put(message(i), sender="s@outbox.test", recipients=["r@x.test"], priority=i)
        outbox.work(relay=relay.url, until_empty=True, concurrency=1, batch=1, policy=FAST)
        order = [d.message_id for d in relay.deliveries]
        assert order == ["<test-3@outbox.test>", "<test-2@outbox.test>", "<test-1@outbox.test>"]
        assert outbox.get(later.id).state is State.QUEUED
        time.sleep(2.1)
        outbox.work(relay=relay.url, until_empty=True, policy=FAST)
        assert relay.deliveries[-1].message_id == "<test-0@outbox.test>"


def test_limits_hold_across_workers(outbox_url: str, relay: ScriptedRelay) -> None:
    limits = RelayLimits(max_connections=2, initial=2, rate=15, guard=0.1)
    with Outbox(outbox_url) as outbox:
        outbox.put_many([(message(i), "s@outbox.test", ["r@x.test"]) for i in range(45)])
        with (
            worker(outbox_url, relay.url, limits=limits, concurrency=3, batch=4),
            worker(outbox_url, relay.url, limits=limits, concurrency=3, batch=4),
        ):
            wait_for(lambda: settled(outbox, 45), what="delivery")
    assert len(relay.received()) == 45
    assert max_overlap([(s.first, s.last) for s in relay.spans]) <= 2
    assert max_in_window([d.at for d in relay.deliveries]) <= 15


async def test_async_outbox_never_blocks_the_loop(tmp_path: Path, relay: ScriptedRelay) -> None:
    url = f"sqlite:///{tmp_path}/outbox.sqlite3"
    async with AsyncOutbox(url) as outbox:
        first = await outbox.put(message(0), sender="s@outbox.test", recipients=["r@x.test"])
        # Hold SQLite's write lock from elsewhere: the put waits for it, the loop does not.
        blocker = Outbox(url)
        blocker._storage.execute("BEGIN IMMEDIATE")
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        task = asyncio.create_task(ticker())
        put = asyncio.create_task(
            outbox.put(message(1), sender="s@outbox.test", recipients=["r@x.test"])
        )
        await asyncio.sleep(0.5)
        assert not put.done() and ticks > 0
        blocker._storage.execute("COMMIT")
        second = await put
        task.cancel()
        blocker.close()

        async def chunks() -> Any:
            yield b"Subject: streamed\r\n\r\n"
            yield b"body\r\n"

        third = await outbox.put(chunks(), sender="s@outbox.test", recipients=["r@x.test"])
        assert (await outbox.message(third.id)).endswith(b"Subject: streamed\r\n\r\nbody\r\n")
        assert (await outbox.counts())[State.QUEUED] == 3
        stats = await outbox.work(relay=relay.url, until_empty=True, policy=FAST)
        assert stats["delivered"] == 3
        assert (await outbox.get(second.id)).state is State.SENT
        assert [e.id for e in await outbox.list(State.SENT)] == [third.id, second.id, first.id]
        # A worker task that is cancelled stops cleanly.
        work = asyncio.create_task(outbox.work(relay=relay.url, policy=FAST, poll_interval=0.1))
        await asyncio.sleep(0.3)
        work.cancel()
        with pytest.raises(asyncio.CancelledError):
            await work
