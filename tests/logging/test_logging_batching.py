"""The handler's decisions on values, without threads, sockets or sleeping.

The record queue and its drop policy, the rate window and back-off, when a batch is due and
what it holds, the subject and body of a message.  The clock is a number passed in.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postwire.logging import BatchSettings
from postwire.logging.batching import Batch, Batcher
from postwire.logging.compose import body_text, build_message, subject_line
from postwire.logging.pacing import Backoff, RateWindow
from postwire.logging.records import Entry, RecordQueue, truncate


def texts(entries: list[Entry] | tuple[Entry, ...]) -> list[str]:
    return [entry.text for entry in entries]


def fill(queue: RecordQueue, count: int, now: float = 0.0) -> None:
    for i in range(count):
        queue.push(f"r{i}", now)


# -- the queue ---------------------------------------------------------------------------------


def test_a_full_queue_drops_the_newest_records_by_default() -> None:
    queue = RecordQueue(3, 1000)
    fill(queue, 5)
    assert texts(queue.pop_batch(10, 1000)) == ["r0", "r1", "r2"]
    assert (queue.unreported, queue.dropped_total) == (2, 2)


def test_drop_oldest_keeps_the_latest_records() -> None:
    queue = RecordQueue(3, 1000, "oldest")
    fill(queue, 5)
    assert texts(queue.pop_batch(10, 1000)) == ["r2", "r3", "r4"]
    assert queue.take_unreported() == 2
    assert queue.take_unreported() == 0  # told once, counted for ever
    assert queue.dropped_total == 2


def test_the_queue_is_bounded_in_characters_and_a_long_record_is_cut() -> None:
    queue = RecordQueue(100, 250, record_chars=100)
    queue.push("x" * 1000, 0.0)
    (entry,) = queue.pop_batch(10, 1000)
    assert len(entry.text) == 100
    assert entry.text.endswith("1000 characters in all]")
    for _ in range(5):
        queue.push("y" * 100, 0.0)
    assert queue.chars <= 250
    assert len(queue) == 2
    assert queue.dropped_total == 3


def test_truncate_keeps_short_text_and_says_how_long_the_long_one_was() -> None:
    assert truncate("short", 10) == "short"
    cut = truncate("a" * 500, 80)
    assert len(cut) == 80 and cut.startswith("aaa") and "500 characters" in cut
    assert truncate("a" * 500, 5) == "aaaaa"  # no room for the marker


def test_records_given_back_go_first_and_the_policy_sheds_the_rest() -> None:
    newest = RecordQueue(4, 1000)
    fill(newest, 6)  # keeps r0..r3
    taken = newest.pop_batch(2, 1000)  # r0, r1 in flight
    newest.push("late1", 1.0)
    newest.push("late2", 1.0)
    newest.give_back(taken)
    # Back in front; over the bound, the newest go.
    assert texts(newest.pop_batch(10, 1000)) == ["r0", "r1", "r2", "r3"]

    oldest = RecordQueue(4, 1000, "oldest")
    fill(oldest, 4)
    taken = oldest.pop_batch(2, 1000)
    oldest.push("late1", 1.0)
    oldest.push("late2", 1.0)
    oldest.give_back(taken)
    assert texts(oldest.pop_batch(10, 1000)) == ["r2", "r3", "late1", "late2"]


def test_pop_batch_respects_both_limits_but_takes_at_least_one() -> None:
    queue = RecordQueue(100, 10_000)
    for size in (30, 30, 30, 500):
        queue.push("z" * size, 0.0)
    assert [len(t) for t in texts(queue.pop_batch(10, 70))] == [30, 30]
    assert [len(t) for t in texts(queue.pop_batch(10, 70))] == [30]
    assert [len(t) for t in texts(queue.pop_batch(10, 70))] == [500]


def test_settled_below_follows_sequence_numbers() -> None:
    queue = RecordQueue(10, 1000)
    fill(queue, 3)
    assert not queue.settled_below(2)
    taken = queue.pop_batch(2, 1000)
    assert queue.settled_below(2) and not queue.settled_below(3)
    queue.give_back(taken)
    assert not queue.settled_below(1)


# -- pacing ------------------------------------------------------------------------------------


@given(
    limit=st.integers(1, 5),
    period=st.floats(0.5, 100),
    starts=st.lists(st.floats(0, 1000), min_size=1, max_size=60),
    durations=st.lists(st.floats(0, 30), min_size=1, max_size=60),
)
def test_the_rate_window_never_lets_more_than_limit_finish_in_any_period(
    limit: int, period: float, starts: list[float], durations: list[float]
) -> None:
    window = RateWindow(limit, period)
    clock = 0.0
    finished: list[float] = []
    for i, wanted in enumerate(sorted(starts)):
        clock = max(clock, wanted)
        clock += window.wait(clock)  # a sender that obeys the window
        assert window.wait(clock) < 1e-9  # (the float sums of the simulated clock round)
        clock += durations[i % len(durations)]
        window.record(clock)
        finished.append(clock)
    # Any limit+1 consecutive sends: the last one started a period after the first finished,
    # so it also finished (and, as the server saw it, arrived) a period later.
    for first, last in zip(finished, finished[limit:], strict=False):
        assert last - first >= period - 1e-9


def test_no_rate_limit_never_waits() -> None:
    window = RateWindow(None, 1.0)
    for t in range(100):
        window.record(float(t) / 1000)
    assert window.wait(0.1) == 0


def test_backoff_doubles_up_to_its_cap_and_a_success_resets_it() -> None:
    backoff = Backoff(5.0, 30.0)
    assert [backoff.failed(0.0) for _ in range(5)] == [5.0, 10.0, 20.0, 30.0, 30.0]
    assert backoff.until == 30.0
    backoff.succeeded()
    assert backoff.failed(100.0) == 5.0 and backoff.until == 105.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_records": 0},
        {"queue_chars": True},
        {"delay": -1},
        {"rate_limit": 0},
        {"rate_period": 0},
        {"drop": "middle"},
        {"retry_delay": -1.0},
    ],
)
def test_settings_are_checked(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        BatchSettings(**kwargs)  # type: ignore[arg-type]


# -- the batcher ------------------------------------------------------------------------------


def batcher(**kwargs: object) -> Batcher:
    settings: dict[str, object] = {"delay": 5.0, "max_records": 3, "rate_limit": None}
    settings.update(kwargs)
    return Batcher(BatchSettings(**settings))  # type: ignore[arg-type]


def test_nothing_queued_is_never_due() -> None:
    assert batcher().due(0.0) is None
    assert batcher().due(0.0, closing=True) is None


def test_a_message_waits_the_delay_after_its_first_record() -> None:
    b = batcher()
    assert b.add("one", 10.0) is True  # the first record wakes the thread
    assert b.add("two", 11.0) is False  # the others do not
    assert b.due(12.0) == pytest.approx(3.0)
    assert b.due(15.0) == 0
    batch = b.take(15.0)
    assert texts(batch.entries) == ["one", "two"] and batch.dropped == 0


def test_a_full_batch_is_due_at_once_by_records_or_by_characters() -> None:
    b = batcher()
    b.add("a", 0.0)
    b.add("b", 0.0)
    assert b.add("c", 0.0) is True  # filled: look again
    assert b.due(0.0) == 0
    c = batcher(max_records=100, max_chars=10)
    c.add("12345", 0.0)
    c.add("67890", 0.0)
    assert c.due(0.0) == 0
    assert len(c.take(0.0).entries) == 2


def test_the_rate_limit_holds_messages_back_and_flush_does_not_lift_it() -> None:
    b = batcher(rate_limit=2, rate_period=60.0, delay=0.0)
    for t in (0.0, 1.0):
        b.add("x", t)
        b.delivered(b.take(t), t + 0.5)
    b.add("held", 2.0)
    assert b.due(2.0) == pytest.approx(58.5)
    assert b.rate_blocked(2.0)
    assert b.due(2.0, flush_upto=b.queue.next_seq) == pytest.approx(58.5)
    assert b.due(60.5) == 0


def test_flush_skips_the_delay_and_the_backoff() -> None:
    b = batcher(retry_delay=100.0)
    b.add("x", 0.0)
    failed = b.take(5.0)
    assert b.failed(failed, 5.0, retry=True) == 100.0
    assert b.due(6.0) == pytest.approx(99.0)  # back-off
    assert b.due(6.0, flush_upto=b.queue.next_seq) == 0
    b.add("later", 7.0)
    assert b.due(7.0, flush_upto=1) == 0  # "x" (seq 0) is older than 1


def test_a_retried_batch_comes_back_first_and_keeps_its_drop_count() -> None:
    b = batcher(queue_records=2)
    for text in ("a", "b", "c"):  # "c" dropped
        b.add(text, 0.0)
    batch = b.take(5.0)
    assert batch.dropped == 1
    b.failed(batch, 5.0, retry=True)
    again = b.take(6.0)
    assert texts(again.entries) == ["a", "b"] and again.dropped == 1


def test_a_batch_that_failed_for_good_is_dropped_and_told_next_time() -> None:
    b = batcher()
    b.add("lost", 0.0)
    b.failed(b.take(5.0), 5.0, retry=False)
    b.add("next", 6.0)
    batch = b.take(11.0)
    assert texts(batch.entries) == ["next"] and batch.dropped == 1
    assert b.queue.dropped_total == 1


def test_closing_sends_at_once_and_past_the_rate_limit_only_one_last_message() -> None:
    b = batcher(rate_limit=1, rate_period=3600.0, max_records=2)
    b.add("first", 0.0)
    b.delivered(b.take(5.0), 5.0)
    for text in ("a", "b", "c", "d"):
        b.add(text, 6.0)
    assert b.due(6.0) == pytest.approx(3599.0)
    assert b.due(6.0, closing=True) == 0
    last = b.take(6.0, closing=True)
    assert last.final and texts(last.entries) == ["a", "b"] and last.dropped == 2
    assert b.due(6.0, closing=True) is None


def test_closing_within_the_rate_limit_sends_everything() -> None:
    b = batcher(max_records=2)
    for text in ("a", "b", "c"):
        b.add(text, 0.0)
    first = b.take(0.0, closing=True)
    assert not first.final and texts(first.entries) == ["a", "b"]
    b.delivered(first, 0.1)
    assert texts(b.take(0.1, closing=True).entries) == ["c"]


# -- the message -------------------------------------------------------------------------------


def test_the_subject_counts_records_and_drops() -> None:
    assert subject_line("app errors", 1, 0) == "app errors (1 record)"
    assert subject_line("app errors", 20, 3) == "app errors (20 records, 3 dropped)"


def test_the_body_lists_the_records_after_a_note_on_the_dropped_ones() -> None:
    entries = (Entry(0, "ERROR one", 0.0), Entry(1, "ERROR two\nTraceback ...", 0.0))
    assert body_text(Batch(entries)) == "ERROR one\nERROR two\nTraceback ...\n"
    noted = body_text(Batch(entries, dropped=7)).splitlines()
    assert noted[0].startswith("[postwire.logging: 7 records dropped before these")
    assert noted[2:] == ["ERROR one", "ERROR two", "Traceback ..."]
    assert "did not fit this last message" in body_text(Batch(entries, 1, final=True))


def test_the_message_has_the_addresses_and_asks_robots_not_to_answer() -> None:
    message = build_message(
        Batch((Entry(0, "text", 0.0),)),
        sender="App <app@example.org>",
        recipients=["ops@example.org", "dev@example.org"],
        subject="s (1 record)",
    )
    assert message["To"] == "ops@example.org, dev@example.org"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message.get_content() == "text\n"
