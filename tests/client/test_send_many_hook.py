"""``send_many(end_of_message=...)``: a hook per message, right before its final ".".

A durable queue records "this message may be delivered from now on" there (the outbox's
commit point), so the hook must run for every message whose content went out, with the
message's index, before the server can have its end of data, in pipelined DATA, in a BDAT
window and in lock-step; and raising :class:`~postwire.errors.CancelledSend` from it must
stop that message (never delivered), keep the outcomes of the earlier ones and report the
later ones as not sent.  Against the fault server on 127.0.0.1 (real sockets).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from postwire import Client, SendResult, errors
from postwire.client import AsyncClient
from servers.faults import FaultServer, Listener

N = 6
MODES = ("data", "bdat", "lockstep")


@pytest.fixture(scope="module")
def faults() -> Iterator[FaultServer]:
    with FaultServer() as server:
        yield server


def _items() -> list[tuple[bytes, str, list[str]]]:
    return [
        (f"Subject: {i}\r\nMessage-ID: <{i}@hook.test>\r\n\r\nbody {i}\r\n".encode(), "a@c.test", [
            f"r{i}@s.test"
        ])
        for i in range(N)
    ]  # fmt: skip


def _options(mode: str) -> dict[str, object]:
    return {"tls": "none", "timeout": 5.0, "pipelining": mode != "lockstep"}


def _check_order(mode: str, calls: list[tuple[int, int]], expected: list[int]) -> None:
    assert [i for i, _ in calls] == expected
    for index, delivered_then in calls:
        # Message `index` cannot have been delivered when its hook ran: its "." was not sent.
        assert delivered_then <= index
        if mode != "bdat":
            # One message at a time: the previous message's reply was read before this hook.
            assert delivered_then == expected.index(index) + (N - len(expected))


@pytest.mark.parametrize("mode", MODES)
def test_hook_runs_before_each_final_dot_sync(faults: FaultServer, mode: str) -> None:
    with faults.listen("QUIT", "4xx", chunking=mode == "bdat") as listener:
        calls: list[tuple[int, int]] = []
        with Client("127.0.0.1", listener.port, **_options(mode)) as client:  # type: ignore[arg-type]
            outcomes = client.send_many(
                _items(), end_of_message=lambda i: calls.append((i, len(listener.delivered)))
            )
        assert all(isinstance(o, SendResult) for o in outcomes), outcomes
        _check_order(mode, calls, list(range(N)))
        assert len(listener.delivered) == N


@pytest.mark.parametrize("mode", MODES)
async def test_hook_runs_before_each_final_dot_async(faults: FaultServer, mode: str) -> None:
    with faults.listen("QUIT", "4xx", chunking=mode == "bdat") as listener:
        calls: list[tuple[int, int]] = []

        async def hook(i: int) -> None:
            await asyncio.sleep(0)
            calls.append((i, len(listener.delivered)))

        async with AsyncClient("127.0.0.1", listener.port, **_options(mode)) as client:  # type: ignore[arg-type]
            outcomes = await client.send_many(_items(), end_of_message=hook)
        assert all(isinstance(o, SendResult) for o in outcomes), outcomes
        _check_order(mode, calls, list(range(N)))
        assert len(listener.delivered) == N


@pytest.mark.parametrize("mode", ("data", "lockstep"))
def test_no_hook_for_a_message_whose_content_never_went(faults: FaultServer, mode: str) -> None:
    # The first RCPT of the connection is refused: message 0 has no recipient, no content.
    with faults.listen("RCPT", "5xx") as listener:
        calls: list[tuple[int, int]] = []
        with Client("127.0.0.1", listener.port, **_options(mode)) as client:  # type: ignore[arg-type]
            outcomes = client.send_many(
                _items(), end_of_message=lambda i: calls.append((i, len(listener.delivered)))
            )
        assert isinstance(outcomes[0], errors.RecipientsRefused)
        assert all(isinstance(o, SendResult) for o in outcomes[1:]), outcomes
        assert [i for i, _ in calls] == list(range(1, N))
        assert len(listener.delivered) == N - 1


def _not_delivered(outcome: object) -> bool:
    """An outcome that says "certainly not delivered" (safe to send again)."""
    return isinstance(outcome, errors.SMTPError) and not isinstance(
        outcome, errors.PossiblyDelivered
    )


def _check_cancelled(
    mode: str, outcomes: list[SendResult | BaseException], listener: Listener
) -> None:
    delivered = [int(m.split(b"\r\n")[0][len(b"Subject: ") :]) for m in listener.delivered]
    if mode == "bdat":
        # In a BDAT window the first two were still in flight (their BDAT LAST perhaps only
        # buffered): the client cannot know, so it must not claim they were not delivered.
        assert all(isinstance(o, (SendResult, errors.PossiblyDelivered)) for o in outcomes[:2])
        assert set(delivered) <= {0, 1}
    else:
        assert [type(o) for o in outcomes[:2]] == [SendResult, SendResult]
        assert delivered == [0, 1]
    # The third never got its ".": certainly not delivered, and it says why.
    assert _not_delivered(outcomes[2]), outcomes[2]
    cause = outcomes[2] if isinstance(outcomes[2], errors.CancelledSend) else outcomes[2].__cause__
    assert isinstance(cause, errors.CancelledSend), outcomes[2]
    for later in outcomes[3:]:
        assert _not_delivered(later), later


@pytest.mark.parametrize("mode", MODES)
def test_cancelled_send_from_the_hook_stops_that_message_sync(
    faults: FaultServer, mode: str
) -> None:
    with faults.listen("QUIT", "4xx", chunking=mode == "bdat") as listener:

        def hook(i: int) -> None:
            if i == 2:
                raise errors.CancelledSend("the queue could not record the commit", step="DATA")

        with Client("127.0.0.1", listener.port, **_options(mode)) as client:  # type: ignore[arg-type]
            outcomes = client.send_many(_items(), end_of_message=hook)
            assert not client.connected
        # The server sees the connection close without the third message's end of data.
        assert listener.sessions[-1].client_closed.wait(5)
        _check_cancelled(mode, outcomes, listener)


@pytest.mark.parametrize("mode", MODES)
async def test_cancelled_send_from_the_hook_stops_that_message_async(
    faults: FaultServer, mode: str
) -> None:
    with faults.listen("QUIT", "4xx", chunking=mode == "bdat") as listener:

        async def hook(i: int) -> None:
            if i == 2:
                raise errors.CancelledSend("the queue could not record the commit", step="DATA")

        async with AsyncClient("127.0.0.1", listener.port, **_options(mode)) as client:  # type: ignore[arg-type]
            outcomes = await client.send_many(_items(), end_of_message=hook)
            assert not client.connected
        assert await asyncio.to_thread(listener.sessions[-1].client_closed.wait, 5)
        _check_cancelled(mode, outcomes, listener)


@pytest.mark.parametrize("fault", ("close", "hang"))
def test_lock_step_send_many_reports_a_possible_delivery(faults: FaultServer, fault: str) -> None:
    # Without pipelining each message is its own transaction; when the connection breaks
    # after a message's end of data, that message may have been delivered: it must say so
    # (a pool or a queue would otherwise send it again), and only the later ones are "not sent".
    with faults.listen("end-of-data", fault) as listener:
        options = {**_options("lockstep"), "timeout": 1.0}
        with Client("127.0.0.1", listener.port, **options) as client:  # type: ignore[arg-type]
            outcomes = client.send_many(_items())
        assert isinstance(outcomes[0], errors.PossiblyDelivered), outcomes[0]
        assert all(_not_delivered(o) for o in outcomes[1:]), outcomes
