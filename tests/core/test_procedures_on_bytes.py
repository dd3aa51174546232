"""Greeting, STARTTLS, AUTH, the transaction and the batch, decided on bytes alone.

Each row drives a core procedure with scripted server turns (:mod:`drive`) and
states the exact writes (one entry per write: a pipelined group is one write)
and the outcome.  No socket, no driver: what is tested is the protocol's
decisions, which both clients and the Racket layer share.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import pytest

from drive import TLS, drive, greeted
from postwire import SendResult, errors
from postwire._core import procedures
from postwire._core.batch import send_batch
from postwire._core.connection import SMTPConnection
from postwire._core.effects import Effect
from postwire._core.message import PreparedMessage, prepare_message
from postwire._core.reply import Reply
from postwire._core.sasl import Login, Plain
from postwire._core.transaction import transaction

Proc = Callable[[SMTPConnection], Generator[Effect, Reply | None, Any]]

MSG = b"Subject: t\r\n\r\nbody\r\n.dot\r\n"
WIRE = b"Subject: t\r\n\r\nbody\r\n..dot\r\n.\r\n"
PLAIN_EHLO = b"250 mx.test\r\n"
PIPE_EHLO = b"250-mx.test\r\n250 PIPELINING\r\n"
CHUNK_EHLO = b"250-mx.test\r\n250-PIPELINING\r\n250 CHUNKING\r\n"
TLS_EHLO = b"250-mx.test\r\n250 STARTTLS\r\n"
AUTH_EHLO = b"250-mx.test\r\n250 AUTH PLAIN LOGIN\r\n"


@dataclass
class Row:
    name: str
    proc: Proc
    turns: list[bytes]
    writes: list[bytes]
    ehlo: bytes | None = PLAIN_EHLO
    error: type[BaseException] | None = None
    match: str = ""
    check: Callable[[Any, SMTPConnection], None] = field(default=lambda value, conn: None)


def _message(recipients: list[str], content: bytes = MSG) -> PreparedMessage:
    return prepare_message(content, sender="a@x", recipients=recipients)


def tx(*recipients: str, **options: Any) -> Proc:
    def proc(conn: SMTPConnection) -> Generator[Effect, Reply | None, Any]:
        message = _message(list(recipients) or ["b@y"])
        return transaction(conn, message.envelope, message.content, **options)

    return proc


def _accepted(*addresses: str, refused: tuple[str, ...] = ()) -> Callable[[Any, Any], None]:
    def check(value: Any, conn: SMTPConnection) -> None:
        assert isinstance(value, SendResult)
        assert value.accepted == list(addresses)
        assert sorted(value.refused) == sorted(refused)

    return check


# --- the session's steps --------------------------------------------------------------------

SESSION = [
    Row(
        "greet: EHLO",
        lambda conn: procedures.greet(conn, "client.test"),
        [b"220 mx.test ESMTP\r\n", PIPE_EHLO],
        [b"EHLO client.test\r\n"],
        ehlo=None,
        check=lambda value, conn: (value.code == 250 and conn.extensions.pipelining) or None,
    ),
    Row(
        "greet: EHLO unknown, HELO",
        lambda conn: procedures.greet(conn, "client.test"),
        [b"220 mx\r\n", b"502 unknown\r\n", b"250 mx\r\n"],
        [b"EHLO client.test\r\n", b"HELO client.test\r\n"],
        ehlo=None,
        check=lambda value, conn: (value.code == 250 and not conn.extensions.pipelining) or None,
    ),
    Row(
        "greet: 554 instead of 220",
        lambda conn: procedures.greet(conn, "client.test"),
        [b"554 no service\r\n"],
        [],
        ehlo=None,
        error=errors.GreetingError,
        match="554",
    ),
    Row(
        "greet: closed before the greeting",
        lambda conn: procedures.greet(conn, "client.test"),
        [],
        [],
        ehlo=None,
        error=errors.ServerDisconnected,
        match="greeting",
    ),
    Row(
        "greet: EHLO answered 421",
        lambda conn: procedures.greet(conn, "client.test"),
        [b"220 mx\r\n", b"421 4.3.2 shutting down\r\n"],
        [b"EHLO client.test\r\n"],
        ehlo=None,
        error=errors.ServerDisconnected,
        match="closing",
    ),
    Row(
        "greet: EHLO and HELO refused",
        lambda conn: procedures.greet(conn, "client.test"),
        [b"220 mx\r\n", b"500 what\r\n", b"550 go away\r\n"],
        [b"EHLO client.test\r\n", b"HELO client.test\r\n"],
        ehlo=None,
        error=errors.HeloError,
        match="HELO",
    ),
    Row(
        "STARTTLS: handshake, then EHLO again",
        lambda conn: procedures.starttls(conn, "client.test"),
        [b"220 go ahead\r\n", b"250-mx.test\r\n250 AUTH PLAIN\r\n"],
        [b"STARTTLS\r\n", TLS, b"EHLO client.test\r\n"],
        ehlo=TLS_EHLO,
        check=lambda value, conn: (conn.tls_active and conn.extensions.auth_mechanisms) or None,
    ),
    Row(
        "STARTTLS: not offered (stripped)",
        lambda conn: procedures.starttls(conn, "client.test"),
        [],
        [],
        error=errors.TLSRequired,
        match="does not offer STARTTLS",
    ),
    Row(
        "STARTTLS: refused",
        lambda conn: procedures.starttls(conn, "client.test"),
        [b"454 4.7.0 TLS not available\r\n"],
        [b"STARTTLS\r\n"],
        ehlo=TLS_EHLO,
        error=errors.StartTLSError,
    ),
    Row(
        "STARTTLS: bytes injected after the 220",
        lambda conn: procedures.starttls(conn, "client.test"),
        [b"220 go ahead\r\n250 injected\r\n"],
        [b"STARTTLS\r\n"],
        ehlo=TLS_EHLO,
        error=errors.ProtocolError,
    ),
    Row(
        "AUTH PLAIN with an initial response",
        lambda conn: procedures.authenticate(conn, Plain("ada", "s3cret")),
        [b"235 2.7.0 ok\r\n"],
        [b"AUTH PLAIN AGFkYQBzM2NyZXQ=\r\n"],
        ehlo=AUTH_EHLO,
        check=lambda value, conn: (value.code == 235) or None,
    ),
    Row(
        "AUTH LOGIN: two challenges",
        lambda conn: procedures.authenticate(conn, Login("ada", "s3cret")),
        [b"334 VXNlcm5hbWU6\r\n", b"334 UGFzc3dvcmQ6\r\n", b"235 ok\r\n"],
        [b"AUTH LOGIN\r\n", b"YWRh\r\n", b"czNjcmV0\r\n"],
        ehlo=AUTH_EHLO,
    ),
    Row(
        "AUTH: credentials refused",
        lambda conn: procedures.authenticate(conn, Plain("ada", "wrong")),
        [b"535 5.7.8 bad credentials\r\n"],
        [b"AUTH PLAIN AGFkYQB3cm9uZw==\r\n"],
        ehlo=AUTH_EHLO,
        error=errors.AuthenticationError,
        match="535",
    ),
    Row(
        "AUTH: a challenge that is not base64 is cancelled with '*'",
        lambda conn: procedures.authenticate(conn, Login("ada", "s3cret")),
        [b"334 !!!\r\n", b"501 cancelled\r\n"],
        [b"AUTH LOGIN\r\n", b"*\r\n"],
        ehlo=AUTH_EHLO,
        error=errors.AuthenticationError,
        match="501",
    ),
    Row(
        "NOOP",
        procedures.noop,
        [b"250 ok\r\n"],
        [b"NOOP\r\n"],
    ),
    Row(
        "QUIT",
        procedures.quit,
        [b"221 bye\r\n"],
        [b"QUIT\r\n"],
    ),
]

# --- one transaction --------------------------------------------------------------------------

TRANSACTION = [
    Row(
        "lock-step: one write per command",
        tx("b@y"),
        [b"250 ok\r\n", b"250 ok\r\n", b"354 go\r\n", b"250 queued\r\n"],
        [b"MAIL FROM:<a@x>\r\n", b"RCPT TO:<b@y>\r\n", b"DATA\r\n", WIRE],
        check=_accepted("b@y"),
    ),
    Row(
        "lock-step: sender refused, then RSET",
        tx("b@y"),
        [b"550 5.7.1 no\r\n", b"250 reset\r\n"],
        [b"MAIL FROM:<a@x>\r\n", b"RSET\r\n"],
        error=errors.SenderRefused,
    ),
    Row(
        "pipelined: MAIL, RCPTs and DATA in one write; one recipient refused",
        tx("b@y", "c@z"),
        [b"250 ok\r\n550 5.1.1 unknown\r\n250 ok\r\n354 go\r\n", b"250 queued\r\n"],
        [b"MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nRCPT TO:<c@z>\r\nDATA\r\n", WIRE],
        ehlo=PIPE_EHLO,
        check=_accepted("c@z", refused=("b@y",)),
    ),
    Row(
        "pipelined: every recipient refused, DATA refused, RSET",
        tx("b@y"),
        [b"250 ok\r\n550 unknown\r\n554 no valid recipients\r\n", b"250 reset\r\n"],
        [b"MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n", b"RSET\r\n"],
        ehlo=PIPE_EHLO,
        error=errors.RecipientsRefused,
    ),
    Row(
        "pipelined: DATA accepted though no recipient was: a lone '.' (RFC 2920 §3.1)",
        tx("b@y"),
        [b"250 ok\r\n550 unknown\r\n354 go\r\n", b"554 no recipients\r\n"],
        [b"MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n", b".\r\n"],
        ehlo=PIPE_EHLO,
        error=errors.RecipientsRefused,
    ),
    Row(
        "pipelined: a lone '.' then the server closes: not delivered",
        tx("b@y"),
        [b"250 ok\r\n550 unknown\r\n354 go\r\n"],
        [b"MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n", b".\r\n"],
        ehlo=PIPE_EHLO,
        error=errors.ServerDisconnected,
        match="not delivered",
    ),
    Row(
        "pipelined: DATA answered 2xx: out of step",
        tx("b@y"),
        [b"250 ok\r\n250 ok\r\n250 extra\r\n"],
        [b"MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n"],
        ehlo=PIPE_EHLO,
        error=errors.ProtocolError,
        match="out of step",
    ),
    Row(
        "DATA answered 421",
        tx("b@y"),
        [b"250 ok\r\n250 ok\r\n421 4.3.2 bye\r\n"],
        [b"MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n"],
        ehlo=PIPE_EHLO,
        error=errors.ServerDisconnected,
        match="DATA failed: server replied 421",
    ),
    Row(
        "closed after the final '.': possibly delivered",
        tx("b@y"),
        [b"250 ok\r\n250 ok\r\n354 go\r\n"],
        [b"MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n", WIRE],
        ehlo=PIPE_EHLO,
        error=errors.PossiblyDelivered,
    ),
    Row(
        "421 after the final '.': not delivered",
        tx("b@y"),
        [b"250 ok\r\n250 ok\r\n354 go\r\n", b"421 4.3.2 bye\r\n"],
        [b"MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n", WIRE],
        ehlo=PIPE_EHLO,
        error=errors.ServerDisconnected,
        match="end of data failed: server replied 421",
    ),
    Row(
        "end of data refused",
        tx("b@y"),
        [b"250 ok\r\n250 ok\r\n354 go\r\n", b"554 5.7.1 spam\r\n"],
        [b"MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n", WIRE],
        ehlo=PIPE_EHLO,
        error=errors.DataError,
        match="554",
    ),
    Row(
        "BDAT: the whole transaction in one write (RFC 3030 §4.2)",
        tx("b@y"),
        [b"250 ok\r\n250 ok\r\n250 queued\r\n"],
        [b"MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nBDAT 26 LAST\r\n" + MSG],
        ehlo=CHUNK_EHLO,
        check=_accepted("b@y"),
    ),
    Row(
        "BDAT refused, then RSET",
        tx("b@y"),
        [b"250 ok\r\n250 ok\r\n554 5.6.0 bad\r\n", b"250 reset\r\n"],
        [b"MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nBDAT 26 LAST\r\n" + MSG, b"RSET\r\n"],
        ehlo=CHUNK_EHLO,
        error=errors.DataError,
        match="BDAT",
    ),
    Row(
        "BDAT answered 421: not delivered",
        tx("b@y"),
        [b"250 ok\r\n250 ok\r\n421 bye\r\n"],
        [b"MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nBDAT 26 LAST\r\n" + MSG],
        ehlo=CHUNK_EHLO,
        error=errors.ServerDisconnected,
        match="421",
    ),
    Row(
        "require_all (Racket): one refused recipient abandons the message before DATA",
        tx("b@y", "c@z", require_all=True),
        [b"250 ok\r\n250 ok\r\n550 unknown\r\n", b"250 reset\r\n"],
        [b"MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nRCPT TO:<c@z>\r\n", b"RSET\r\n"],
        ehlo=PIPE_EHLO,
        error=errors.RecipientsRefused,
    ),
]


@pytest.mark.parametrize("row", SESSION + TRANSACTION, ids=lambda r: r.name)
def test_procedure_on_bytes(row: Row) -> None:
    conn = greeted(row.ehlo) if row.ehlo is not None else SMTPConnection()
    done = drive(row.proc(conn), conn, row.turns)
    assert done.writes == row.writes
    assert done.unread == []
    if row.error is None:
        assert done.error is None, done.error
        row.check(done.value, conn)
    else:
        assert isinstance(done.error, row.error), done.error
        if row.error is errors.ServerDisconnected:
            assert not isinstance(done.error, errors.PossiblyDelivered), done.error
        assert row.match in str(done.error)


# --- many messages, pipelined -----------------------------------------------------------------


@dataclass
class BatchRow:
    name: str
    ehlo: bytes
    recipients: list[list[str]]
    turns: list[bytes]
    writes: list[bytes]
    #: Per message: "sent", or the error class.
    outcomes: list[Any]
    error: type[BaseException] | None = None


GROUP_1 = b"MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n"
GROUP_2 = b"MAIL FROM:<a@x>\r\nRCPT TO:<c@z>\r\nDATA\r\n"

BATCH = [
    BatchRow(
        "DATA: each '.' goes with the next message's group (RFC 2920 §3.1)",
        PIPE_EHLO,
        [["b@y"], ["c@z"]],
        [
            b"250 ok\r\n250 ok\r\n354 go\r\n",
            b"250 queued 1\r\n250 ok\r\n250 ok\r\n354 go\r\n",
            b"250 queued 2\r\n",
        ],
        [GROUP_1, WIRE + GROUP_2, WIRE],
        ["sent", "sent"],
    ),
    BatchRow(
        "DATA: the second message refused, the first delivered",
        PIPE_EHLO,
        [["b@y"], ["c@z"]],
        [
            b"250 ok\r\n250 ok\r\n354 go\r\n",
            b"250 queued 1\r\n250 ok\r\n550 no\r\n554 none\r\n",
            b"250 reset\r\n",
        ],
        [GROUP_1, WIRE + GROUP_2, b"RSET\r\n"],
        ["sent", errors.RecipientsRefused],
    ),
    BatchRow(
        "DATA: closed after the first '.': it may be delivered, the second was not",
        PIPE_EHLO,
        [["b@y"], ["c@z"]],
        [b"250 ok\r\n250 ok\r\n354 go\r\n"],
        [GROUP_1, WIRE + GROUP_2],
        [errors.PossiblyDelivered, errors.ServerDisconnected],
        error=errors.ServerDisconnected,
    ),
    BatchRow(
        "DATA: a lone '.' for a refused message, then the server closes: not delivered",
        PIPE_EHLO,
        [["b@y"]],
        [b"250 ok\r\n550 no\r\n354 go\r\n"],
        [GROUP_1, b".\r\n"],
        [errors.ServerDisconnected],
        error=errors.ServerDisconnected,
    ),
    BatchRow(
        "DATA: an extra reply puts DATA out of step",
        PIPE_EHLO,
        [["b@y"]],
        [b"250 ok\r\n250 ok\r\n250 extra\r\n"],
        [GROUP_1],
        [errors.ProtocolError],
        error=errors.ProtocolError,
    ),
    BatchRow(
        "BDAT: a window of transactions in one write",
        CHUNK_EHLO,
        [["b@y"], ["c@z"]],
        [b"250 ok\r\n250 ok\r\n250 queued 1\r\n250 ok\r\n250 ok\r\n250 queued 2\r\n"],
        [
            b"MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nBDAT 26 LAST\r\n"
            + MSG
            + b"MAIL FROM:<a@x>\r\nRCPT TO:<c@z>\r\nBDAT 26 LAST\r\n"
            + MSG
        ],
        ["sent", "sent"],
    ),
    BatchRow(
        "BDAT: 421 to the first: neither is possibly delivered",
        CHUNK_EHLO,
        [["b@y"], ["c@z"]],
        [b"250 ok\r\n250 ok\r\n421 4.3.2 bye\r\n"],
        [
            b"MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nBDAT 26 LAST\r\n"
            + MSG
            + b"MAIL FROM:<a@x>\r\nRCPT TO:<c@z>\r\nBDAT 26 LAST\r\n"
            + MSG
        ],
        [errors.ServerDisconnected, errors.ServerDisconnected],
        error=errors.ServerDisconnected,
    ),
]


@pytest.mark.parametrize("row", BATCH, ids=lambda r: r.name)
def test_batch_on_bytes(row: BatchRow) -> None:
    conn = greeted(row.ehlo)
    items = [(i, _message(rcpts)) for i, rcpts in enumerate(row.recipients)]
    outcomes: dict[int, Any] = {}
    done = drive(send_batch(conn, items, outcomes.__setitem__), conn, row.turns)
    assert done.writes == row.writes
    assert done.unread == []
    if row.error is None:
        assert done.error is None, done.error
    else:
        assert isinstance(done.error, row.error), done.error
    # Exactly one outcome per message, whatever happened to the connection.
    assert sorted(outcomes) == list(range(len(row.recipients)))
    for i, expected in enumerate(row.outcomes):
        got = outcomes[i]
        if expected == "sent":
            assert isinstance(got, SendResult), got
        else:
            assert isinstance(got, expected), got
            if expected is errors.ServerDisconnected:
                assert not isinstance(got, errors.PossiblyDelivered), got


# --- SMTPUTF8 for raw UTF-8 in header fields (issue 10, item 4) -----------------------------

UTF8_SUBJECT = "Subject: Grüße\r\n\r\nbody\r\n".encode()
LATIN1_SUBJECT = "Subject: Grüße\r\n\r\nbody\r\n".encode("latin-1")


@pytest.mark.parametrize(
    ("ehlo", "content", "mail"),
    [
        (
            b"250-mx\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n",
            UTF8_SUBJECT,
            b"MAIL FROM:<a@x> BODY=8BITMIME SMTPUTF8\r\n",
        ),
        # A server without SMTPUTF8 gets it as 8-bit content, as before (documented).
        (b"250-mx\r\n250 8BITMIME\r\n", UTF8_SUBJECT, b"MAIL FROM:<a@x> BODY=8BITMIME\r\n"),
        # 8-bit but not UTF-8: not an internationalized message.
        (
            b"250-mx\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n",
            LATIN1_SUBJECT,
            b"MAIL FROM:<a@x> BODY=8BITMIME\r\n",
        ),
        # UTF-8 in the body only: 8BITMIME is enough.
        (
            b"250-mx\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n",
            "Subject: x\r\n\r\nGrüße\r\n".encode(),
            b"MAIL FROM:<a@x> BODY=8BITMIME\r\n",
        ),
    ],
)
def test_smtputf8_is_declared_for_utf8_headers_when_offered(
    ehlo: bytes, content: bytes, mail: bytes
) -> None:
    conn = greeted(ehlo)
    message = prepare_message(content, sender="a@x", recipients=["b@y"])
    done = drive(
        transaction(conn, message.envelope, message.content),
        conn,
        [b"250 ok\r\n", b"250 ok\r\n", b"354 go\r\n", b"250 queued\r\n"],
    )
    assert done.error is None, done.error
    assert done.writes[0] == mail


# --- pipelining limits (issue 10, item 7) --------------------------------------------------


def test_a_pipelined_group_never_has_more_than_100_unanswered_commands() -> None:
    conn = greeted(PIPE_EHLO)
    recipients = [f"r{i}@y" for i in range(250)]
    message = _message(recipients)
    ok = b"250 ok\r\n"
    # MAIL + 99 RCPT, then 100 RCPT, then 51 RCPT + DATA: each group answered in one turn.
    turns = [ok * 100, ok * 100, ok * 51 + b"354 go\r\n", b"250 queued\r\n"]
    done = drive(transaction(conn, message.envelope, message.content), conn, turns)
    assert done.error is None, done.error
    assert [w.count(b"\r\n") for w in done.writes[:3]] == [100, 100, 52]
    assert done.writes[0].startswith(b"MAIL FROM:<a@x>\r\nRCPT TO:<r0@y>\r\n")
    assert done.writes[2].endswith(b"RCPT TO:<r249@y>\r\nDATA\r\n")
    assert done.value.accepted == recipients


def test_a_batch_sends_a_message_with_many_recipients_in_bounded_groups() -> None:
    conn = greeted(CHUNK_EHLO)
    many = [f"r{i}@y" for i in range(150)]
    items = [(0, _message(["b@y"])), (1, _message(many)), (2, _message(["c@z"]))]
    ok = b"250 ok\r\n"
    turns = [
        ok * 3,  # message 1 (MAIL, RCPT, BDAT LAST): collected before the big one
        ok * 100,  # the big one: MAIL + 99 RCPT
        ok * 51 + ok,  # 51 RCPT, then its BDAT LAST
        ok * 3,  # message 3
    ]
    outcomes: dict[int, object] = {}
    done = drive(send_batch(conn, items, outcomes.__setitem__), conn, turns)
    assert done.error is None, done.error
    assert max(w.count(b"\r\n") for w in done.writes) <= 101  # 100 commands (+ the chunk's line)
    assert all(isinstance(o, SendResult) for o in outcomes.values()), outcomes
    result = outcomes[1]
    assert isinstance(result, SendResult) and result.accepted == many


def test_an_extra_reply_in_a_bdat_window_is_found_before_any_outcome() -> None:
    conn = greeted(CHUNK_EHLO)
    items = [(0, _message(["b@y"])), (1, _message(["c@z"]))]
    # An unsolicited line after the first MAIL reply shifts every later pairing.
    turns = [b"250 ok\r\n250 extra\r\n250 ok\r\n250 queued\r\n250 ok\r\n250 ok\r\n250 queued\r\n"]
    outcomes: dict[int, object] = {}
    done = drive(send_batch(conn, items, outcomes.__setitem__), conn, turns)
    assert isinstance(done.error, errors.ProtocolError)
    assert sorted(outcomes) == [0, 1]
    assert all(isinstance(o, errors.PossiblyDelivered) for o in outcomes.values()), outcomes


def test_the_greeting_is_kept() -> None:
    conn = SMTPConnection()
    turns = [b"220 mx.test ESMTP Postfix\r\n", PLAIN_EHLO]
    done = drive(procedures.greet(conn, "client.test"), conn, turns)
    assert done.error is None
    assert conn.greeting is not None and conn.greeting.text == "mx.test ESMTP Postfix"


# --- DSN (RFC 3461) and REQUIRETLS (RFC 8689), issue 14 ------------------------------------

DSN_EHLO = b"250-mx.test\r\n250-PIPELINING\r\n250-SMTPUTF8\r\n250 DSN\r\n"


def test_dsn_parameters_on_mail_and_each_rcpt() -> None:
    from postwire import DSN

    conn = greeted(DSN_EHLO)
    dsn = DSN(notify=["failure", "delay"], ret="hdrs", envid="id=42 ü", orcpt=True)
    message = prepare_message(MSG, sender="a@x", recipients=["b+tag@y", "jörg@z"], dsn=dsn)
    done = drive(
        transaction(conn, message.envelope, message.content),
        conn,
        [b"250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n", b"250 queued\r\n"],
    )
    assert done.error is None, done.error
    assert (
        done.writes[0]
        == (
            "MAIL FROM:<a@x> SMTPUTF8 RET=HDRS ENVID=id+3D42+20+C3+BC\r\n"
            "RCPT TO:<b+tag@y> NOTIFY=FAILURE,DELAY ORCPT=rfc822;b+2Btag@y\r\n"
            "RCPT TO:<jörg@z> NOTIFY=FAILURE,DELAY ORCPT=utf-8;jörg@z\r\n"
            "DATA\r\n"
        ).encode()
    )


def test_dsn_is_refused_before_mail_without_the_extension() -> None:
    from postwire import DSN

    conn = greeted(PIPE_EHLO)
    message = prepare_message(MSG, sender="a@x", recipients=["b@y"], dsn=DSN(notify="never"))
    done = drive(transaction(conn, message.envelope, message.content), conn, [])
    assert isinstance(done.error, errors.ExtensionNotSupported)
    assert "DSN" in str(done.error) and done.writes == []


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"notify": ["never", "success"]}, "NEVER cannot be combined"),
        ({"notify": "sometimes"}, "notify must be"),
        ({"ret": "body"}, "FULL or HDRS"),
        ({"envid": "x" * 101}, "1 to 100"),
        ({"envid": "a\r\nb"}, "printable"),
    ],
)
def test_dsn_options_are_checked(bad: dict[str, Any], message: str) -> None:
    from postwire import DSN

    with pytest.raises(ValueError, match=message):
        DSN(**bad)


def test_requiretls_needs_tls_and_the_extension() -> None:
    offered = b"250-mx.test\r\n250 REQUIRETLS\r\n"
    message = prepare_message(MSG, sender="a@x", recipients=["b@y"], requiretls=True)
    plain = greeted(offered)
    done = drive(transaction(plain, message.envelope, message.content), plain, [])
    assert isinstance(done.error, errors.TLSRequired) and done.writes == []
    tls = SMTPConnection()
    tls.implicit_tls()
    drive(procedures.greet(tls, "client.test"), tls, [b"220 mx\r\n", b"250 mx.test\r\n"])
    done = drive(transaction(tls, message.envelope, message.content), tls, [])
    assert isinstance(done.error, errors.ExtensionNotSupported) and done.writes == []
    tls = SMTPConnection()
    tls.implicit_tls()
    drive(procedures.greet(tls, "client.test"), tls, [b"220 mx\r\n", offered])
    turns = [b"250 ok\r\n", b"250 ok\r\n", b"354 go\r\n", b"250 queued\r\n"]
    done = drive(transaction(tls, message.envelope, message.content), tls, turns)
    assert done.error is None and done.writes[0] == b"MAIL FROM:<a@x> REQUIRETLS\r\n"


# --- LMTP (RFC 2033): one reply per accepted recipient after the data -------------------------

LHLO = b"250-lmtp.test\r\n250-PIPELINING\r\n250 ENHANCEDSTATUSCODES\r\n"
LMTP_GROUP = b"MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nRCPT TO:<c@z>\r\nRCPT TO:<d@w>\r\nDATA\r\n"


def _lmtp() -> SMTPConnection:
    conn = SMTPConnection(lmtp=True)
    done = drive(procedures.greet(conn, "client.test"), conn, [b"220 lmtp\r\n", LHLO])
    assert done.writes == [b"LHLO client.test\r\n"] and done.error is None
    return conn


@pytest.mark.parametrize(
    ("finals", "outcome"),
    [
        # d@w refused at RCPT; b@y delivered; c@z refused after the data (a full mailbox).
        ([b"250 2.0.0 ok\r\n552 5.2.2 quota\r\n"], ("sent", ["b@y"], {"c@z": 552, "d@w": 550})),
        ([b"452 4.2.2 full\r\n552 5.2.2 quota\r\n"], (errors.RecipientsRefused, None, None)),
        # The server drops after one recipient's reply: the other may have it too.
        ([b"250 2.0.0 ok\r\n"], (errors.PossiblyDelivered, None, None)),
        # A 421 for the second is that recipient's answer: not delivered (and the end).
        ([b"250 2.0.0 ok\r\n421 4.3.2 bye\r\n"], ("sent", ["b@y"], {"c@z": 421, "d@w": 550})),
        # Nothing at all after the ".": possibly delivered, as for SMTP.
        ([], (errors.PossiblyDelivered, None, None)),
    ],
    ids=["one fails after the data", "all fail", "drop after one", "421 after one", "no reply"],
)
def test_lmtp_replies_after_the_data(finals: list[bytes], outcome: tuple[Any, Any, Any]) -> None:
    conn = _lmtp()
    message = _message(["b@y", "c@z", "d@w"])
    turns = [b"250 ok\r\n250 ok\r\n250 ok\r\n550 5.1.1 unknown\r\n354 go\r\n", *finals]
    done = drive(transaction(conn, message.envelope, message.content), conn, turns)
    assert done.writes == [LMTP_GROUP, WIRE]  # DATA, never BDAT, in LMTP
    kind, accepted, refused = outcome
    if kind == "sent":
        assert done.error is None, done.error
        assert done.value.accepted == accepted
        assert {k: r.code for k, r in done.value.refused.items()} == refused
        assert done.value.refused["c@z"].command == "end of data"
    else:
        assert isinstance(done.error, kind), done.error
        if kind is errors.RecipientsRefused:
            assert done.error.step == "end of data"


@pytest.mark.parametrize(
    ("finals", "delivered", "refused", "unknown"),
    [
        ([b"250 2.0.0 ok\r\n"], ("b@y",), {"d@w": 550}, ("c@z",)),
        ([b"552 5.2.2 quota\r\n"], (), {"b@y": 552, "d@w": 550}, ("c@z",)),
        ([], (), {}, ()),  # nothing learned: as over SMTP
    ],
    ids=["delivered then drop", "refused then drop", "drop at once"],
)
def test_a_drop_among_lmtp_replies_keeps_what_was_learned(
    finals: list[bytes], delivered: tuple[str, ...], refused: dict[str, int],
    unknown: tuple[str, ...],
) -> None:  # fmt: skip
    """The outbox must not resend to a recipient LMTP already said was delivered."""
    conn = _lmtp()
    message = _message(["b@y", "c@z", "d@w"])
    turns = [b"250 ok\r\n250 ok\r\n250 ok\r\n550 5.1.1 unknown\r\n354 go\r\n", *finals]
    done = drive(transaction(conn, message.envelope, message.content), conn, turns)
    error = done.error
    assert isinstance(error, errors.PossiblyDelivered), error
    assert error.delivered == delivered and error.unknown == unknown
    assert {k: r.code for k, r in error.refused.items()} == refused
    if finals:
        assert "may have been delivered to the others" in str(error)


def test_lmtp_has_no_helo_fallback_and_no_batch() -> None:
    conn = SMTPConnection(lmtp=True)
    done = drive(procedures.greet(conn, "client.test"), conn, [b"220 x\r\n", b"500 what\r\n"])
    assert isinstance(done.error, errors.HeloError) and done.writes == [b"LHLO client.test\r\n"]
    with pytest.raises(ValueError, match="LMTP"):
        next(send_batch(_lmtp(), [], lambda i, o: None))
