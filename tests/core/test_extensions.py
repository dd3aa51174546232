from __future__ import annotations

from postwire import Reply
from postwire._core.extensions import Extensions


def test_parse_ehlo_reply() -> None:
    reply = Reply(
        250,
        (
            "mx.example Hello",
            "PIPELINING",
            "SIZE 10240000",
            "auth plain LOGIN",
            "AUTH=CRAM-MD5",
            "8BITMIME",
            "SMTPUTF8",
            "CHUNKING",
            "DSN",
            "ENHANCEDSTATUSCODES",
            "STARTTLS",
            "",
        ),
    )
    ext = Extensions.from_reply(reply)
    assert ext.esmtp and ext.server_name == "mx.example Hello"
    assert ext.pipelining and ext.chunking and ext.dsn and ext.starttls
    assert ext.smtputf8 and ext.eightbitmime and ext.enhanced_status_codes
    assert not ext.binarymime and not ext.requiretls
    assert ext.max_size == 10240000
    assert ext.auth_mechanisms == {"PLAIN", "LOGIN", "CRAM-MD5"}
    assert ext.has("size") and not ext.has("XCLIENT")


def test_size_without_number_and_helo() -> None:
    assert Extensions.from_reply(Reply(250, ("x", "SIZE"))).max_size == 0
    assert Extensions.from_reply(Reply(250, ("x",))).max_size is None
    empty = Extensions()
    assert not empty.esmtp and not empty.auth_mechanisms and empty.max_size is None
