"""Commands: wire form, and no control character ever reaches the wire."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postwire._core import commands as c


def test_wire_forms() -> None:
    assert c.Ehlo("client.example").to_bytes() == b"EHLO client.example\r\n"
    assert c.Helo("[127.0.0.1]").to_bytes() == b"HELO [127.0.0.1]\r\n"
    assert c.Mail("").to_bytes() == b"MAIL FROM:<>\r\n"
    assert (
        c.Mail("a@x", (("SIZE", "10"), ("BODY", "8BITMIME"), ("SMTPUTF8", None))).to_bytes()
        == b"MAIL FROM:<a@x> SIZE=10 BODY=8BITMIME SMTPUTF8\r\n"
    )
    assert c.Rcpt("b@y", (("NOTIFY", "SUCCESS,FAILURE"),)).to_bytes() == (
        b"RCPT TO:<b@y> NOTIFY=SUCCESS,FAILURE\r\n"
    )
    assert c.Rcpt("üser@exämple.org").to_bytes() == "RCPT TO:<üser@exämple.org>\r\n".encode()
    assert c.Bdat(10).to_bytes() == b"BDAT 10\r\n"
    assert c.Bdat(0, last=True).to_bytes() == b"BDAT 0 LAST\r\n"
    assert c.Auth("PLAIN", "AGEAYg==").to_bytes() == b"AUTH PLAIN AGEAYg==\r\n"
    assert c.Auth("LOGIN").to_bytes() == b"AUTH LOGIN\r\n"
    assert c.AuthResponse("").to_bytes() == b"\r\n"
    for cmd, wire in [
        (c.Data(), b"DATA\r\n"),
        (c.Rset(), b"RSET\r\n"),
        (c.Noop(), b"NOOP\r\n"),
        (c.Quit(), b"QUIT\r\n"),
        (c.StartTLS(), b"STARTTLS\r\n"),
    ]:
        assert cmd.to_bytes() == wire


@pytest.mark.parametrize("bad", ["\r", "\n", "\0", "\x1b", "\x7f", "\t"])
def test_controls_refused_everywhere(bad: str) -> None:
    builders = [
        lambda: c.Ehlo(f"a{bad}b"),
        lambda: c.Helo(f"a{bad}b"),
        lambda: c.Mail(f"a{bad}@x"),
        lambda: c.Rcpt(f"b{bad}@y"),
        lambda: c.Mail("a@x", (("SIZE", f"1{bad}0"),)),
        lambda: c.Mail("a@x", ((f"X{bad}", None),)),
        lambda: c.Rcpt("b@y", (("NOTIFY", f"NEVER{bad}"),)),
        lambda: c.Auth(f"PLAIN{bad}"),
        lambda: c.Auth("PLAIN", f"abc{bad}"),
        lambda: c.AuthResponse(f"abc{bad}"),
    ]
    for build in builders:
        with pytest.raises(ValueError):
            build()


def test_other_bad_arguments() -> None:
    with pytest.raises(ValueError, match="angle"):
        c.Mail("<a@x>")
    with pytest.raises(ValueError, match="empty"):
        c.Rcpt("")
    with pytest.raises(ValueError, match="space"):
        c.Mail("a@x", (("SIZE", "1 2"),))
    with pytest.raises(ValueError):
        c.Bdat(-1)
    with pytest.raises(ValueError):
        c.Ehlo("")
    with pytest.raises(ValueError, match="RFC 5321"):
        c.Rcpt("a" * 250 + "@x.org")
    with pytest.raises(TypeError):
        c.Mail(b"a@x")  # type: ignore[arg-type]
    # credentials never echoed in errors
    with pytest.raises(ValueError) as info:
        c.Auth("PLAIN", "secret password")
    assert "secret" not in str(info.value)


@given(st.text(max_size=40))
def test_one_line_or_value_error(text: str) -> None:
    for build in (c.Mail, c.Rcpt):
        try:
            wire = build(text).to_bytes()
        except ValueError:
            continue
        assert wire.count(b"\r") == 1 and wire.count(b"\n") == 1 and wire.endswith(b"\r\n")
        assert b"\0" not in wire
