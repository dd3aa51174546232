"""Fault scripts, each seen by postwire's own client over a real socket."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from catcher_support import WAIT
from postwire import Client, Timeouts
from postwire.capture import CaptureServer, FaultScript, RecipientRule
from postwire.capture.faults import parse_fault, parse_faults
from postwire.errors import AuthenticationError, GreetingError, PossiblyDelivered, Timeout

MESSAGE = b"From: a@example.org\r\nTo: b@example.org\r\nSubject: fault\r\n\r\nbody\r\n"


@pytest.fixture
def catcher() -> Iterator[CaptureServer]:
    with CaptureServer(tls="none", auth={"ada": "pw"}) as server:
        yield server


def client(server: CaptureServer, **kwargs: object) -> Client:
    return Client(server.host, server.port, tls="none", timeout=WAIT, **kwargs)  # type: ignore[arg-type]


def test_recipients_matching_a_pattern_are_refused(catcher: CaptureServer) -> None:
    catcher.faults = FaultScript(
        refuse_recipients=(
            RecipientRule("*@bounce.example", 550, "5.1.1 mailbox unknown"),
            RecipientRule("busy-*", 451),
        )
    )
    with client(catcher) as c:
        result = c.send(
            MESSAGE,
            sender="a@example.org",
            recipients=["ok@example.org", "x@BOUNCE.example", "busy-1@example.org"],
        )
    assert list(result.accepted) == ["ok@example.org"]
    assert str(result.refused["x@BOUNCE.example"]) == "550 5.1.1 mailbox unknown"
    assert result.refused["busy-1@example.org"].code == 451
    assert catcher.wait_for(1)[0].rcpt_tos == ["ok@example.org"]


def test_452_4_5_3_after_n_recipients(catcher: CaptureServer) -> None:
    catcher.faults = FaultScript(max_recipients=2)
    rcpts = [f"r{i}@example.org" for i in range(5)]
    with client(catcher) as c:
        result = c.send(MESSAGE, sender="a@example.org", recipients=rcpts)
        # The limit is per transaction (RFC 5321 section 4.5.3.1.10): the next one starts over.
        again = c.send(MESSAGE, sender="a@example.org", recipients=rcpts[2:4])
    assert list(result.accepted) == rcpts[:2]
    assert {a: str(r) for a, r in result.refused.items()} == {
        a: "452 4.5.3 Too many recipients (fault script)" for a in rcpts[2:]
    }
    assert list(again.accepted) == rcpts[2:4]


def test_421_at_the_greeting(catcher: CaptureServer) -> None:
    catcher.faults = FaultScript(greeting_421=True)
    with pytest.raises(GreetingError) as err:
        client(catcher).connect()
    assert err.value.code == 421
    catcher.faults = FaultScript()
    with client(catcher) as c:
        c.send(MESSAGE, sender="a@example.org", recipients=["b@example.org"])
    assert len(catcher.wait_for(1)) == 1


@pytest.mark.parametrize("code", [535, 454])
def test_auth_refused(catcher: CaptureServer, code: int) -> None:
    catcher.faults = FaultScript(refuse_auth=code)
    c = client(catcher, username="ada", password="pw", allow_plaintext_auth=True)
    with pytest.raises(AuthenticationError) as err:
        c.connect()
    assert err.value.code == code
    c.close()
    assert "fault script" in str(err.value)


def test_connection_dropped_after_the_final_dot(catcher: CaptureServer) -> None:
    catcher.faults = FaultScript(drop_after_data=True)
    with pytest.raises(PossiblyDelivered), client(catcher) as c:
        c.send(MESSAGE, sender="a@example.org", recipients=["b@example.org"])
    # The server kept it: "possibly delivered" was in fact delivered.
    (kept,) = catcher.wait_for(1)
    assert kept.data == MESSAGE
    assert kept.transcript[-1].endswith("bytes of content")


def test_final_reply_delayed(catcher: CaptureServer) -> None:
    catcher.faults = FaultScript(delay_data_reply=1.0)
    impatient = Timeouts(data_end=0.2, data_end_per_mib=0.0)
    with pytest.raises(PossiblyDelivered) as err, client(catcher, timeouts=impatient) as c:
        c.send(MESSAGE, sender="a@example.org", recipients=["b@example.org"])
    assert isinstance(err.value.__cause__, Timeout)  # no reply in time after the "."
    with client(catcher) as c:  # a patient client gets its 250 once the delay is over
        result = c.send(MESSAGE, sender="a@example.org", recipients=["b@example.org"])
    assert result.reply.code == 250


def test_a_mailbox_has_its_own_faults(catcher: CaptureServer) -> None:
    with catcher.open_mailbox("faulty") as box:
        with box.faulty(refuse_recipients={"*@example.org": 550}):
            with Client(box.host, box.port, tls="none", timeout=WAIT) as c:
                refused = c.send(
                    MESSAGE, sender="a@x.org", recipients=["b@example.org", "c@other.org"]
                )
            assert list(refused.refused) == ["b@example.org"]
            with client(catcher) as c:  # the server's own port is unaffected
                assert not c.send(MESSAGE, sender="a@x.org", recipients=["b@example.org"]).refused
        assert not box.faults.active


def test_parse_fault_texts() -> None:
    script = parse_faults(
        [
            "rcpt:*@x.org=550:5.1.1 gone",
            "max-rcpt:3",
            "greeting-421",
            "auth:454",
            "drop-after-data",
            "delay-data:2.5",
        ]
    )
    assert script == FaultScript(
        refuse_recipients=(RecipientRule("*@x.org", 550, "5.1.1 gone"),),
        max_recipients=3,
        greeting_421=True,
        refuse_auth=454,
        drop_after_data=True,
        delay_data_reply=2.5,
    )
    assert FaultScript.from_json(script.to_json()) == script
    for bad in ("rcpt:nocode", "rcpt:*=250", "auth:abc", "max-rcpt:x", "boom", "greeting-421:1"):
        with pytest.raises(ValueError):
            parse_fault(bad)
