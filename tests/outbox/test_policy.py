"""The outbox's pure decisions, without a database: states, back-off, lifetime, splits,
uncertain deliveries, slow start and the rate window."""

from __future__ import annotations

import pytest

from postwire import errors
from postwire._core.envelope import SendResult
from postwire._core.reply import Reply, parse_enhanced_status
from postwire.outbox.limits import RelayLimits, grow, rate_capacity, shrink
from postwire.outbox.policy import OpenRecipient, RetryPolicy, choose_recipients, decide
from postwire.outbox.states import RecipientState as R
from postwire.outbox.states import State, check_operation, settle

POLICY = RetryPolicy(min_backoff=10, max_backoff=100, lifetime=1000, jitter=0.0)


def reply(code: int, text: str) -> Reply:
    return Reply(code, (text,), parse_enhanced_status(code, text))


OK = reply(250, "2.0.0 ok")


def pending(*addresses: str, ready: float = 0.0) -> list[OpenRecipient]:
    return [OpenRecipient(i, a, R.PENDING, ready) for i, a in enumerate(addresses)]


def run(
    outcome: object,
    recipients: list[OpenRecipient],
    *,
    sent: list[OpenRecipient] | None = None,
    policy: RetryPolicy = POLICY,
    age: float = 0.0,
    now: float = 5000.0,
) -> object:
    return decide(
        policy,
        open_recipients=recipients,
        sent=recipients if sent is None else sent,
        closed=[],
        outcome=outcome,
        lifetime_from=now - age,
        now=now,
        rand=lambda: 0.5,
    )


def test_delivered_to_everyone_is_sent() -> None:
    d = run(SendResult(["a@x", "b@x"], {}, OK), pending("a@x", "b@x"))
    assert d.state is State.SENT and d.ready_at is None
    assert [u.state for u in d.updates] == [R.DELIVERED, R.DELIVERED]
    assert d.outcome == "delivered" and d.delivered == 2 and d.code == 250


def test_each_recipient_on_its_own() -> None:
    result = SendResult(
        ["a@x"], {"b@x": reply(550, "5.1.1 no"), "c@x": reply(450, "4.2.0 busy")}, OK
    )
    d = run(result, pending("a@x", "b@x", "c@x"), age=30)
    assert [u.state for u in d.updates] == [R.DELIVERED, R.BOUNCED, R.DEFERRED]
    assert d.state is State.DEFERRED and d.outcome == "partial"
    # Postfix: the message's age clamped to [min, max]: 30 s old -> 30 s later.
    assert d.ready_at == pytest.approx(5030.0)
    assert (d.delivered, d.bounced, d.deferred) == (1, 1, 1)


@pytest.mark.parametrize(
    ("age", "delay"), [(0, 10), (5, 10), (40, 40), (99, 99), (500, 100), (900, 100)]
)
def test_back_off_is_the_age_clamped(age: float, delay: float) -> None:
    d = run(errors.ServerDisconnected("dropped", step="MAIL"), pending("a@x"), age=age)
    assert d.state is State.DEFERRED
    assert d.ready_at == pytest.approx(5000 + delay)


def test_jitter_spreads_the_delay_both_ways() -> None:
    policy = RetryPolicy(min_backoff=100, max_backoff=100, lifetime=10_000, jitter=0.2)
    delays = {policy.delay(0, None, lambda v=v: v) for v in (0.0, 0.5, 0.999999)}
    assert min(delays) == pytest.approx(80) and max(delays) == pytest.approx(120, rel=1e-4)


def test_a_retry_hint_in_the_reply_is_honoured_up_to_the_maximum() -> None:
    greylist = reply(450, "4.7.1 greylisted, try again in 60 seconds")
    d = run(SendResult([], {"a@x": greylist}, OK), pending("a@x"))
    assert d.ready_at == pytest.approx(5060)
    long_hint = reply(450, "4.7.1 try again in 3 hours")
    d = run(SendResult([], {"a@x": long_hint}, OK), pending("a@x"))
    assert d.ready_at == pytest.approx(5100)


