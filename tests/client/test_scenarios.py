"""One scenario table, run through the sync Client and the AsyncClient.

Each scenario is a scripted server (exact bytes expected from the client, exact
bytes answered) and the outcome the client must report.  A pipelining scenario
only answers after it has received the whole group, so a client that waited
for each reply would time out instead of passing.
"""

from __future__ import annotations

import asyncio
import inspect
from dataclasses import dataclass, field

import pytest

from postwire import Client, SendResult, errors
from postwire.client import AsyncClient
from servers.scripted import ScriptedServer

GREET = [("S", b"220 mx.test ESMTP\r\n"), ("C", b"EHLO client.test\r\n")]
MSG = b"Subject: t\r\n\r\nbody\r\n.dot\r\n"
WIRE = b"Subject: t\r\n\r\nbody\r\n..dot\r\n.\r\n"
QUIT = [("C", b"QUIT\r\n"), ("S", b"221 bye\r\n")]


@dataclass
class Scenario:
    name: str
    script: list[tuple[object, ...]]
    recipients: list[str] = field(default_factory=lambda: ["b@y"])
    error: type[Exception] | None = None
    match: str = ""
    accepted: list[str] | None = None
    refused: list[str] = field(default_factory=list)
    options: dict[str, object] = field(default_factory=dict)


