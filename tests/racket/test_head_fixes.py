"""The five deliberate differences from Racket's net/head (racket-net.md, "postwire.head").

Each test states what Racket 8.7 returns (reference §2) and asserts the fixed behaviour.
"""

from __future__ import annotations

from typing import Any

import pytest

import postwire.head
from postwire.head import (
    data_lines_to_data,
    empty_header,
    extract_addresses,
    extract_all_fields,
    extract_field,
    insert_field,
    remove_field,
    replace_field,
    validate_header,
)

TAB_FOLDED = "Subject: a\r\n\tb: c\r\nX: y\r\n\r\n"


# -- Fix 1: a TAB-folded line is a continuation even if it contains a colon --


def test_fix1_extract_field_keeps_tab_folded_colon_line() -> None:
    # Racket: "a" (the folded line "\tb: c" is taken for a new field)
    assert extract_field("Subject", TAB_FOLDED) == "a\r\n\tb: c"
    assert extract_field(b"Subject", TAB_FOLDED.encode()) == b"a\r\n\tb: c"
    assert extract_field("X", TAB_FOLDED) == "y"


def test_fix1_extract_all_fields() -> None:
    # Racket: [("Subject", "a"), ("\tb", "c"), ("X", "y")]
    assert extract_all_fields(TAB_FOLDED) == [("Subject", "a\r\n\tb: c"), ("X", "y")]


def test_fix1_replace_field_replaces_the_whole_folded_value() -> None:
    # Racket: "Subject: z\r\n\tb: c\r\nX: y\r\n\r\n" (the fold survives as a stray line)
    assert replace_field("Subject", "z", TAB_FOLDED) == "Subject: z\r\nX: y\r\n\r\n"


def test_fix1_remove_field_removes_the_whole_folded_value() -> None:
    # Racket: "\tb: c\r\nX: y\r\n\r\n"
    assert remove_field("Subject", TAB_FOLDED) == "X: y\r\n\r\n"
    assert remove_field(b"Subject", TAB_FOLDED.encode()) == b"X: y\r\n\r\n"


def test_fix1_data_lines_to_data_values_survive_colons() -> None:
    value = data_lines_to_data(["see https://example.org/x", "at 10:30", "done"])
    header = insert_field("X-Notes", value, insert_field("After", "1", empty_header))
    validate_header(header)
    assert extract_field("X-Notes", header) == value
    assert extract_field("After", header) == "1"
    assert [name for name, _ in extract_all_fields(header)] == ["X-Notes", "After"]


def test_fix1_space_folds_still_work() -> None:
    assert extract_field("Subject", "Subject: a\r\n b: c\r\nX: y\r\n\r\n") == "a\r\n b: c"


# -- Fix 2: extract_all_fields skips TABs after the colon ------------------


def test_fix2_extract_all_fields_skips_tabs() -> None:
    header = "Tabbed:\t\t \tTAB\r\nSpaced:   x\r\n\r\n"
    # Racket: [("Tabbed", "\t\t \tTAB"), ("Spaced", "x")]
    assert extract_all_fields(header) == [("Tabbed", "TAB"), ("Spaced", "x")]
    # now consistent with extract_field
    for name, value in extract_all_fields(header):
        assert extract_field(name, header) == value


def test_fix2_bytes() -> None:
    assert extract_all_fields(b"A:\tb\r\n\r\n") == [(b"A", b"b")]


# -- Fix 3: empty address-list elements are skipped ------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (",a@b", ["a@b"]),  # Racket: ["", "a@b"]
        ("a@b,,c@d", ["a@b", "c@d"]),  # Racket: ["a@b", "", "c@d"]
        (" , a@b , ,\t, c@d,", ["a@b", "c@d"]),
        (",,,", []),  # Racket: ["", "", ""]
    ],
)
def test_fix3_empty_elements_skipped(line: str, expected: list[str]) -> None:
    assert extract_addresses(line, "address") == expected
    assert extract_addresses(line, "name") == expected
    assert extract_addresses(line, "full") == expected
    assert extract_addresses(line, "all") == [(a, a, a) for a in expected]


