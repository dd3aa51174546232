"""Date and Message-ID for messages that lack them (issue 10, item 3), on bytes."""

from __future__ import annotations

import email
import email.policy
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postwire._core.identification import (
    add_missing_fields,
    domain_of,
    make_message_id,
    message_id_of,
    missing_fields,
)

MSG_ID = re.compile(r"<[a-z2-7]+\.[a-z2-7]+@[A-Za-z0-9.-]+>\Z")


def test_message_ids_are_well_formed_and_unique() -> None:
    ids = {make_message_id("example.org") for _ in range(2000)}
    assert len(ids) == 2000
    assert all(MSG_ID.match(i) and i.endswith("@example.org>") for i in ids)
    assert make_message_id("bücher.example").endswith("@xn--bcher-kva.example>")
    assert make_message_id("[192.0.2.1]").endswith("@192.0.2.1>")
    assert make_message_id("").endswith("@localhost>")


@pytest.mark.parametrize(
    ("address", "domain"),
    [
        ("ada@example.org", "example.org"),
        ("Ada <ada@mail.example.org>", "mail.example.org"),
        ("ada@[192.0.2.1]", "192.0.2.1"),
        ("no-domain", "fallback.test"),
        ("", "fallback.test"),
        (None, "fallback.test"),
    ],
)
def test_domain_of(address: str | None, domain: str) -> None:
    assert domain_of(address, "fallback.test") == domain


def test_both_fields_added_first_with_the_message_line_ending() -> None:
    data = b"From: a@example.org\r\nSubject: x\r\n\r\nbody\r\n"
    out, msg_id = add_missing_fields(data, domain="example.org")
    assert msg_id is not None and MSG_ID.match(msg_id)
    assert out.endswith(data)
    added = out[: -len(data)]
    assert added.startswith(b"Date: ") and added.count(b"\r\n") == 2
    assert f"Message-ID: {msg_id}\r\n".encode() in added
    parsed = email.message_from_bytes(out, policy=email.policy.default)
    assert parsed["Message-ID"] == msg_id and parsed["Date"].datetime is not None
    lf, _ = add_missing_fields(data.replace(b"\r\n", b"\n"), domain="example.org")
    assert b"\r" not in lf


def test_present_fields_are_kept_and_reported() -> None:
    data = b"Date: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID:\r\n <kept@x>\r\n\r\nbody\r\n"
    assert missing_fields(data) == (False, False)
    assert add_missing_fields(data, domain="example.org") == (data, "<kept@x>")
    assert message_id_of(data) == "<kept@x>"


def test_only_the_header_section_counts() -> None:
    # A "Message-ID:" line in the body is not a header field; a folded line is not a field.
    data = b"Subject: x\r\n Message-ID: not-a-field\r\n\r\nMessage-ID: <body@x>\r\n"
    assert missing_fields(data) == (True, True)
    out, msg_id = add_missing_fields(data, domain="d.test", date=False)
    assert msg_id is not None and msg_id != "<body@x>"
    assert not out.startswith(b"Date:")


def test_nothing_asked_nothing_changed() -> None:
    data = b"Subject: x\r\n\r\nbody\r\n"
    assert add_missing_fields(data, domain="d.test", date=False, message_id=False) == (data, None)


@given(st.binary(max_size=300))
def test_the_original_bytes_always_follow_unchanged(data: bytes) -> None:
    out, _ = add_missing_fields(data, domain="d.test")
    assert out.endswith(data)