SCENARIOS = [
    Scenario(
        "lock-step",
        [
            *GREET,
            ("S", b"250-mx.test\r\n250 8BITMIME\r\n"),
            ("C", b"MAIL FROM:<a@x> SIZE=26\r\n"[:0] + b"MAIL FROM:<a@x>\r\n"),
            ("S", b"250 ok\r\n"),
            ("C", b"RCPT TO:<b@y>\r\n"),
            ("S", b"250 ok\r\n"),
            ("C", b"DATA\r\n"),
            ("S", b"354 go\r\n"),
            ("C", WIRE),
            ("S", b"250 2.0.0 queued as A1\r\n"),
            *QUIT,
        ],
        accepted=["b@y"],
    ),
    Scenario(
        "pipelined group in one write",
        [
            *GREET,
            ("S", b"250-mx.test\r\n250-PIPELINING\r\n250 SIZE 1000\r\n"),
            ("C", b"MAIL FROM:<a@x> SIZE=26\r\nRCPT TO:<b@y>\r\nRCPT TO:<c@z>\r\nDATA\r\n"),
            ("S", b"250 ok\r\n250 ok\r\n251 forwarded\r\n354 go\r\n"),
            ("C", WIRE),
            ("S", b"250 ok\r\n"),
            *QUIT,
        ],
        recipients=["b@y", "c@z"],
        accepted=["b@y", "c@z"],
    ),
    Scenario(
        "pipelined partial refusal",
        [
            *GREET,
            ("S", b"250-mx.test\r\n250 PIPELINING\r\n"),
            ("C", b"MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nRCPT TO:<c@z>\r\nDATA\r\n"),
            ("S", b"250 ok\r\n550 5.1.1 no such user\r\n250 ok\r\n354 go\r\n"),
            ("C", WIRE),
            ("S", b"250 ok\r\n"),
            *QUIT,
        ],
        recipients=["b@y", "c@z"],
        accepted=["c@z"],
        refused=["b@y"],
    ),
    Scenario(
        "pipelined all refused but DATA accepted: a lone dot",
        [
            *GREET,
            ("S", b"250-mx.test\r\n250 PIPELINING\r\n"),
            ("C", b"MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n"),
            ("S", b"250 ok\r\n550 no\r\n354 go\r\n"),
            ("C", b".\r\n"),
            ("S", b"554 no valid recipients\r\n"),
            *QUIT,
        ],
        error=errors.RecipientsRefused,
        match="b@y: 550",
    ),
    Scenario(
        "chunking with pipelining: one round trip",
        [
            *GREET,
            ("S", b"250-mx.test\r\n250-PIPELINING\r\n250 CHUNKING\r\n"),
            ("C", b"MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nBDAT 26 LAST\r\n" + MSG),
            ("S", b"250 ok\r\n250 ok\r\n250 2.0.0 Ok: 26 bytes\r\n"),
            *QUIT,
        ],
        accepted=["b@y"],
    ),
    Scenario(
        "BDAT refused, then RSET",
        [
            *GREET,
            ("S", b"250-mx.test\r\n250-PIPELINING\r\n250 CHUNKING\r\n"),
            ("C", b"MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nBDAT 26 LAST\r\n" + MSG),
            ("S", b"250 ok\r\n250 ok\r\n552 5.3.4 too big\r\n"),
            ("C", b"RSET\r\n"),
            ("S", b"250 ok\r\n"),
            *QUIT,
        ],
        error=errors.DataError,
        match="BDAT failed.*552",
    ),
    Scenario(
        "MAIL refused, then RSET",
        [
            *GREET,
            ("S", b"250 mx.test\r\n"),
            ("C", b"MAIL FROM:<a@x>\r\n"),
            ("S", b"553 5.1.8 bad sender\r\n"),
            ("C", b"RSET\r\n"),
            ("S", b"250 ok\r\n"),
            *QUIT,
        ],
        error=errors.SenderRefused,
        match="MAIL failed.*553",
    ),
    Scenario(
        "end of data refused",
        [
            *GREET,
            ("S", b"250 mx.test\r\n"),
            ("C", b"MAIL FROM:<a@x>\r\n"),
            ("S", b"250 ok\r\n"),
            ("C", b"RCPT TO:<b@y>\r\n"),
            ("S", b"250 ok\r\n"),
            ("C", b"DATA\r\n"),
            ("S", b"354 go\r\n"),
            ("C", WIRE),
            ("S", b"554 5.7.1 spam\r\n"),
            *QUIT,
        ],
        error=errors.DataError,
        match="end of data failed.*554",
    ),
    Scenario(
        "421 at MAIL",
        [
            *GREET,
            ("S", b"250 mx.test\r\n"),
            ("C", b"MAIL FROM:<a@x>\r\n"),
            ("S", b"421 4.3.2 shutting down\r\n"),
            ("CLOSE",),
        ],
        error=errors.ServerDisconnected,
        match="421",
    ),
    Scenario(
        "dropped after the final dot",
        [
            *GREET,
            ("S", b"250 mx.test\r\n"),
            ("C", b"MAIL FROM:<a@x>\r\n"),
            ("S", b"250 ok\r\n"),
            ("C", b"RCPT TO:<b@y>\r\n"),
            ("S", b"250 ok\r\n"),
            ("C", b"DATA\r\n"),
            ("S", b"354 go\r\n"),
            ("C", WIRE),
            ("CLOSE",),
        ],
        error=errors.PossiblyDelivered,
        match="may have been delivered",
    ),
    Scenario(
        "HELO fallback",
        [
            *GREET,
            ("S", b"502 5.5.1 EHLO unknown\r\n"),
            ("C", b"HELO client.test\r\n"),
            ("S", b"250 mx.test\r\n"),
            ("C", b"MAIL FROM:<a@x>\r\n"),
            ("S", b"250 ok\r\n"),
            ("C", b"RCPT TO:<b@y>\r\n"),
            ("S", b"250 ok\r\n"),
            ("C", b"DATA\r\n"),
            ("S", b"354 go\r\n"),
            ("C", WIRE),
            ("S", b"250 ok\r\n"),
            *QUIT,
        ],
        accepted=["b@y"],
    ),
    Scenario(
        "unsolicited reply",
        [
            *GREET,
            ("S", b"250 mx.test\r\n250 extra\r\n"),
            ("DRAIN", 1.0),
        ],
        error=errors.ProtocolError,
        match="unsolicited",
    ),
    Scenario(
        "silent server",
        [*GREET, ("S", b"250 mx.test\r\n"), ("C", b"MAIL FROM:<a@x>\r\n"), ("SLEEP", 2.0)],
        error=errors.Timeout,
        match="MAIL",
        options={"timeout": 0.5},
    ),
    Scenario(
        "garbage reply",
        [
            *GREET,
            ("S", b"250 mx.test\r\n"),
            ("C", b"MAIL FROM:<a@x>\r\n"),
            ("S", b"HTTP/1.1 400 Bad Request\r\n"),
            ("DRAIN", 1.0),
        ],
        error=errors.ProtocolError,
        match="MAIL",
    ),
    Scenario(
        "SMTPUTF8 needed but not offered: nothing sent",
        [*GREET, ("S", b"250 mx.test\r\n"), *QUIT],
        recipients=["bé@y"],
        error=errors.ExtensionNotSupported,
        match="SMTPUTF8",
    ),
]


def _check(s: Scenario, server: ScriptedServer, outcome: object) -> None:
    assert server.errors == [], server.errors
    if s.error is not None:
        assert isinstance(outcome, s.error), outcome
        assert inspect.cleandoc(s.match) == "" or __import__("re").search(s.match, str(outcome))
        return
    assert isinstance(outcome, SendResult), outcome
    assert outcome.accepted == s.accepted
    assert sorted(outcome.refused) == sorted(s.refused)


