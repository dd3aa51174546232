"""send_many over one connection to Postfix: pipelined DATA and windowed BDAT, byte-exact."""

from __future__ import annotations

import asyncio

import pytest

from postwire import Client, RecipientsRefused, SendResult
from postwire.client import AsyncClient
from servers.postfix import PostfixServer, strip_trace

SENDER = "sender@test.example"


def _messages(n: int) -> list[bytes]:
    return [
        (
            f"From: {SENDER}\r\nTo: alice@test.example\r\nSubject: message {i}\r\n"
            f"Message-ID: <many-{i}@test.example>\r\n\r\n"
            f"body of {i}\r\n.leading dot\r\n.\r\n"
        ).encode()
        for i in range(n)
    ]


def _delivered(server: PostfixServer, count: int) -> list[bytes]:
    got = sorted(strip_trace(raw) for raw in server.wait_for_messages(count, timeout=20))
    return got


@pytest.mark.parametrize("chunking", [True, False], ids=["bdat", "data"])
def test_send_many_sync_byte_exact(postfix_inbox: PostfixServer, chunking: bool) -> None:
    bodies = _messages(25)
    items = [(b, SENDER, ["alice@test.example"]) for b in bodies]
    items.insert(7, (bodies[0], SENDER, [postfix_inbox.rejected_recipient]))
    lines: list[str] = []
    with Client(
        postfix_inbox.host,
        postfix_inbox.smtp_port,
        cafile=postfix_inbox.ca_file,
        chunking=chunking,
        transcript=lines.append,
    ) as client:
        outcomes = client.send_many(items, window=4)
        assert client.connected
    assert len(outcomes) == 26
    assert isinstance(outcomes[7], RecipientsRefused)
    assert all(isinstance(o, SendResult) for i, o in enumerate(outcomes) if i != 7)
    assert _delivered(postfix_inbox, 25) == sorted(bodies)
    sent = [line.split("-> ", 1)[1] for line in lines if " -> " in line]
    assert any(s.startswith("<message content") for s in sent)
    if chunking:
        # windowed: the second MAIL went out before the first reply came back
        first_reply = next(i for i, line in enumerate(lines) if "<- 250 2.1.0" in line)
        mails_before = sum(1 for line in lines[:first_reply] if "-> MAIL FROM" in line)
        assert mails_before >= 2


def test_send_many_async_byte_exact(postfix_inbox: PostfixServer) -> None:
    bodies = _messages(12)

    async def main() -> list[object]:
        async with AsyncClient(
            postfix_inbox.host, postfix_inbox.smtp_port, cafile=postfix_inbox.ca_file
        ) as client:
            items = [(b, SENDER, ["alice@test.example"]) for b in bodies]
            return await client.send_many(items)

    outcomes = asyncio.run(main())
    assert all(isinstance(o, SendResult) for o in outcomes)
    assert _delivered(postfix_inbox, 12) == sorted(bodies)
