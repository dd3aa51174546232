"""The storage backends against the real databases: SQLite files (WAL, synchronous=FULL) and a
private PostgreSQL 15.  Every test runs on both (the ``outbox_url`` fixture).

What is checked: puts are idempotent by key; claims never hand one entry to two workers;
every write by a worker is fenced by its lease (token, owner, time, slot); the reaper
turns an expired lease into queued (no final "." marked) or uncertain (marked); the late
result of the attempt left uncertain is still written; slots count live leases; the rate
counts stamps; operator actions and purge.
"""

from __future__ import annotations

import threading
import time

import pytest

from postwire import errors
from postwire._core.envelope import SendResult
from postwire._core.reply import Reply
from postwire.outbox import Outbox, RelayLimits, RetryPolicy, State
from postwire.outbox.policy import decide
from postwire.outbox.states import RecipientState
from postwire.outbox.storage import FinishItem, MarkItem, open_storage

RELAY = "relay.test:25"
OWNER = "w1"
MSG = b"Subject: test\r\n\r\nhello\r\n"


def put(url: str, n: int = 1, recipients: tuple[str, ...] = ("a@x.test",)) -> list[int]:
    with Outbox(url) as outbox:
        entries = outbox.put_many(
            [
                (MSG.replace(b"test", f"test {i}".encode()), "s@x.test", list(recipients))
                for i in range(n)
            ]
        )
    return [e.id for e in entries]


def slot(storage: object, holder: str = "w1/1", owner: str = OWNER, lease: float = 30) -> None:
    storage.set_limits(RELAY, RelayLimits())  # type: ignore[attr-defined]
    assert storage.acquire_slot(RELAY, holder, owner, lease)  # type: ignore[attr-defined]


def delivered(claimed: object) -> FinishItem:
    decision = decide(
        RetryPolicy(),
        open_recipients=claimed.open,  # type: ignore[attr-defined]
        sent=claimed.open,  # type: ignore[attr-defined]
        closed=claimed.closed,  # type: ignore[attr-defined]
        outcome=SendResult([r.address for r in claimed.open], {}, Reply(250, ("ok",))),  # type: ignore[attr-defined]
        lifetime_from=claimed.lifetime_from,  # type: ignore[attr-defined]
        now=time.time(),
    )
    return FinishItem(claimed.id, claimed.token, decision, OWNER, RELAY, time.time(), "")  # type: ignore[attr-defined]


def test_put_is_idempotent_by_key(outbox_url: str) -> None:
    with Outbox(outbox_url) as outbox:
        first = outbox.put(MSG, sender="s@x.test", recipients=["a@x.test", "b@x.test", "a@x.test"])
        assert first.state is State.QUEUED and first.message_id and first.key == first.message_id
        assert [r.address for r in first.recipients] == ["a@x.test", "b@x.test"]
        again = outbox.put(MSG, sender="s@x.test", recipients=["c@x.test"], key=first.key)
        assert again.id == first.id and [r.address for r in again.recipients] == [
            "a@x.test",
            "b@x.test",
        ]
        stored = outbox.message(first.id)
        assert stored.endswith(MSG) and f"Message-ID: {first.message_id}".encode() in stored
        assert b"\r\nDate: " in b"\r\n" + stored
    # Another process, another connection: the key still finds the entry.
    with Outbox(outbox_url) as other:
        same = other.put(stored, sender="s@x.test", recipients=["a@x.test"])
        assert same.id == first.id
        many = other.put_many(
            [(stored, "s@x.test", ["a@x.test"]), (MSG, "s@x.test", ["z@x.test"])] * 2
        )
        assert many[0].id == many[2].id == first.id
        # Without a Message-ID each copy gets its own, so each is a new entry.
        assert len({many[1].id, many[3].id, first.id}) == 3
        assert other.counts()[State.QUEUED] == 3