def _options(s: Scenario) -> dict[str, object]:
    return {"tls": "none", "local_hostname": "client.test", "timeout": 3.0, **s.options}


@pytest.mark.parametrize("s", SCENARIOS, ids=lambda s: s.name)
def test_sync(s: Scenario) -> None:
    with ScriptedServer(s.script) as server:
        outcome: object
        try:
            with Client("127.0.0.1", server.port, **_options(s)) as client:  # type: ignore[arg-type]
                outcome = client.send(MSG, sender="a@x", recipients=s.recipients)
        except errors.SMTPError as exc:
            outcome = exc
    _check(s, server, outcome)


@pytest.mark.parametrize("s", SCENARIOS, ids=lambda s: s.name)
def test_async(s: Scenario) -> None:
    async def main() -> object:
        try:
            async with AsyncClient("127.0.0.1", server.port, **_options(s)) as client:  # type: ignore[arg-type]
                return await client.send(MSG, sender="a@x", recipients=s.recipients)
        except errors.SMTPError as exc:
            return exc

    with ScriptedServer(s.script) as server:
        outcome = asyncio.run(main())
    _check(s, server, outcome)


def test_public_signatures_match() -> None:
    """AsyncClient mirrors Client: same constructor, same methods, same parameters."""
    assert inspect.signature(Client.__init__).parameters.keys() == (
        inspect.signature(AsyncClient.__init__).parameters.keys()
    )
    public = {n for n in dir(Client) if not n.startswith("_")}
    apublic = {n for n in dir(AsyncClient) if not n.startswith("_")}
    assert public == apublic
    for name in sorted(public):
        sync, asyn = getattr(Client, name), getattr(AsyncClient, name)
        if not callable(sync):
            continue
        sp = dict(inspect.signature(sync).parameters)
        ap = dict(inspect.signature(asyn).parameters)
        assert sp.keys() == ap.keys(), name
        for key in sp:
            assert sp[key].kind == ap[key].kind, (name, key)
            assert sp[key].default == ap[key].default, (name, key)
        assert (
            inspect.iscoroutinefunction(asyn)
            or inspect.isasyncgenfunction(asyn)
            or (name in ("close", "tls_info", "from_url", "from_account"))
        ), name


# -- several messages over one pipelined connection ----------------------------------

MANY_DATA = [
    *GREET,
    ("S", b"250-mx.test\r\n250 PIPELINING\r\n"),
    ("C", b"MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n"),
    ("S", b"250 ok\r\n250 ok\r\n354 go\r\n"),
    # message 1's content and "." travel with message 2's group (RFC 2920 §3.1):
    # the server answers only once it has all of it.
    ("C", WIRE + b"MAIL FROM:<a@x>\r\nRCPT TO:<nobody@y>\r\nDATA\r\n"),
    ("S", b"250 2.0.0 queued as 1\r\n250 ok\r\n550 5.1.1 unknown\r\n554 no valid recipients\r\n"),
    ("C", b"RSET\r\n"),
    ("S", b"250 ok\r\n"),
    ("C", b"MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n"),
    ("S", b"250 ok\r\n250 ok\r\n354 go\r\n"),
    ("C", WIRE),
    ("S", b"250 2.0.0 queued as 3\r\n"),
    *QUIT,
]

MANY_BDAT = [
    *GREET,
    ("S", b"250-mx.test\r\n250-PIPELINING\r\n250 CHUNKING\r\n"),
    # three transactions written before any reply is read
    (
        "C",
        (b"MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nBDAT 26 LAST\r\n" + MSG)
        + (b"MAIL FROM:<a@x>\r\nRCPT TO:<nobody@y>\r\nBDAT 26 LAST\r\n" + MSG)
        + (b"MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nBDAT 26 LAST\r\n" + MSG),
    ),
    (
        "S",
        b"250 ok\r\n250 ok\r\n250 2.0.0 Ok: 26 bytes\r\n"
        b"250 ok\r\n550 5.1.1 unknown\r\n554 5.5.1 no valid recipients\r\n"
        b"250 ok\r\n250 ok\r\n250 2.0.0 Ok: 26 bytes\r\n",
    ),
    *QUIT,
]

ITEMS = [(MSG, "a@x", ["b@y"]), (MSG, "a@x", ["nobody@y"]), (MSG, "a@x", ["b@y"])]


def _check_many(outcomes: list[object]) -> None:
    assert [type(o).__name__ for o in outcomes] == ["SendResult", "RecipientsRefused", "SendResult"]
    refused = outcomes[1]
    assert isinstance(refused, errors.RecipientsRefused)
    assert refused.refused["nobody@y"].code == 550


