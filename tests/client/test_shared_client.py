"""One client used by several tasks or threads at once: each operation has the session to itself.

Without this, two ``send`` calls on one ``AsyncClient`` (``asyncio.gather``) interleaved
their commands on one session and failed with "cannot send MAIL in state transaction"
(found by running the tutorial, tests/docs/test_tutorial.py).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from postwire import AsyncClient, Client, SendResult
from postwire.capture import CaptureServer


@pytest.fixture(scope="module")
def server() -> Iterator[CaptureServer]:
    with CaptureServer(tls="none") as capture:
        yield capture


def _message(n: int) -> bytes:
    return b"Subject: shared %d\r\n\r\nhello\r\n" % n


def test_concurrent_sends_on_one_async_client_wait_their_turn(server: CaptureServer) -> None:
    server.clear()

    async def main() -> list[SendResult]:
        async with AsyncClient(server.host, server.port, tls="none") as client:
            one = [
                client.send(_message(n), sender="a@example.org", recipients=[f"r{n}@x.test"])
                for n in range(20)
            ]
            many = client.send_many([(_message(100 + n), "a@example.org", ["m@x.test"])
                                     for n in range(5)])  # fmt: skip
            noop = client.noop()
            done = await asyncio.gather(*one, many, noop)
        assert all(isinstance(o, SendResult) for o in done[20])
        return [r for r in done[:20] if isinstance(r, SendResult)]

    results = asyncio.run(main())
    assert [r.accepted for r in results] == [[f"r{n}@x.test"] for n in range(20)]
    assert len(server.wait_for(25)) == 25


def test_threads_sharing_one_sync_client_wait_their_turn(server: CaptureServer) -> None:
    server.clear()
    failures: list[BaseException] = []
    with Client(server.host, server.port, tls="none") as client:

        def work(base: int) -> None:
            try:
                for n in range(base, base + 10):
                    client.send(_message(n), sender="a@example.org", recipients=["t@x.test"])
            except BaseException as exc:  # reported below
                failures.append(exc)

        threads = [threading.Thread(target=work, args=(i * 10,)) for i in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert failures == []
    subjects = sorted(m.subject or "" for m in server.wait_for(60))
    assert subjects == sorted(f"shared {n}" for n in range(60))


def test_a_hook_that_uses_its_own_client_is_an_error_not_a_deadlock(
    server: CaptureServer,
) -> None:
    with Client(server.host, server.port, tls="none") as client:

        def hook() -> None:
            client.noop()

        with pytest.raises(RuntimeError, match="would wait for itself"):
            client.send(_message(0), sender="a@example.org", recipients=["h@x.test"],
                        end_of_message=hook)  # fmt: skip
        # The hook ran before the end of the message: nothing was delivered, and the
        # client was closed (a local error mid-transaction), so it can connect again.
        assert not client.connected


def test_the_consumer_of_send_many_iter_may_use_the_client_between_outcomes(
    server: CaptureServer,
) -> None:
    server.clear()

    async def main() -> None:
        async with AsyncClient(server.host, server.port, tls="none") as client:
            items = [(_message(n), "a@example.org", ["i@x.test"]) for n in range(3)]
            async for outcome in client.send_many_iter(items):
                assert isinstance(outcome, SendResult)
                await client.noop()  # between runs the session is free
            stopped = client.send_many_iter(items)
            async for _ in stopped:
                break  # stopping early leaves nothing held
            await client.send(_message(9), sender="a@example.org", recipients=["j@x.test"])

    asyncio.run(main())
    assert len(server.wait_for(7)) == 7  # the stopped run was sent whole before its first outcome


def test_a_waiter_cancelled_as_it_is_handed_the_connection_passes_it_on() -> None:
    """No socket: the hand-over itself, the one case a plain lock would get wrong."""
    from postwire.client._concurrency import AsyncExclusive

    async def main() -> list[int]:
        exclusive = AsyncExclusive()
        got: list[int] = []

        async def user(n: int) -> None:
            async with exclusive:
                got.append(n)

        await exclusive.__aenter__()
        first = asyncio.create_task(user(1))
        second = asyncio.create_task(user(2))
        third = asyncio.create_task(user(3))
        await asyncio.sleep(0)  # all three wait, in order
        third.cancel()  # cancelled while waiting: leaves the queue
        await exclusive.__aexit__(None, None, None)  # handed to the first...
        first.cancel()  # ...which is cancelled before it runs: it must pass it on
        await asyncio.gather(first, second, third, return_exceptions=True)
        async with exclusive:  # and nothing is left taken
            got.append(4)
        return got

    assert asyncio.run(main()) == [2, 4]