def test_fix3_null_address_is_not_an_empty_element() -> None:
    # "<>" is an explicit (null) address, not an empty element: kept as in Racket
    assert extract_addresses("<>, a@b", "address") == ["", "a@b"]


# -- Fix 4: validate_header rejects empty names and bare CR/LF in a line --


@pytest.mark.parametrize(
    "header",
    [
        ": x\r\n\r\n",  # Racket: accepted
        "A: b\r\n: x\r\n\r\n",
    ],
)
def test_fix4_empty_field_name(header: str) -> None:
    with pytest.raises(ValueError, match="validate_header: empty field name"):
        validate_header(header)
    with pytest.raises(ValueError, match="validate_header: empty field name"):
        validate_header(header.encode())


@pytest.mark.parametrize(
    "header",
    [
        "A: b\nc\r\n\r\n",  # Racket: accepted
        "A: b\rc\r\n\r\n",
        "A: b\r\n continued\nBcc: smuggled\r\n\r\n",
        "A: b\r\r\n\r\n",
    ],
)
def test_fix4_bare_cr_or_lf(header: str) -> None:
    with pytest.raises(ValueError, match="validate_header: bare CR or LF inside a line"):
        validate_header(header)
    with pytest.raises(ValueError, match="validate_header: bare CR or LF inside a line"):
        validate_header(header.encode())


def test_fix4_keeps_racket_messages_for_racket_errors() -> None:
    # Racket already rejects this one ("missing ending CRLF"); the message is unchanged.
    with pytest.raises(ValueError, match="missing ending CRLF"):
        validate_header("From: a\r\nMissingReturn: och\n\r\n")


def test_fix4_continuation_line_with_leading_colon_is_fine() -> None:
    validate_header("A: b\r\n :c\r\n\r\n")


# -- Fix 5: errors name the raising function; ValueError / TypeError -------

H: Any = postwire.head  # untyped access, to make the calls the type checker forbids


@pytest.mark.parametrize(
    ("call", "error", "prefix"),
    [
        (lambda: H.validate_header(""), ValueError, "validate_header: "),
        (lambda: H.validate_header(1), TypeError, "validate_header: "),
        (lambda: H.extract_field(1, "\r\n"), TypeError, "extract_field: "),
        (lambda: H.extract_field("a", 1), TypeError, "extract_field: "),
        (lambda: H.insert_field("a", "b", 1), TypeError, "insert_field: "),
        (lambda: H.replace_field(b"a", "b", "\r\n"), TypeError, "replace_field: "),
        (lambda: H.remove_field(b"a", "\r\n"), TypeError, "remove_field: "),
        (lambda: H.extract_all_fields(None), TypeError, "extract_all_fields: "),
        (lambda: H.append_headers("", ""), ValueError, "append_headers: "),
        (lambda: H.extract_addresses("(x) a", "name"), ValueError, "extract_addresses: "),
        (lambda: H.extract_addresses("a<b<c", "name"), ValueError, "extract_addresses: "),
        (lambda: H.extract_addresses("a", "bad"), ValueError, "extract_addresses: "),
        (
            lambda: H.standard_message_header("a", 1, [], [], "s"),
            TypeError,
            "standard_message_header: ",
        ),
        (lambda: H.data_lines_to_data([1]), TypeError, "data_lines_to_data: "),
    ],
)
def test_fix5_errors_name_the_function(call: object, error: type[Exception], prefix: str) -> None:
    assert callable(call)
    with pytest.raises(error) as info:
        call()
    assert str(info.value).startswith(prefix)


def test_fix5_racket_name_extract_address_is_gone() -> None:
    # Racket says "extract-address: ..." (singular, a different procedure's name)
    with pytest.raises(ValueError) as info:
        extract_addresses("a,(b) c", "address")
    assert "extract-address" not in str(info.value)
    assert str(info.value) == "extract_addresses: cannot parse address: (b) c"