@pytest.mark.parametrize("script", [MANY_DATA, MANY_BDAT], ids=["data", "bdat"])
def test_send_many_sync(script: list[tuple[object, ...]]) -> None:
    with ScriptedServer(script) as server:
        with Client(
            "127.0.0.1", server.port, tls="none", local_hostname="client.test", timeout=3
        ) as client:
            outcomes = client.send_many(ITEMS)
    assert server.errors == []
    _check_many(list(outcomes))


@pytest.mark.parametrize("script", [MANY_DATA, MANY_BDAT], ids=["data", "bdat"])
def test_send_many_async(script: list[tuple[object, ...]]) -> None:
    # The same call returns the same shape on both clients: a list (issue 10, item 1).
    async def main() -> list[SendResult | BaseException]:
        async with AsyncClient(
            "127.0.0.1", server.port, tls="none", local_hostname="client.test", timeout=3
        ) as client:
            return await client.send_many(ITEMS)

    with ScriptedServer(script) as server:
        outcomes = asyncio.run(main())
    assert server.errors == []
    assert isinstance(outcomes, list)
    _check_many(list(outcomes))


@pytest.mark.parametrize("script", [MANY_DATA, MANY_BDAT], ids=["data", "bdat"])
def test_send_many_iter_streams_the_same_outcomes_on_both_clients(
    script: list[tuple[object, ...]],
) -> None:
    async def main() -> list[object]:
        async with AsyncClient(
            "127.0.0.1", server.port, tls="none", local_hostname="client.test", timeout=3
        ) as client:
            return [o async for o in client.send_many_iter(ITEMS)]

    with ScriptedServer(script) as server:
        outcomes = asyncio.run(main())
    assert server.errors == []
    _check_many(outcomes)
    with ScriptedServer(script) as server:
        with Client(
            "127.0.0.1", server.port, tls="none", local_hostname="client.test", timeout=3
        ) as client:
            streamed = client.send_many_iter(ITEMS)
            assert not isinstance(streamed, list)
            _check_many(list(streamed))
    assert server.errors == []


def test_send_many_reports_every_message_when_the_connection_drops() -> None:
    script = [
        *GREET,
        ("S", b"250-mx.test\r\n250-PIPELINING\r\n250 CHUNKING\r\n"),
        ("C", b"MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nBDAT 26 LAST\r\n" + MSG),
        ("S", b"250 ok\r\n250 ok\r\n"),
        ("CLOSE",),
    ]
    with ScriptedServer(script) as server:
        with Client(
            "127.0.0.1", server.port, tls="none", local_hostname="client.test", timeout=3
        ) as client:
            outcomes = client.send_many([ITEMS[0]] * 3, window=2)
    assert len(outcomes) == 3
    # 1 and 2 were written in full (BDAT ... LAST): they may have been delivered;
    # 3 was never sent, and says so.
    assert isinstance(outcomes[0], errors.PossiblyDelivered)
    assert isinstance(outcomes[1], errors.PossiblyDelivered)
    assert isinstance(outcomes[2], errors.ServerDisconnected)
    assert not isinstance(outcomes[2], errors.PossiblyDelivered)
    assert "not sent" in str(outcomes[2])


# -- BINARYMIME (RFC 3030 §3) ----------------------------------------------------------

BINARY = b"Content-Type: application/octet-stream\r\n\r\n\x00\x01bare\nlf\rcr\x00"


def test_binary_content_goes_by_bdat_binarymime_unchanged() -> None:
    script = [
        *GREET,
        ("S", b"250-mx.test\r\n250-PIPELINING\r\n250-CHUNKING\r\n250 BINARYMIME\r\n"),
        (
            "C",
            b"MAIL FROM:<a@x> BODY=BINARYMIME\r\nRCPT TO:<b@y>\r\n"
            + f"BDAT {len(BINARY)} LAST\r\n".encode()
            + BINARY,
        ),
        ("S", b"250 ok\r\n250 ok\r\n250 ok\r\n"),
        *QUIT,
    ]
    with ScriptedServer(script) as server:
        with Client(
            "127.0.0.1", server.port, tls="none", local_hostname="client.test", timeout=3
        ) as client:
            assert client.send(BINARY, sender="a@x", recipients=["b@y"]).accepted == ["b@y"]
    assert server.errors == []


