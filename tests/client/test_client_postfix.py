"""``postwire.client.Client`` against the private Postfix (+ Dovecot SASL) on 127.0.0.1.

Messages to ``*@test.example`` land in the instance's Maildir; :func:`strip_trace` takes off
what Postfix added on delivery, so the tests compare the bytes that arrived with the bytes sent.
What went over the wire is seen through the client's transcript or, on plain-text connections,
through a :class:`WireTap` relay.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from postwire.client import Client
from postwire.errors import (
    ExtensionNotSupported,
    MessageTooLarge,
    RecipientsRefused,
)
from servers.postfix import PostfixServer, strip_trace
from test_client_capture import WireTap, sent_lines

TIMEOUT = 10.0  # every network step of every client in this file
WAIT = 20.0  # seconds for Postfix to deliver into the Maildir
SENDER = "sender@client.example"
ALICE = "alice@test.example"
BOB = "bob@test.example"  # the SASL user with a non-ASCII password
CAROL = "carol@test.example"
ELSEWHERE = "someone@example.org"  # not a local domain: 554, relaying denied

# Every line here is one DATA would get wrong without dot-stuffing (RFC 5321 §4.5.2), plus
# a 998-octet line (the longest RFC 5322 §2.1.1 allows) and 8-bit UTF-8 (RFC 6152).
LONG_LINE = b"L" * 990 + b"-998-end"
MESSAGE = (
    b"From: Sender <sender@client.example>\r\n"
    b"To: Alice <alice@test.example>\r\n"
    b"Subject: postwire byte-exact test\r\n"
    b"Message-ID: <byte-exact@client.example>\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n"
    b".starts with a dot\r\n"
    b"..starts with two dots\r\n"
    b".\r\n"
    b"the line above is a single dot\r\n"
    b". dot and space\r\n"
    b"\r\n"
    b" \r\n"
    + LONG_LINE
    + b"\r\n"
    + "8-bit: Grüße, ÄÖÜ ß € 日本語 🚀\r\n".encode()
    + b"last line\r\n"
)
assert len(LONG_LINE) == 998


def client_for(server: PostfixServer, port: int | None = None, **kwargs: Any) -> Client:
    """A client for the instance (``smtp_port`` by default) that trusts its CA."""
    kwargs.setdefault("timeout", TIMEOUT)
    if kwargs.get("tls", "starttls") != "none":
        kwargs.setdefault("cafile", server.ca_file)
    return Client(server.host, port or server.smtp_port, **kwargs)


def login(server: PostfixServer, user: str = ALICE, **kwargs: Any) -> dict[str, Any]:
    return {"username": user, "password": server.users[user], **kwargs}


def delivered(server: PostfixServer, count: int) -> list[bytes]:
    """The ``count`` delivered messages as sent (trace fields removed, CRLF restored)."""
    raws = server.wait_for_messages(count, WAIT)
    assert len(raws) == count, f"{len(raws)} messages delivered, expected {count}"
    return [strip_trace(raw) for raw in raws]


@pytest.fixture
def tap_to() -> Iterator[Callable[[int], WireTap]]:
    """Start :class:`WireTap` relays towards a port; all are closed after the test."""
    taps: list[WireTap] = []

    def start(port: int) -> WireTap:
        tap = WireTap(port)
        taps.append(tap)
        return tap

    yield start
    for tap in taps:
        tap.close()


# -- TLS and AUTH ----------------------------------------------------------------------------


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN", "CRAM-MD5"])
def test_starttls_and_auth_mechanism(postfix_inbox: PostfixServer, mechanism: str) -> None:
    transcript: list[str] = []
    with client_for(
        postfix_inbox,
        auth_mechanism=mechanism,
        transcript=transcript.append,
        **login(postfix_inbox),
    ) as client:
        assert client.tls_active
        result = client.send(MESSAGE, sender=SENDER, recipients=[ALICE])
    assert result.ok
    assert result.reply.code == 250
    sent = sent_lines(transcript)
    assert sent.index("STARTTLS") < next(i for i, s in enumerate(sent) if s.startswith("AUTH"))
    assert [s.split()[1] for s in sent if s.startswith("AUTH ")] == [mechanism]
    assert any("<- 235 " in line for line in transcript)
    assert delivered(postfix_inbox, 1) == [MESSAGE]


def test_auth_plain_with_a_utf8_password(postfix_inbox: PostfixServer) -> None:
    assert not postfix_inbox.users[BOB].isascii()
    with client_for(postfix_inbox, auth_mechanism="PLAIN", **login(postfix_inbox, BOB)) as client:
        client.send(MESSAGE, sender=BOB, recipients=[ALICE])
    assert delivered(postfix_inbox, 1) == [MESSAGE]


def test_strongest_mechanism_against_postfix_is_cram_md5(postfix: PostfixServer) -> None:
    transcript: list[str] = []
    with client_for(postfix, transcript=transcript.append, **login(postfix)) as client:
        assert client.extensions.auth_mechanisms == {"PLAIN", "LOGIN", "CRAM-MD5"}
        assert client.noop().code == 250
    assert [s for s in sent_lines(transcript) if s.startswith("AUTH")] == ["AUTH CRAM-MD5"]


def test_implicit_tls_on_the_smtps_port(postfix_inbox: PostfixServer) -> None:
    transcript: list[str] = []
    with client_for(
        postfix_inbox,
        postfix_inbox.smtps_port,
        tls="implicit",
        transcript=transcript.append,
        **login(postfix_inbox),
    ) as client:
        assert client.tls_active
        assert not client.extensions.starttls
        client.send(MESSAGE, sender=SENDER, recipients=[ALICE])
    assert "STARTTLS" not in sent_lines(transcript)
    assert delivered(postfix_inbox, 1) == [MESSAGE]


def test_submission_port_offers_auth_only_after_starttls(postfix_inbox: PostfixServer) -> None:
    transcript: list[str] = []
    with client_for(
        postfix_inbox,
        postfix_inbox.submission_port,
        transcript=transcript.append,
        **login(postfix_inbox),
    ) as client:
        assert client.tls_active
        assert "CRAM-MD5" in client.extensions.auth_mechanisms
        client.send(MESSAGE, sender=SENDER, recipients=[ALICE])
    tls_at = next(i for i, line in enumerate(transcript) if "** TLS started" in line)
    before, after = transcript[:tls_at], transcript[tls_at:]
    assert not any("<- 250-AUTH" in line or "<- 250 AUTH" in line for line in before)
    assert any("<- 250-AUTH" in line for line in after)
    assert delivered(postfix_inbox, 1) == [MESSAGE]


def test_submission_port_without_tls_offers_no_auth(postfix: PostfixServer) -> None:
    client = client_for(
        postfix,
        postfix.submission_port,
        tls="none",
        allow_plaintext_auth=True,
        **login(postfix),
    )
    with pytest.raises(ExtensionNotSupported) as err:
        client.connect()
    assert err.value.step == "AUTH"
    assert not client.connected


def test_plaintext_auth_on_the_smtp_port_when_allowed(postfix_inbox: PostfixServer) -> None:
    with client_for(
        postfix_inbox,
        tls="none",
        auth_mechanism="LOGIN",
        allow_plaintext_auth=True,
        **login(postfix_inbox),
    ) as client:
        assert not client.tls_active
        client.send(MESSAGE, sender=SENDER, recipients=[ALICE])
    assert delivered(postfix_inbox, 1) == [MESSAGE]


# -- PIPELINING and CHUNKING -----------------------------------------------------------------


PATHS = [
    pytest.param({}, id="default"),
    pytest.param({"chunking": False}, id="no-chunking"),
    pytest.param({"pipelining": False}, id="no-pipelining"),
    pytest.param({"pipelining": False, "chunking": False}, id="neither"),
]


def is_pipelined(transcript: list[str]) -> bool:
    """Whether RCPT went out before the reply to MAIL came back (RFC 2920)."""
    mail_at = next(i for i, line in enumerate(transcript) if " -> MAIL FROM:" in line)
    return " -> RCPT TO:" in transcript[mail_at + 1]


@pytest.mark.parametrize("options", PATHS)
def test_transfer_paths_are_byte_exact(
    postfix_inbox: PostfixServer,
    tap_to: Callable[[int], WireTap],
    options: dict[str, bool],
) -> None:
    # Plain text, so that the relay sees BDAT or DATA; Postfix advertises both extensions.
    tap = tap_to(postfix_inbox.smtp_port)
    transcript: list[str] = []
    chunking = options.get("chunking", True)
    pipelining = options.get("pipelining", True)
    with Client(
        postfix_inbox.host,
        tap.port,
        tls="none",
        timeout=TIMEOUT,
        transcript=transcript.append,
        pipelining=pipelining,
        chunking=chunking,
    ) as client:
        assert client.extensions.pipelining
        assert client.extensions.chunking
        result = client.send(MESSAGE, sender=SENDER, recipients=[ALICE, CAROL])
    assert result.accepted == [ALICE, CAROL]
    wire = tap.wait_idle()
    if chunking:
        # RFC 3030: the content goes as it is (no dot-stuffing) after "BDAT <size> LAST".
        assert f"BDAT {len(MESSAGE)} LAST\r\n".encode() + MESSAGE in wire
        assert b"\r\nDATA\r\n" not in wire
    else:
        assert b"BDAT" not in wire
        stuffed = MESSAGE.replace(b"\r\n.", b"\r\n..")
        assert b"\r\nDATA\r\n" + stuffed + b".\r\n" in wire
    assert is_pipelined(transcript) == pipelining
    # Each recipient gets its own copy.
    assert delivered(postfix_inbox, 2) == [MESSAGE, MESSAGE]


@pytest.mark.parametrize("chunking", [True, False], ids=["bdat", "data"])
def test_bare_cr_and_lf_become_crlf_on_the_wire(
    postfix_inbox: PostfixServer, tap_to: Callable[[int], WireTap], chunking: bool
) -> None:
    # RFC 5321 §2.3.8: only CRLF ends a line.  Bare LF before a dot is the SMTP smuggling
    # pattern ("\n.\r\n"); the client must never pass it through.
    content = b"Subject: bare\n\nline one\nsmuggle?\n.\r\nMAIL FROM:<x@y>\rtail"
    tap = tap_to(postfix_inbox.smtp_port)
    with Client(
        postfix_inbox.host, tap.port, tls="none", timeout=TIMEOUT, chunking=chunking
    ) as client:
        assert client.send(content, sender=SENDER, recipients=[ALICE]).ok
    wire = tap.wait_idle()
    assert b"\n" not in wire.replace(b"\r\n", b"")
    assert b"\r" not in wire.replace(b"\r\n", b"")
    expected = b"Subject: bare\r\n\r\nline one\r\nsmuggle?\r\n.\r\nMAIL FROM:<x@y>\r\ntail\r\n"
    assert delivered(postfix_inbox, 1) == [expected]


@pytest.mark.parametrize("options", PATHS)
def test_several_messages_over_one_connection(
    postfix_inbox: PostfixServer, options: dict[str, bool]
) -> None:
    bodies = [MESSAGE.replace(b"byte-exact@", f"n{i}@".encode()) for i in range(3)]
    with client_for(postfix_inbox, **login(postfix_inbox), **options) as client:
        for body in bodies:
            assert client.send(body, sender=SENDER, recipients=[ALICE]).ok
    assert sorted(delivered(postfix_inbox, 3)) == sorted(bodies)


# -- recipients ------------------------------------------------------------------------------


@pytest.mark.parametrize("options", PATHS)
def test_partly_refused_recipients_are_reported(
    postfix_inbox: PostfixServer, options: dict[str, bool]
) -> None:
    rejected = postfix_inbox.rejected_recipient
    with client_for(postfix_inbox, **login(postfix_inbox), **options) as client:
        result = client.send(MESSAGE, sender=SENDER, recipients=[rejected, ALICE])
    assert result.accepted == [ALICE]
    assert list(result.refused) == [rejected]
    reply = result.refused[rejected]
    assert reply.code == 550
    assert reply.is_permanent
    assert "Recipient rejected by test policy" in reply.text
    assert not result.ok
    assert result.reply.code == 250
    assert delivered(postfix_inbox, 1) == [MESSAGE]


# Regression: Session.run() once closed the socket on any exception from a procedure, so after
# RecipientsRefused (RSET already sent and answered 250) the next send got ServerDisconnected.
@pytest.mark.parametrize("options", PATHS)
def test_all_refused_raises_and_the_connection_stays_usable(
    postfix_inbox: PostfixServer, options: dict[str, bool]
) -> None:
    rejected = postfix_inbox.rejected_recipient
    transcript: list[str] = []
    with client_for(
        postfix_inbox, transcript=transcript.append, **login(postfix_inbox), **options
    ) as client:
        with pytest.raises(RecipientsRefused) as err:
            client.send(MESSAGE, sender=SENDER, recipients=[rejected, ELSEWHERE])
        refused = err.value.refused
        assert list(refused) == [rejected, ELSEWHERE]
        assert refused[rejected].code == 550
        assert refused[ELSEWHERE].code == 554
        assert "Relay access denied" in refused[ELSEWHERE].text
        for addr, reply in refused.items():
            assert f"{addr}: {reply.code}" in str(err.value)
        assert err.value.is_permanent
        # The failed transaction was reset (RFC 5321 §4.1.1.5) and the session goes on.
        assert client.connected
        assert "RSET" in sent_lines(transcript)
        second = MESSAGE.replace(b"byte-exact@", b"after-refusal@")
        assert client.send(second, sender=SENDER, recipients=[ALICE]).ok
    assert delivered(postfix_inbox, 1) == [second]


@pytest.mark.parametrize("options", PATHS)
def test_tempfail_recipient_is_transient(
    postfix_inbox: PostfixServer, options: dict[str, bool]
) -> None:
    tempfail = postfix_inbox.tempfail_recipient
    with client_for(postfix_inbox, **login(postfix_inbox), **options) as client:
        result = client.send(MESSAGE, sender=SENDER, recipients=[ALICE, tempfail])
        assert result.accepted == [ALICE]
        reply = result.refused[tempfail]
        assert reply.code == 450
        assert reply.is_transient
        assert not reply.is_permanent
        assert "try later" in reply.text
        with pytest.raises(RecipientsRefused) as err:
            client.send(MESSAGE, sender=SENDER, recipients=[tempfail])
        assert err.value.refused[tempfail].is_transient
        assert err.value.is_transient
    assert delivered(postfix_inbox, 1) == [MESSAGE]


# -- streamed content ------------------------------------------------------------------------


def big_message(size: int) -> bytes:
    """About ``size`` bytes of CRLF lines, with dot lines and 8-bit text throughout."""
    lines = [
        b"From: <sender@client.example>",
        b"To: <alice@test.example>",
        b"Subject: big",
        b"",
    ]
    total = 0
    i = 0
    while total < size:
        if i % 50 == 0:
            line = b"."
        elif i % 7 == 0:
            line = b".dot line %d" % i
        else:
            line = b"%07d " % i + "äöü €".encode() + b"x" * 60
        lines.append(line)
        total += len(line) + 2
        i += 1
    return b"\r\n".join(lines) + b"\r\n"


@pytest.mark.parametrize("chunking", [True, False], ids=["bdat", "data"])
def test_two_mib_from_a_binary_file(
    postfix_inbox: PostfixServer, tmp_path: Path, chunking: bool
) -> None:
    content = big_message(2 * 1024 * 1024)
    path = tmp_path / "big.eml"
    path.write_bytes(content)
    transcript: list[str] = []
    with (
        client_for(
            postfix_inbox, chunking=chunking, transcript=transcript.append, **login(postfix_inbox)
        ) as client,
        path.open("rb") as f,
    ):
        assert client.send(f, sender=SENDER, recipients=[ALICE]).ok
    # The file's size is known, so SIZE is declared (RFC 1870).
    assert any(f"SIZE={len(content)}" in line for line in sent_lines(transcript))
    assert delivered(postfix_inbox, 1) == [content]


@pytest.mark.parametrize("chunking", [True, False], ids=["bdat", "data"])
def test_iterable_of_byte_chunks(postfix_inbox: PostfixServer, chunking: bool) -> None:
    content = MESSAGE + big_message(300_000)
    # Odd chunk sizes split CRLF pairs and "\r\n." sequences across chunk boundaries.
    cuts = [0]
    step = 1
    while cuts[-1] < len(content):
        cuts.append(min(len(content), cuts[-1] + step))
        step = step * 3 % 4099 + 1
    seen: list[int] = []

    def chunks() -> Iterator[bytes]:
        for start, end in itertools.pairwise(cuts):
            seen.append(end)
            yield content[start:end]

    with client_for(postfix_inbox, chunking=chunking, **login(postfix_inbox)) as client:
        assert client.send(chunks(), sender=SENDER, recipients=[ALICE]).ok
    assert seen[-1] == len(content)
    assert delivered(postfix_inbox, 1) == [content]


def test_message_over_the_size_limit_is_refused_before_any_data(
    postfix_inbox: PostfixServer,
) -> None:
    transcript: list[str] = []
    with client_for(postfix_inbox, transcript=transcript.append, **login(postfix_inbox)) as client:
        limit = client.extensions.max_size
        assert limit == 30 * 1024 * 1024
        too_big = b"Subject: too big\r\n\r\n" + b"x" * limit
        with pytest.raises(MessageTooLarge) as err:
            client.send(too_big, sender=SENDER, recipients=[ALICE])
        assert str(limit) in str(err.value)
        assert str(len(too_big)) in str(err.value)
    sent = sent_lines(transcript)
    assert not any(line.startswith(("MAIL", "RCPT", "DATA", "BDAT")) for line in sent)
    assert not any(line.startswith("<message content") for line in sent)


# Regression (same cause as above): MessageTooLarge is raised before any byte of the
# transaction is sent, so the connection must stay open for the next, smaller message.
def test_connection_stays_usable_after_message_too_large(postfix_inbox: PostfixServer) -> None:
    with client_for(postfix_inbox, **login(postfix_inbox)) as client:
        limit = client.extensions.max_size
        assert limit is not None
        with pytest.raises(MessageTooLarge):
            client.send(b"x" * (limit + 1), sender=SENDER, recipients=[ALICE])
        assert client.connected
        assert client.send(MESSAGE, sender=SENDER, recipients=[ALICE]).ok
    assert delivered(postfix_inbox, 1) == [MESSAGE]
