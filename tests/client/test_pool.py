"""Pool and AsyncPool against the capture server and Postfix, and the pure bookkeeping."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from postwire import RecipientsRefused, SendResult
from postwire._core.outcomes import may_resend_elsewhere
from postwire._core.pooling import Action, PoolPolicy, RateLimiter, Record
from postwire.capture import CaptureServer
from postwire.client import AsyncPool, Pool
from postwire.errors import PossiblyDelivered, ServerDisconnected
from servers.postfix import PostfixServer, strip_trace


def _items(n: int, rcpt: str = "alice@test.example") -> list[tuple[bytes, str, list[str]]]:
    return [
        (f"Subject: pooled {i}\r\nMessage-ID: <p{i}@x>\r\n\r\nbody {i}\r\n".encode(), "s@x", [rcpt])
        for i in range(n)
    ]


# -- pure bookkeeping --------------------------------------------------------------------


def test_policy_actions() -> None:
    policy = PoolPolicy(max_messages=3, idle_timeout=60, check_after=5)
    assert policy.action(Record(0, 0), 1) is Action.REUSE
    assert policy.action(Record(0, 0), 6) is Action.CHECK
    assert policy.action(Record(0, 0), 61) is Action.RETIRE
    assert policy.action(Record(0, 0, messages=3), 1) is Action.RETIRE
    assert PoolPolicy(max_age=10).action(Record(0, 9), 11) is Action.RETIRE
    with pytest.raises(ValueError):
        PoolPolicy(max_messages=0)


def test_rate_limiter_is_shared_and_books_ahead() -> None:
    limiter = RateLimiter(rate=10, burst=2)
    assert limiter.reserve(0.0) == 0
    assert limiter.reserve(0.0) == 0
    assert limiter.reserve(0.0) == pytest.approx(0.1)
    assert limiter.reserve(0.0) == pytest.approx(0.2)
    assert limiter.reserve(1.0) == 0  # refilled (capped at the burst)
    assert limiter.reserve(0.0 + 1.0, 5) == pytest.approx(0.4)


def test_may_resend_elsewhere() -> None:
    assert may_resend_elsewhere(ServerDisconnected("x"))
    assert not may_resend_elsewhere(PossiblyDelivered("x"))
    assert not may_resend_elsewhere(RecipientsRefused({}))
    assert not may_resend_elsewhere(SendResult(["a"]))


# -- real servers -------------------------------------------------------------------------


@pytest.fixture
def capture() -> Iterator[CaptureServer]:
    with CaptureServer(tls="none") as server:
        yield server


def test_pool_send_many_in_order_over_several_connections(postfix_inbox: PostfixServer) -> None:
    items = _items(150)
    items[10] = (items[10][0], "s@x", [postfix_inbox.rejected_recipient])
    with Pool(
        postfix_inbox.host,
        postfix_inbox.smtp_port,
        cafile=postfix_inbox.ca_file,
        max_connections=4,
        max_messages_per_connection=40,
    ) as pool:
        outcomes = pool.send_many(items)
        assert pool.connections_opened >= 2
    assert len(outcomes) == 150
    assert isinstance(outcomes[10], RecipientsRefused)
    good = [o for i, o in enumerate(outcomes) if i != 10]
    assert all(isinstance(o, SendResult) and o.accepted == ["alice@test.example"] for o in good)
    arrived = sorted(strip_trace(m) for m in postfix_inbox.wait_for_messages(149, timeout=30))
    assert arrived == sorted(body for i, (body, _, _) in enumerate(items) if i != 10)


def test_pool_send_reuses_connections(capture: CaptureServer) -> None:
    with Pool("127.0.0.1", capture.port, tls="none", max_connections=2) as pool:
        for i in range(5):
            pool.send(b"Subject: %d\r\n\r\nx\r\n" % i, sender="a@x", recipients=["b@y"])
        assert pool.connections_opened == 1
    assert len(capture.wait_for(5)) == 5


def test_both_pools_send_many_iter_hand_out_outcomes_in_order(capture: CaptureServer) -> None:
    items = _items(70)
    with Pool("127.0.0.1", capture.port, tls="none", max_connections=3) as pool:
        streamed = pool.send_many_iter(items[:35])
        assert not isinstance(streamed, list)
        sync_outcomes = list(streamed)

    async def main() -> list[object]:
        async with AsyncPool("127.0.0.1", capture.port, tls="none", max_connections=3) as pool:
            return [o async for o in pool.send_many_iter(items[35:])]

    async_outcomes = asyncio.run(main())
    assert all(isinstance(o, SendResult) for o in sync_outcomes + async_outcomes)
    subjects = [m.email()["Subject"] for m in capture.wait_for(70)]
    assert sorted(subjects) == sorted(f"pooled {i}" for i in range(70))


def test_pool_replaces_a_dropped_idle_connection(capture: CaptureServer) -> None:
    with Pool("127.0.0.1", capture.port, tls="none", check_after=0.0) as pool:
        pool.send(b"x\r\n", sender="a@x", recipients=["b@y"])
        # Break the idle connection behind the pool's back.
        client, _ = pool._idle[0]
        assert client._driver is not None
        client._driver.stream.sock.close()
        pool.send(b"y\r\n", sender="a@x", recipients=["b@y"])
        assert pool.connections_opened == 2
    assert [m.data for m in capture.wait_for(2)] == [b"x\r\n", b"y\r\n"]


def test_pool_rate_limit_is_enforced_before_sending(capture: CaptureServer) -> None:
    with Pool(
        "127.0.0.1", capture.port, tls="none", max_connections=3, rate_limit=20, rate_burst=1
    ) as pool:
        t0 = time.monotonic()
        outcomes = pool.send_many(_items(10, "b@y"))
        elapsed = time.monotonic() - t0
    assert all(isinstance(o, SendResult) for o in outcomes)
    # 10 messages at 20/s with a burst of 1 cannot finish in less than ~0.45 s.
    assert elapsed >= 0.4


def test_async_pool_yields_in_order(postfix_inbox: PostfixServer) -> None:
    items = _items(80)

    async def main() -> list[object]:
        async with AsyncPool(
            postfix_inbox.host,
            postfix_inbox.smtp_port,
            cafile=postfix_inbox.ca_file,
            max_connections=5,
        ) as pool:
            out = await pool.send_many(items)
            assert isinstance(out, list)
            assert pool.connections_opened >= 2
            return out

    outcomes = asyncio.run(main())
    assert len(outcomes) == 80
    assert all(isinstance(o, SendResult) for o in outcomes)
    arrived = sorted(strip_trace(m) for m in postfix_inbox.wait_for_messages(80, timeout=30))
    assert arrived == sorted(body for body, _, _ in items)


def test_async_pool_send(capture: CaptureServer) -> None:
    async def main() -> None:
        async with AsyncPool("127.0.0.1", capture.port, tls="none", max_connections=2) as pool:
            results = await asyncio.gather(
                *(pool.send(b"m%d\r\n" % i, sender="a@x", recipients=["b@y"]) for i in range(6))
            )
            assert all(r.accepted == ["b@y"] for r in results)
            assert pool.connections_opened <= 2

    asyncio.run(main())
    assert sorted(m.data for m in capture.wait_for(6)) == sorted(b"m%d\r\n" % i for i in range(6))


def test_pool_reconnects_after_421_and_sends_once() -> None:
    """A 421 before the end of data: the message was not taken; the pool sends it again."""
    from servers.scripted import ScriptedServer

    greet = [("S", b"220 mx\r\n"), ("C", b"EHLO client.test\r\n"), ("S", b"250 mx\r\n")]
    first = [*greet, ("C", b"MAIL FROM:<a@x>\r\n"), ("S", b"421 4.3.2 shutting down\r\n")]
    second = [
        *greet,
        ("C", b"MAIL FROM:<a@x>\r\n"), ("S", b"250 ok\r\n"),
        ("C", b"RCPT TO:<b@y>\r\n"), ("S", b"250 ok\r\n"),
        ("C", b"DATA\r\n"), ("S", b"354 go\r\n"),
        ("C", b"x\r\n.\r\n"), ("S", b"250 queued\r\n"),
        ("C", b"QUIT\r\n"), ("S", b"221 bye\r\n"),
    ]  # fmt: skip
    with ScriptedServer(first, then=[second]) as server:
        with Pool(
            "127.0.0.1", server.port, tls="none", local_hostname="client.test", timeout=3
        ) as pool:
            result = pool.send(b"x\r\n", sender="a@x", recipients=["b@y"])
            assert pool.connections_opened == 2
    assert result.reply.code == 250
    assert server.errors == []
