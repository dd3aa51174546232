"""SMTPConnection: pairing replies with commands, the state table, STARTTLS safety."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postwire import Reply
from postwire._core import commands as c
from postwire._core.connection import (
    NEED_DATA,
    ConnectionClosed,
    SMTPConnection,
)
from postwire._core.state import SEND, State
from postwire.errors import LocalProtocolError, ProtocolError


def reply(conn: SMTPConnection, data: bytes) -> Reply:
    conn.receive_data(data)
    event = conn.next_event()
    assert isinstance(event, Reply), event
    return event


def ready(ehlo: bytes = b"250-mx\r\n250-PIPELINING\r\n250 STARTTLS\r\n") -> SMTPConnection:
    conn = SMTPConnection()
    assert reply(conn, b"220 mx\r\n").command == "greeting"
    assert conn.state is State.GREETED
    conn.send(c.Ehlo("client.example"))
    assert reply(conn, ehlo).command == "EHLO"
    assert conn.state is State.READY
    return conn


def test_need_data_then_reply() -> None:
    conn = SMTPConnection()
    assert conn.next_event() is NEED_DATA
    conn.receive_data(b"220 mx")
    assert conn.next_event() is NEED_DATA
    conn.receive_data(b"\r\n")
    assert isinstance(conn.next_event(), Reply)


def test_pipelined_replies_pair_in_order() -> None:
    conn = ready()
    wire = b"".join(
        [
            conn.send(c.Mail("a@x")),
            conn.send(c.Rcpt("b@y")),
            conn.send(c.Rcpt("c@z")),
            conn.send(c.Data()),
        ]
    )
    assert wire == b"MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nRCPT TO:<c@z>\r\nDATA\r\n"
    assert conn.state is State.DATA_PENDING
    conn.receive_data(b"250 ok\r\n550 no\r\n250 ok\r\n354 go\r\n")
    got = []
    while isinstance(ev := conn.next_event(), Reply):
        got.append((ev.command, ev.code))
    assert got == [("MAIL", 250), ("RCPT", 550), ("RCPT", 250), ("DATA", 354)]
    assert conn.state is State.DATA
    assert conn.send_data(b".hi\r\n") == b"..hi\r\n"
    assert conn.end_data() == b".\r\n"
    assert conn.state is State.READY
    assert reply(conn, b"250 queued\r\n").command == "end of data"


def test_unsolicited_reply_is_a_protocol_error() -> None:
    conn = ready()
    conn.receive_data(b"250 surprise\r\n")
    with pytest.raises(ProtocolError, match="unsolicited"):
        conn.next_event()
    assert conn.state is State.ERROR
    with pytest.raises(ProtocolError, match="unsolicited"):  # and it stays broken
        conn.next_event()
    with pytest.raises(ProtocolError):
        conn.send(c.Noop())


def test_extra_reply_after_pipelined_group_is_detected() -> None:
    conn = ready()
    conn.send(c.Mail("a@x"))
    conn.receive_data(b"250 ok\r\n250 extra\r\n")
    assert reply(conn, b"").code == 250
    with pytest.raises(ProtocolError, match="unsolicited"):
        conn.next_event()


def test_garbage_is_a_protocol_error() -> None:
    conn = SMTPConnection()
    conn.receive_data(b"HTTP/1.1 400 Bad Request\r\n")
    with pytest.raises(ProtocolError, match="greeting"):
        conn.next_event()


def test_eof_reports_pending_commands() -> None:
    conn = ready()
    conn.send(c.Mail("a@x"))
    conn.send(c.Rcpt("b@y"))
    conn.receive_data(b"250 ok\r\n")
    conn.receive_data(b"")
    assert isinstance(conn.next_event(), Reply)
    event = conn.next_event()
    assert isinstance(event, ConnectionClosed)
    assert [cmd.verb for cmd in event.pending] == ["RCPT"]
    assert conn.state is State.CLOSED


def test_starttls_forgets_extensions_and_refuses_injection() -> None:
    conn = ready()
    conn.send(c.StartTLS())
    assert reply(conn, b"220 go\r\n").code == 220
    assert conn.state is State.TLS_HANDSHAKE
    conn.start_tls()
    assert conn.tls_active and not conn.extensions.esmtp and conn.state is State.GREETED

    conn = ready()
    conn.send(c.StartTLS())
    conn.receive_data(b"220 go\r\n250-injected\r\n")
    assert conn.next_event() == Reply(220, ("go",))
    with pytest.raises(ProtocolError, match="injection"):
        conn.start_tls()


def test_state_table_refuses_out_of_order_commands() -> None:
    conn = SMTPConnection()
    with pytest.raises(LocalProtocolError):
        conn.send(c.Mail("a@x"))
    conn = ready()
    for cmd in (c.Rcpt("b@y"), c.Data(), c.DataEnd(), c.AuthResponse("")):
        with pytest.raises(LocalProtocolError):
            conn.send(cmd)
    with pytest.raises(LocalProtocolError):
        conn.send_data(b"x")


def test_421_closes() -> None:
    conn = ready()
    conn.send(c.Mail("a@x"))
    assert reply(conn, b"421 4.3.2 shutting down\r\n").code == 421
    assert conn.state is State.CLOSED


def test_failed_mail_returns_to_ready_and_bdat_failure_needs_rset() -> None:
    conn = ready()
    conn.send(c.Mail("a@x"))
    reply(conn, b"550 no\r\n")
    assert conn.state is State.READY
    conn.send(c.Mail("a@x"))
    reply(conn, b"250 ok\r\n")
    conn.send(c.Rcpt("b@y"))
    reply(conn, b"250 ok\r\n")
    conn.send_chunk(b"abc", last=False)
    reply(conn, b"552 too big\r\n")
    assert conn.state is State.NEEDS_RSET
    with pytest.raises(LocalProtocolError):
        conn.send(c.Mail("a@x"))
    conn.send(c.Rset())
    assert conn.state is State.READY


def test_old_reply_does_not_move_a_newer_transaction() -> None:
    conn = ready()
    for _ in range(2):
        conn.send(c.Mail("a@x"))
        conn.send(c.Rcpt("b@y"))
        conn.send_chunk(b"x", last=True)
    conn.send(c.Mail("a@x"))
    conn.receive_data(b"550 first mail refused\r\n")
    conn.next_event()
    assert conn.state is State.TRANSACTION  # the third transaction is unaffected


def test_auth_flow_marks_authenticated() -> None:
    conn = ready()
    conn.send(c.Auth("LOGIN"))
    assert reply(conn, b"334 VXNlcm5hbWU6\r\n").code == 334
    conn.send(c.AuthResponse("dXNlcg=="))
    assert reply(conn, b"235 ok\r\n").code == 235
    assert conn.authenticated and conn.state is State.READY


COMMANDS = [
    c.Ehlo("x"),
    c.Helo("x"),
    c.Mail("a@x"),
    c.Rcpt("b@y"),
    c.Data(),
    c.DataEnd(),
    c.Bdat(1),
    c.Rset(),
    c.Noop(),
    c.Quit(),
    c.StartTLS(),
    c.Auth("PLAIN", "AA=="),
    c.AuthResponse(""),
]


@given(
    st.lists(st.sampled_from(COMMANDS), max_size=12),
    st.lists(
        st.sampled_from(
            [
                b"220 x\r\n",
                b"250 x\r\n",
                b"354 x\r\n",
                b"334 x\r\n",
                b"451 x\r\n",
                b"550 x\r\n",
                b"421 x\r\n",
            ]
        ),
        max_size=12,
    ),
)
def test_any_sequence_moves_to_a_valid_state_or_raises_cleanly(
    cmds: list[c.Command], replies: list[bytes]
) -> None:
    conn = SMTPConnection()
    conn.receive_data(b"220 hi\r\n")
    conn.next_event()
    for cmd, data in zip(cmds, replies + [b""] * len(cmds), strict=False):
        try:
            conn.send(cmd)
        except LocalProtocolError:
            assert type(cmd) not in SEND[conn.state]
            continue
        if data:
            conn.receive_data(data)
            try:
                conn.next_event()
            except ProtocolError:
                assert conn.state is State.ERROR
                return
        assert conn.state in State


def test_quiet_commands_have_no_positive_reply_transition() -> None:
    from postwire._core.state import ON_REPLY, QUIET_ON_SUCCESS

    for state, kind, klass in ON_REPLY:
        assert not (kind in QUIET_ON_SUCCESS and klass == 2), (state, kind)