def test_the_last_attempt_is_at_the_end_of_the_lifetime_then_it_expires() -> None:
    d = run(errors.Timeout("slow", step="DATA"), pending("a@x"), age=950)
    assert d.state is State.DEFERRED and d.ready_at == pytest.approx(5050)  # lifetime end
    d = run(errors.Timeout("slow", step="DATA"), pending("a@x"), age=1000)
    assert d.state is State.EXPIRED and d.updates[0].state is R.EXPIRED
    assert d.expired == 1 and d.deferred == 0 and "expired" in d.updates[0].error


def test_expiry_keeps_what_was_delivered_and_bounced() -> None:
    result = SendResult(["a@x"], {"b@x": reply(451, "4.3.0 later")}, OK)
    d = run(result, pending("a@x", "b@x"), age=2000)
    assert [u.state for u in d.updates] == [R.DELIVERED, R.EXPIRED]
    assert d.state is State.EXPIRED


def test_possibly_delivered_is_uncertain_and_counted() -> None:
    lost = errors.PossiblyDelivered("lost after the dot", step="end of data")
    d = run(lost, pending("a@x", "b@x"))
    assert d.state is State.UNCERTAIN and d.ready_at == 5000  # resend at once
    assert [u.state for u in d.updates] == [R.UNCERTAIN, R.UNCERTAIN]
    assert [u.uncertain for u in d.updates] == [1, 1]
    assert d.uncertain == 1 and d.uncertain_recipients == 2
    held = run(lost, pending("a@x"), policy=RetryPolicy(uncertain="hold"))
    assert held.state is State.UNCERTAIN and held.ready_at is None
    assert held.updates[0].ready_at is None


def test_uncertain_again_backs_off_and_the_lifetime_ends_it() -> None:
    """A relay that keeps dropping after the "." gets the message again after the back-off,
    not in a loop, and not after the lifetime (each resend may be a real duplicate)."""
    lost = errors.PossiblyDelivered("lost after the dot", step="end of data")
    again = [OpenRecipient(0, "a@x", R.UNCERTAIN, 5000.0)]
    d = run(lost, again, age=50)
    assert d.state is State.UNCERTAIN and d.ready_at == 5050  # the age, clamped to [10, 100]
    assert d.updates[0].uncertain == 1 and d.uncertain_recipients == 1
    late = run(lost, again, age=990)
    assert late.ready_at == 5010  # never past the lifetime's end
    over = run(lost, again, age=1000)
    assert over.state is State.EXPIRED and over.updates[0].state is R.EXPIRED
    assert over.updates[0].uncertain == 1  # the last copy still counts
    assert over.expired == 1 and over.uncertain_recipients == 0
    # The first drop is resent at once even past the lifetime: it has not been tried again.
    first = run(lost, pending("a@x"), age=1000)
    assert first.state is State.UNCERTAIN and first.ready_at == 5000


def test_too_many_recipients_goes_again_at_once_and_teaches_the_limit() -> None:
    too_many = reply(452, "4.5.3 Too many recipients")
    result = SendResult(["a@x", "b@x"], {"c@x": too_many, "d@x": too_many}, OK)
    d = run(result, pending("a@x", "b@x", "c@x", "d@x"))
    assert [u.state for u in d.updates] == [R.DELIVERED, R.DELIVERED, R.PENDING, R.PENDING]
    assert d.state is State.QUEUED and d.ready_at == 5000  # no back-off
    assert d.learned_limit == 2 and d.outcome == "partial"


def test_the_learned_limit_counts_only_accepted_recipients() -> None:
    """RFC 5321 §4.5.3.1.10: refused and deferred recipients took no room at the server."""
    too_many = reply(452, "4.5.3 Too many recipients")
    refusals = {"b@x": reply(550, "5.1.1 no"), "c@x": reply(450, "4.2.0 busy"), "d@x": too_many}
    d = run(SendResult(["a@x"], refusals, OK), pending("a@x", "b@x", "c@x", "d@x"))
    assert d.learned_limit == 1