def test_binary_content_without_binarymime_is_refused_before_mail() -> None:
    script = [*GREET, ("S", b"250-mx.test\r\n250-CHUNKING\r\n250 8BITMIME\r\n"), *QUIT]
    with ScriptedServer(script) as server:
        with Client(
            "127.0.0.1", server.port, tls="none", local_hostname="client.test", timeout=3
        ) as client:
            with pytest.raises(errors.ExtensionNotSupported, match="BINARYMIME"):
                client.send(BINARY, sender="a@x", recipients=["b@y"])
            assert client.connected
    assert server.errors == []


def test_send_many_falls_back_to_lock_step_when_pipelining_misbehaves() -> None:
    """A server that offers PIPELINING but answers a group out of step (chatmail#4006)."""
    first = [
        *GREET,
        ("S", b"250-mx.test\r\n250 PIPELINING\r\n"),
        ("C", b"MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n"),
        # MAIL is answered twice: every later pairing would be wrong.
        ("S", b"250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n"),
        ("DRAIN", 1.0),
    ]
    lock_step = [
        *GREET,
        ("S", b"250-mx.test\r\n250 PIPELINING\r\n"),
        *[
            step
            for _ in range(2)
            for step in [
                ("C", b"MAIL FROM:<a@x>\r\n"),
                ("S", b"250 ok\r\n"),
                ("C", b"RCPT TO:<b@y>\r\n"),
                ("S", b"250 ok\r\n"),
                ("C", b"DATA\r\n"),
                ("S", b"354 go\r\n"),
                ("C", WIRE),
                ("S", b"250 queued\r\n"),
            ]
        ],
        *QUIT,
    ]
    with ScriptedServer(first, then=[lock_step]) as server:
        with Client(
            "127.0.0.1", server.port, tls="none", local_hostname="client.test", timeout=3
        ) as client:
            outcomes = client.send_many([ITEMS[0], ITEMS[0]])
            assert client.pipelining is False
    assert server.errors == []
    assert [type(o).__name__ for o in outcomes] == ["SendResult", "SendResult"]


# --- cancellation through a CancelHandle, the same on both clients --------------------------

BLOCKED_AT_MAIL = [*GREET, ("S", b"250 mx.test\r\n"), ("C", b"MAIL FROM:<a@x>\r\n"), ("SLEEP", 3)]


def test_cancel_handle_breaks_a_blocked_send_on_both_clients() -> None:
    import threading
    import time

    from postwire import CancelHandle

    def sync_send(port: int, handle: CancelHandle) -> None:
        with Client("127.0.0.1", port, tls="none", local_hostname="client.test", timeout=10) as c:
            c.send(b"x\r\n", sender="a@x", recipients=["b@y"], cancel=handle)

    def async_send(port: int, handle: CancelHandle) -> None:
        async def main() -> None:
            async with AsyncClient(
                "127.0.0.1", port, tls="none", local_hostname="client.test", timeout=10
            ) as c:
                await c.send(b"x\r\n", sender="a@x", recipients=["b@y"], cancel=handle)

        asyncio.run(main())

    for send in (sync_send, async_send):
        handle = CancelHandle()
        with ScriptedServer(BLOCKED_AT_MAIL) as server:
            # cancel() from another thread while the send waits for MAIL's reply.
            timer = threading.Timer(0.3, handle.cancel)
            timer.start()
            t0 = time.monotonic()
            with pytest.raises(errors.CancelledSend):
                send(server.port, handle)
            assert time.monotonic() - t0 < 2.5, send.__name__
            timer.join()
        assert handle.cancelled


def test_async_cancel_handle_before_the_commit_sends_no_final_dot() -> None:
    from postwire import CancelHandle

    script = [
        *GREET,
        ("S", b"250 mx.test\r\n"),
        ("C", b"MAIL FROM:<a@x>\r\n"),
        ("S", b"250 ok\r\n"),
        ("C", b"RCPT TO:<b@y>\r\n"),
        ("S", b"250 ok\r\n"),
        ("C", b"DATA\r\n"),
        ("S", b"354 go\r\n"),
        ("DRAIN", 1.0),
    ]
    handle = CancelHandle()

    async def chunks() -> object:
        yield b"Subject: t\r\n\r\nfirst\r\n"
        assert handle.cancel() is True  # from another task, before the hook
        yield b"second\r\n"

    async def main() -> None:
        async with AsyncClient(
            "127.0.0.1", server.port, tls="none", local_hostname="client.test", timeout=5
        ) as c:
            await c.send(chunks(), sender="a@x", recipients=["b@y"], cancel=handle)

    with ScriptedServer(script) as server:
        with pytest.raises(errors.CancelledSend):
            asyncio.run(main())
    assert b"\r\n.\r\n" not in server.all_received