def test_claims_never_overlap(outbox_url: str) -> None:
    put(outbox_url, 120)
    taken: list[list[int]] = []
    lock = threading.Lock()

    def claimer(n: int) -> None:
        storage = open_storage(outbox_url, create=False)
        try:
            while claimed := storage.claim(None, f"w{n}", 30, 7):
                with lock:
                    taken.append([c.id for c in claimed])
        finally:
            storage.close()

    threads = [threading.Thread(target=claimer, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    ids = [i for chunk in taken for i in chunk]
    assert len(ids) == 120 and len(set(ids)) == 120
    with Outbox(outbox_url) as outbox:
        assert outbox.counts()[State.SENDING] == 120


def test_every_write_is_fenced_by_the_lease(outbox_url: str) -> None:
    put(outbox_url, 2)
    storage = open_storage(outbox_url)
    try:
        slot(storage)
        first, second = storage.claim(None, OWNER, 30, 10)
        item = MarkItem(first.id, first.token, (0,), RELAY, "w1/1")
        assert storage.mark([MarkItem(first.id, first.token + 1, (0,), RELAY, "w1/1")], OWNER)[
            0
        ].lost
        assert storage.mark([item], "someone else")[0].lost
        assert storage.mark([MarkItem(first.id, first.token, (0,), RELAY, "w1/2")], OWNER)[0].lost
        assert storage.mark([item], OWNER)[0].ok
        assert storage.finish([delivered(first)], "someone else") == [False]
        assert storage.finish([delivered(first)], OWNER) == [True]
        assert storage.get(first.id).state is State.SENT
        # Once finished, the same attempt cannot write again.
        assert storage.finish([delivered(first)], OWNER) == [False]
        assert storage.get(second.id).state is State.SENDING
    finally:
        storage.close()


def test_reaper_returns_unmarked_to_queued_and_marked_to_uncertain(outbox_url: str) -> None:
    put(outbox_url, 2, recipients=("a@x.test", "b@x.test"))
    storage = open_storage(outbox_url)
    try:
        slot(storage)
        unmarked, marked = storage.claim(None, OWNER, 0.3, 10)
        assert storage.mark([MarkItem(marked.id, marked.token, (0, 1), RELAY, "w1/1")], OWNER)[0].ok
        assert storage.reap(resend=True) == 0  # leases still live
        time.sleep(0.4)
        # An expired lease is not brought back by a heartbeat, and marks no longer pass.
        storage.heartbeat(OWNER, 30, [unmarked.id, marked.id], ["w1/1"])
        assert storage.mark([MarkItem(unmarked.id, unmarked.token, (0,), RELAY, "w1/1")], OWNER)[
            0
        ].lost
        assert storage.reap(resend=True) == 2
        queued = storage.get(unmarked.id)
        assert queued.state is State.QUEUED and queued.uncertain == 0
        assert queued.history[-1].outcome == "released" and queued.history[-1].phase == "lease"
        uncertain = storage.get(marked.id)
        assert uncertain.state is State.UNCERTAIN and uncertain.uncertain == 1
        assert [r.state for r in uncertain.recipients] == [RecipientState.UNCERTAIN] * 2
        assert [r.uncertain for r in uncertain.recipients] == [1, 1]
        assert uncertain.history[-1].outcome == "uncertain"
        # Resend: both can be claimed again at once, with a new token.
        again = storage.claim(None, "w2", 30, 10)
        assert sorted(c.id for c in again) == sorted([unmarked.id, marked.id])
        assert all(c.token == 2 for c in again)
    finally:
        storage.close()


def test_the_late_result_of_an_uncertain_attempt_is_written(outbox_url: str) -> None:
    put(outbox_url, 1)
    storage = open_storage(outbox_url)
    try:
        slot(storage)
        (claimed,) = storage.claim(None, OWNER, 0.2, 10)
        assert storage.mark([MarkItem(claimed.id, claimed.token, (0,), RELAY, "w1/1")], OWNER)[0].ok
        time.sleep(0.3)
        assert storage.reap(resend=False) == 1
        held = storage.get(claimed.id)
        assert held.state is State.UNCERTAIN and held.next_attempt_at is None  # hold policy
        # The relay's reply came after all: the worker writes it, and it stands.
        assert storage.finish([delivered(claimed)], OWNER) == [True]
        entry = storage.get(claimed.id)
        assert entry.state is State.SENT
        assert entry.history[-1].outcome == "delivered"  # replaces the reaper's record
        assert len(entry.history) == 1
    finally:
        storage.close()


def test_a_stale_result_after_another_claim_is_refused(outbox_url: str) -> None:
    put(outbox_url, 1)
    storage = open_storage(outbox_url)
    try:
        slot(storage)
        (old,) = storage.claim(None, OWNER, 0.2, 10)
        time.sleep(0.3)
        assert storage.reap(resend=True) == 1
        (new,) = storage.claim(None, "w2", 30, 10)
        assert new.token == old.token + 1
        assert storage.finish([delivered(old)], OWNER) == [False]
        assert storage.get(old.id).state is State.SENDING
        assert storage.get(old.id).lease_owner == "w2"
    finally:
        storage.close()


def test_heartbeat_extends_only_what_the_worker_still_holds(outbox_url: str) -> None:
    put(outbox_url, 2)
    storage = open_storage(outbox_url)
    try:
        slot(storage, "w1/1", lease=0.5)
        slot(storage, "w1/2", lease=0.1)
        slot(storage, "w1/3", lease=0.5)
        kept, forgotten = storage.claim(None, OWNER, 0.5, 10)
        time.sleep(0.2)
        # w1/2 ran out: gone for good; w1/3 and `forgotten` belong to a thread that died.
        assert storage.heartbeat(OWNER, 30, [kept.id], ["w1/1", "w1/2"]) == {"w1/1"}
        time.sleep(0.4)
        assert storage.reap(resend=True) == 1
        assert storage.get(kept.id).state is State.SENDING
        assert storage.get(forgotten.id).state is State.QUEUED
        storage.set_limits(RELAY, RelayLimits(max_connections=2, initial=2))
        assert storage.acquire_slot(RELAY, "w2/1", "w2", 30)  # w1/3's slot healed
    finally:
        storage.close()


def test_slots_follow_the_window_and_heal_after_a_crash(outbox_url: str) -> None:
    storage = open_storage(outbox_url)
    try:
        storage.set_limits(RELAY, RelayLimits(max_connections=3, initial=2, dead_time=0.3))
        assert storage.acquire_slot(RELAY, "a/1", "a", 0.3)
        assert storage.acquire_slot(RELAY, "b/1", "b", 30)
        assert not storage.acquire_slot(RELAY, "c/1", "c", 30)  # window of 2
        storage.relay_feedback(RELAY, ok=True)
        assert storage.acquire_slot(RELAY, "c/1", "c", 30)  # grown to 3 = max
        storage.relay_feedback(RELAY, ok=True)
        assert not storage.acquire_slot(RELAY, "d/1", "d", 30)
        time.sleep(0.35)  # "a" crashed: its slot's lease ran out
        assert storage.acquire_slot(RELAY, "d/1", "d", 30)
        (status,) = storage.relays()
        assert (status.window, status.connections, status.max_connections) == (3, 3, 3)
        for holder in ("b/1", "c/1", "d/1"):
            storage.release_slot(RELAY, holder)
        for _ in range(3):
            storage.relay_feedback(RELAY, ok=False)
        # The window shrank to one, and one more failure there made the relay dead.
        (status,) = storage.relays()
        assert status.window == 1 and status.dead_until is not None
        assert not storage.acquire_slot(RELAY, "e/1", "e", 30)
        time.sleep(0.35)
        assert storage.acquire_slot(RELAY, "e/1", "e", 30)
        storage.relay_feedback(RELAY, ok=True, learned_limit=7)
        assert storage.recipient_limit(RELAY) == 7
    finally:
        storage.close()


def test_rate_stamps_limit_marks(outbox_url: str) -> None:
    put(outbox_url, 5)
    storage = open_storage(outbox_url)
    try:
        storage.set_limits(RELAY, RelayLimits(rate=3, guard=0.1))
        assert storage.acquire_slot(RELAY, "w1/1", OWNER, 30)
        claimed = storage.claim(None, OWNER, 30, 10)
        results = storage.mark(
            [MarkItem(c.id, c.token, (0,), RELAY, "w1/1") for c in claimed], OWNER
        )
        assert [r.ok for r in results] == [True, True, True, False, False]
        assert 0 < results[3].wait <= 1.1 and not results[3].lost
        # A refused mark took no room; room comes back as the stamps leave the window.
        time.sleep(results[3].wait + 0.05)
        late = storage.mark(
            [MarkItem(c.id, c.token, (0,), RELAY, "w1/1") for c in claimed[3:]], OWNER
        )
        assert [r.ok for r in late] == [True, True]
    finally:
        storage.close()


def test_operator_actions(outbox_url: str) -> None:
    (entry_id,) = put(outbox_url, 1, recipients=("a@x.test", "b@x.test"))
    with Outbox(outbox_url) as outbox:
        assert outbox.hold(entry_id).state is State.HELD
        assert outbox.hold(entry_id) if False else True
        with pytest.raises(errors.StateConflict):
            outbox.hold(entry_id)
        assert outbox.release(entry_id).state is State.QUEUED
        storage = open_storage(outbox_url)
        try:
            slot(storage)
            (claimed,) = storage.claim(None, OWNER, 30, 10)
            with pytest.raises(errors.StateConflict, match=r"being|delivering"):
                outbox.cancel(entry_id)
            bounced = decide(
                RetryPolicy(),
                open_recipients=claimed.open,
                sent=claimed.open,
                closed=(),
                outcome=errors.RecipientsRefused(
                    {r.address: Reply(550, ("5.1.1 no",)) for r in claimed.open}
                ),
                lifetime_from=claimed.lifetime_from,
                now=time.time(),
            )
            item = FinishItem(claimed.id, claimed.token, bounced, OWNER, RELAY, time.time(), "RCPT")
            assert storage.finish([item], OWNER) == [True]
        finally:
            storage.close()
        entry = outbox.get(entry_id)
        assert entry.state is State.BOUNCED
        assert [r.reply.code for r in entry.recipients if r.reply] == [550, 550]
        retried = outbox.retry(entry_id)
        assert retried.state is State.QUEUED
        assert [r.state for r in retried.recipients] == [RecipientState.PENDING] * 2
        assert outbox.cancel(entry_id).state is State.CANCELLED
        with pytest.raises(errors.EntryNotFound):
            outbox.get(10**9)
        with pytest.raises(errors.StateConflict, match="release applies to held, uncertain"):
            outbox.release(entry_id)


def test_purge_removes_only_old_final_entries_and_frees_their_keys(outbox_url: str) -> None:
    ids = put(outbox_url, 3)
    with Outbox(outbox_url) as outbox:
        outbox.cancel(ids[0])
        outbox.cancel(ids[1])
        key = outbox.get(ids[0]).key
        assert outbox.purge(3600) == 0  # not old enough
        time.sleep(0.05)
        assert outbox.purge(0.01) == 2
        with pytest.raises(errors.EntryNotFound):
            outbox.get(ids[0])
        assert outbox.get(ids[2]).state is State.QUEUED
        content = b"Message-ID: " + key.encode() + b"\r\n" + MSG
        again = outbox.put(content, sender="s@x.test", recipients=["a@x.test"])
        assert again.id not in ids and again.key == key
        with pytest.raises(ValueError):
            outbox.purge(0, states=[State.QUEUED])