def test_the_rest_of_a_pre_split_waits_for_the_next_transaction_at_once() -> None:
    everyone = pending(*(f"r{i}@x" for i in range(5)))
    chosen = choose_recipients(everyone, now=10, cap=2)
    assert [r.address for r in chosen] == ["r0@x", "r1@x"]
    d = run(SendResult(["r0@x", "r1@x"], {}, OK), everyone, sent=chosen, now=10)
    assert d.state is State.QUEUED and d.ready_at == 0.0  # the others were due already
    assert [u.position for u in d.updates] == [0, 1]


def test_only_due_recipients_are_chosen() -> None:
    recipients = [
        OpenRecipient(0, "later@x", R.DEFERRED, 100.0),
        OpenRecipient(1, "now@x", R.PENDING, 5.0),
        OpenRecipient(2, "held@x", R.UNCERTAIN, None),
    ]
    assert [r.address for r in choose_recipients(recipients, now=10, cap=100)] == ["now@x"]


def test_a_refused_sender_or_message_decides_for_everyone() -> None:
    d = run(errors.SenderRefused("MAIL", reply(553, "5.7.1 no")), pending("a@x", "b@x"))
    assert d.state is State.BOUNCED and d.bounced == 2
    d = run(errors.DataError("end of data", reply(451, "4.3.0 later")), pending("a@x"))
    assert d.state is State.DEFERRED


def test_the_entry_waits_for_its_earliest_recipient() -> None:
    recipients = [
        OpenRecipient(0, "a@x", R.PENDING, 0.0),
        OpenRecipient(1, "b@x", R.DEFERRED, 9000.0),
    ]
    d = run(SendResult(["a@x"], {}, OK), recipients, sent=recipients[:1])
    assert d.state is State.DEFERRED and d.ready_at == 9000.0


def test_states_and_operations() -> None:
    assert check_operation("hold", State.DEFERRED) is State.HELD
    assert check_operation("release", State.HELD) is State.QUEUED
    assert check_operation("retry", State.BOUNCED) is State.QUEUED
    assert check_operation("cancel", State.UNCERTAIN) is State.CANCELLED
    with pytest.raises(errors.StateConflict, match="worker is delivering") as caught:
        check_operation("cancel", State.SENDING)
    assert caught.value.state == "sending"
    with pytest.raises(errors.StateConflict):
        check_operation("hold", State.SENT)
    with pytest.raises(ValueError):
        check_operation("explode", State.QUEUED)
    assert settle([R.DELIVERED, R.BOUNCED]) is State.SENT
    assert settle([R.BOUNCED]) is State.BOUNCED
    assert settle([R.DELIVERED, R.EXPIRED]) is State.EXPIRED
    with pytest.raises(ValueError):
        settle([R.PENDING])


def test_policy_and_limits_refuse_nonsense() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(min_backoff=10, max_backoff=5)
    with pytest.raises(ValueError):
        RetryPolicy(uncertain="drop")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        RelayLimits(max_connections=0)
    with pytest.raises(ValueError):
        RelayLimits(rate=0)


def test_slow_start_and_dead_relays() -> None:
    assert grow(5, 20) == 6 and grow(20, 20) == 20
    assert shrink(5) == (4, False)
    assert shrink(1) == (1, True)
    assert RelayLimits(max_connections=3, initial=5).start_window == 3


@pytest.mark.parametrize(
    ("rate", "guard", "expected"),
    [(10, 0.1, (10, 1.1)), (2.5, 0.0, (2, 1.0)), (0.5, 0.1, (1, 2.1))],
)
def test_rate_capacity(rate: float, guard: float, expected: tuple[int, float]) -> None:
    capacity, window = rate_capacity(rate, guard)
    assert capacity == expected[0] and window == pytest.approx(expected[1])
