"""postwire.head: Racket net/head parity (reference §2) and the modern extras."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage

import pytest

from postwire import head
from postwire.address import Address, Group
from postwire.head import (
    HeadSignature,
    append_headers,
    assemble_address_field,
    compose_message,
    data_lines_to_data,
    empty_header,
    extract_addresses,
    extract_all_fields,
    extract_field,
    head_unit,
    header_to_message,
    insert_field,
    message_to_header,
    message_to_parts,
    modern_message_header,
    remove_field,
    replace_field,
    standard_message_header,
    validate_header,
)

TH = "From: abc\r\nTo: field is\r\n continued\r\nAnother: zoo\r\n continued\r\n\r\n"
TZ_MINUS_6 = timezone(timedelta(hours=-6))
WHEN = datetime(2026, 8, 5, 9, 31, 58, tzinfo=TZ_MINUS_6)


def both(text: str) -> list[str | bytes]:
    return [text, text.encode("latin-1")]


# -- 2.1 empty_header ------------------------------------------------------


def test_empty_header_is_one_crlf() -> None:
    assert empty_header == "\r\n"
    validate_header(empty_header)


def test_documented_empty_header_value_is_rejected() -> None:
    # The Racket docs say "\r\n\r\n"; the code (and Racket's own validator) disagree.
    with pytest.raises(ValueError, match=r'ill-formed header at "\\r\\n\\r\\n"'):
        validate_header("\r\n\r\n")


# -- 2.2 validate_header ---------------------------------------------------

VALID = ["\r\n", " cont first\r\n\r\n", TH, "X-Odd\x1b!: y\r\n\r\n", "A:\r\n\r\n"]
INVALID = [
    ("", "missing ending CRLF"),
    ("From: a\r\n", "missing ending CRLF"),
    ("From: a\r\nnocolon inthisline\r\n\r\n", 'ill-formed header at "nocolon inthisline'),
    ("From: a\r\nSpacein Fieldname: och\r\n\r\n", "ill-formed header at"),
    ("Subject : x\r\n\r\n", 'ill-formed header at "Subject : x'),
    ("From: a\r\nMissingReturn: och\n\r\n", "missing ending CRLF"),
    ("A: b\r\n\r\nC: d\r\n\r\n", r'ill-formed header at "\\r\\nC: d\\r\\n\\r\\n"'),
    ("A: b", "missing ending CRLF"),
    ('"Quoted": x\r\n\r\n', "ill-formed header at"),
]


@pytest.mark.parametrize("header", VALID)
def test_validate_header_accepts(header: str) -> None:
    for candidate in both(header):
        validate_header(candidate)


@pytest.mark.parametrize(("header", "message"), INVALID)
def test_validate_header_rejects(header: str, message: str) -> None:
    for candidate in both(header):
        with pytest.raises(ValueError, match=r"^validate_header: "):
            validate_header(candidate)
    with pytest.raises(ValueError, match=message):
        validate_header(header)


def test_validate_header_bytes_error_shows_bytes() -> None:
    with pytest.raises(
        ValueError, match=re.escape("ill-formed header at b'\\r\\nC: d\\r\\n\\r\\n'")
    ):
        validate_header(b"A: b\r\n\r\nC: d\r\n\r\n")


def test_validate_header_non_latin1_string() -> None:
    with pytest.raises(ValueError, match="non-Latin-1 character in string: 'λ'"):
        validate_header("Subject: λ\r\n\r\n")
    validate_header("Subject: é\r\n\r\n")  # Latin-1 is fine
    validate_header("Subject: λ\r\n\r\n".encode())  # bytes get no such check


def test_validate_header_type_error() -> None:
    with pytest.raises(TypeError, match="validate_header"):
        validate_header(42)  # type: ignore[arg-type]


# -- 2.3 extract_field -----------------------------------------------------


@pytest.mark.parametrize(
    ("field", "header", "expected"),
    [
        ("TO", insert_field("to", "me@localhost", empty_header), "me@localhost"),
        ("To", "X-To: a\r\nTo: b\r\n\r\n", "b"),
        ("To", "To: first\r\nTo: second\r\n\r\n", "first"),
        ("Tabbed", "Tabbed:\t\t \tTAB\r\n\r\n", "TAB"),
        ("A", "A: b\r\n", "b\r\n"),
        ("To", TH, "field is\r\n continued"),
        ("another", TH, "zoo\r\n continued"),
        ("From", TH, "abc"),
        ("Subject", "Subject: a\r\n b: c\r\nX: y\r\n\r\n", "a\r\n b: c"),
        ("Missing", TH, None),
        ("A.B", "AxB: 1\r\nA.B: 2\r\n\r\n", "2"),  # the field name is literal
    ],
)
def test_extract_field(field: str, header: str, expected: str | None) -> None:
    assert extract_field(field, header) == expected
    raw = extract_field(field.encode(), header.encode("latin-1"))
    assert raw == (None if expected is None else expected.encode("latin-1"))


def test_extract_field_type_errors() -> None:
    with pytest.raises(TypeError, match=r"(?s)extract_field: .*string field for string header"):
        extract_field(b"To", TH)  # type: ignore[type-var]
    with pytest.raises(TypeError, match=r"(?s)extract_field: .*bytes field for bytes header"):
        extract_field("To", TH.encode())  # type: ignore[type-var]


def test_bytes_field_names_fold_ascii_case_only() -> None:
    assert extract_field(b"\xe9", b"\xc9: x\r\n\r\n") is None
    assert extract_field("é", "É: x\r\n\r\n") == "x"


# -- 2.4 extract_all_fields ------------------------------------------------


def test_extract_all_fields_racket_test() -> None:
    expected = [("From", "abc"), ("To", "field is\r\n continued"), ("Another", "zoo\r\n continued")]
    assert extract_all_fields(TH) == expected
    assert extract_all_fields(TH.encode()) == [(n.encode(), v.encode()) for n, v in expected]


def test_extract_all_fields_keeps_case_order_duplicates() -> None:
    header = "b: 1\r\nA: 2\r\nb: 3\r\n\r\n"
    assert extract_all_fields(header) == [("b", "1"), ("A", "2"), ("b", "3")]


def test_extract_all_fields_edges() -> None:
    assert extract_all_fields(empty_header) == []
    assert extract_all_fields(b"\r\n") == []
    assert extract_all_fields("no colons here\r\n\r\n") == []
    assert extract_all_fields("junk line\r\nA: b\r\n\r\n") == [("A", "b")]
    assert extract_all_fields("Spaced Name: v\r\n\r\n") == [("Spaced Name", "v")]


# -- 2.5 insert_field ------------------------------------------------------


def test_insert_field_prepends() -> None:
    assert insert_field("X", "1", TH) == "X: 1\r\n" + TH
    assert insert_field(b"X", b"1", b"\r\n") == b"X: 1\r\n\r\n"
    assert insert_field("X", "a\r\n b", empty_header) == "X: a\r\n b\r\n\r\n"  # no validation


def test_insert_field_displays_non_strings_like_racket() -> None:
    assert insert_field("Lines", 42, empty_header) == "Lines: 42\r\n\r\n"  # type: ignore[type-var]
    with pytest.raises(TypeError, match="insert_field"):
        insert_field("X", b"1", empty_header)  # type: ignore[type-var]
    with pytest.raises(TypeError, match="insert_field"):
        insert_field(b"X", "1", b"\r\n")  # type: ignore[type-var]


# -- 2.6 replace_field / remove_field --------------------------------------


def test_replace_field_racket_tests() -> None:
    assert replace_field("To", "qrs", TH) == (
        "From: abc\r\nTo: qrs\r\nAnother: zoo\r\n continued\r\n\r\n"
    )
    assert replace_field("Another", "abc\r\n def", TH) == (
        "From: abc\r\nTo: field is\r\n continued\r\nAnother: abc\r\n def\r\n\r\n"
    )


def test_remove_field_racket_test() -> None:
    assert remove_field("To", TH) == "From: abc\r\nAnother: zoo\r\n continued\r\n\r\n"
    assert remove_field(b"To", TH.encode()) == remove_field("To", TH).encode()


def test_replace_field_takes_the_argument_case() -> None:
    assert replace_field("from", "x", "From: a\r\nTo: b\r\n\r\n") == "from: x\r\nTo: b\r\n\r\n"


def test_replace_field_missing_prepends_and_none_is_noop() -> None:
    assert replace_field("New", "v", TH) == "New: v\r\n" + TH
    assert replace_field("New", None, TH) == TH
    assert remove_field("New", TH) == TH


def test_replace_last_field_without_rest() -> None:
    assert replace_field("A", "z", "A: b\r\n") == "A: z\r\n\r\n"
    assert remove_field("A", "A: b\r\n\r\n") == "\r\n"


def test_remove_field_only_first_occurrence() -> None:
    assert remove_field("To", "To: 1\r\nTo: 2\r\n\r\n") == "To: 2\r\n\r\n"


# -- 2.7 append_headers ----------------------------------------------------


def test_append_headers() -> None:
    assert append_headers(TH, "Athird: data\r\n\r\n") == (
        "From: abc\r\nTo: field is\r\n continued\r\nAnother: zoo\r\n continued\r\n"
        "Athird: data\r\n\r\n"
    )
    assert append_headers(empty_header, TH) == TH
    assert append_headers(b"\r\n", b"A: b\r\n\r\n") == b"A: b\r\n\r\n"


def test_append_headers_short_first_argument() -> None:
    for short in ("", "x"):
        with pytest.raises(ValueError, match="append_headers: first argument is not a header"):
            append_headers(short, short)
    with pytest.raises(ValueError, match="append_headers: first argument is not a header"):
        append_headers(b"x", b"x")


def test_append_headers_mixed_types() -> None:
    with pytest.raises(TypeError, match="append_headers"):
        append_headers("\r\n", b"\r\n")  # type: ignore[type-var]


# -- 2.8 standard_message_header -------------------------------------------


def test_standard_message_header_example() -> None:
    header = standard_message_header("a@x", ["b@y", "c@z"], ["d@w"], ["e@v"], "Hi", now=WHEN)
    assert header == (
        "From: a@x\r\nTo: b@y, c@z\r\nCC: d@w\r\nSubject: Hi\r\n"
        "Date: Wed, 5 Aug 2026 09:31:58 -0600\r\n\r\n"
    )
    validate_header(header)


def test_standard_message_header_omits_empty_lists_and_never_writes_bcc() -> None:
    header = standard_message_header("a@x", [], [], ["secret@v"], "Hi", now=WHEN)
    assert header == "From: a@x\r\nSubject: Hi\r\nDate: Wed, 5 Aug 2026 09:31:58 -0600\r\n\r\n"
    assert "secret" not in standard_message_header("a@x", ["b@y"], [], ["secret@v"], "S")


def test_standard_message_header_writes_raw_text() -> None:
    header = standard_message_header("Jörg <j@x>", ["b@y"], [], [], "Grüße", now=WHEN)
    assert "From: Jörg <j@x>\r\n" in header and "Subject: Grüße\r\n" in header


@pytest.mark.parametrize(
    ("offset", "expected"),
    [
        (timedelta(hours=-6), "-0600"),
        (timedelta(hours=-3, minutes=-30), "-0330"),
        (timedelta(minutes=-30), "-0030"),
        (timedelta(hours=5, minutes=30), "+0530"),
        (timedelta(0), "+0000"),
        (timedelta(hours=14), "+1400"),
    ],
)
def test_rfc2822_zone(offset: timedelta, expected: str) -> None:
    now = datetime(2026, 1, 3, 4, 5, 6, tzinfo=timezone(offset))
    header = standard_message_header("a@x", [], [], [], "S", now=now)
    assert extract_field("Date", header) == f"Sat, 3 Jan 2026 04:05:06 {expected}"


def test_default_date_is_local_now() -> None:
    date = extract_field("Date", standard_message_header("a@x", [], [], [], "S"))
    assert date is not None
    assert re.fullmatch(
        r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), [1-9]\d? [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d [+-]\d{4}",
        date,
    )


def test_naive_now_is_local_time() -> None:
    naive = datetime(2026, 8, 5, 9, 31, 58)
    date = extract_field("Date", standard_message_header("a@x", [], [], [], "S", now=naive))
    assert date is not None and date.startswith("Wed, 5 Aug 2026 09:31:58 ")


def test_standard_message_header_type_checks() -> None:
    with pytest.raises(TypeError, match="standard_message_header"):
        standard_message_header("a@x", "b@y", [], [], "S")  # a str is a Sequence[str]...
    with pytest.raises(TypeError, match="standard_message_header"):
        standard_message_header(b"a@x", [], [], [], "S")  # type: ignore[arg-type]


# -- 2.9 data_lines_to_data ------------------------------------------------


def test_data_lines_to_data() -> None:
    assert data_lines_to_data([]) == ""
    assert data_lines_to_data(["one"]) == "one"
    assert data_lines_to_data(["one", "two", "three"]) == "one\r\n\ttwo\r\n\tthree"
    header = insert_field("X-Multi", data_lines_to_data(["a", "b"]), empty_header)
    assert header == "X-Multi: a\r\n\tb\r\n\r\n"
    validate_header(header)


# -- 2.10 extract_addresses ------------------------------------------------

DOC_TABLE = [
    ("John Doe <doe@localhost>", "John Doe", "doe@localhost", "John Doe <doe@localhost>"),
    ("doe@localhost (Johnny Doe)", "Johnny Doe", "doe@localhost", "doe@localhost (Johnny Doe)"),
    ("doe@localhost", "doe@localhost", "doe@localhost", "doe@localhost"),
    ("John Doe   < doe@localhost >", "John Doe", "doe@localhost", "John Doe <doe@localhost>"),
    ("  doe@localhost  (Johnny Doe)", "Johnny Doe", "doe@localhost", "doe@localhost (Johnny Doe)"),
]


@pytest.mark.parametrize(("line", "name", "address", "full"), DOC_TABLE)
def test_extract_addresses_doc_examples(line: str, name: str, address: str, full: str) -> None:
    assert extract_addresses(line, "name") == [name]
    assert extract_addresses(line, "address") == [address]
    assert extract_addresses(line, "full") == [full]
    assert extract_addresses(line, "all") == [(name, address, full)]


def test_extract_addresses_quoted_comma() -> None:
    line = ' "Doe, John" <doe@localhost>, jane'
    assert extract_addresses(line, "name") == ['"Doe, John"', "jane"]
    assert extract_addresses(line, "address") == ["doe@localhost", "jane"]
    assert extract_addresses(line, "full") == ['"Doe, John" <doe@localhost>', "jane"]


def test_extract_addresses_all_doc_example() -> None:
    r = extract_addresses(' "John" <doe@localhost>, jane', "all")
    assert len(r) == 2
    assert r[0] == ('"John"', "doe@localhost", '"John" <doe@localhost>')
    assert r[1] == ("jane", "jane", "jane")


@pytest.mark.parametrize(
    ("line", "name", "address", "full"),
    [
        ("s.gu@x (Gu, Sophia)", "Gu, Sophia", "s.gu@x", "s.gu@x (Gu, Sophia)"),
        ('s.gu@x (Sophia "Sophie" Gu)', 'Sophia "Sophie" Gu', "s.gu@x", None),
        ('"Gu, Sophia (Sophie)" <s.gu@x>', '"Gu, Sophia (Sophie)"', "s.gu@x", None),
        ("John <a@b> (Jr)", "John", "a@b", "John <a@b> (Jr)"),
        ("a@b (c, d)", "c, d", "a@b", None),
        ('"A" junk <a@x> junk', '"A"', "a@x", '"A" <a@x>'),
        ("<a@b> <c@d>", "<a@b>", "c@d", None),
        ("<>", "", "", ""),
        ("john doe@x", "john doe@x", "john doe@x", "john doe@x"),  # no syntax check
        ("a@b (x) (y)", "x", "a@b", "a@b (x) (y)"),  # Racket keeps the inner name
    ],
)
def test_extract_addresses_extra_cases(
    line: str, name: str, address: str, full: str | None
) -> None:
    [(got_name, got_address, got_full)] = extract_addresses(line, "all")
    assert (got_name, got_address) == (name, address)
    if full is not None:
        assert got_full == full


def test_extract_addresses_splitting() -> None:
    assert extract_addresses(" a, \n\tb", "address") == ["a", "b"]
    assert extract_addresses("Doe, John <a@b>", "all") == [
        ("Doe", "Doe", "Doe"),
        ("John", "a@b", "John <a@b>"),
    ]
    assert extract_addresses("a@b,", "address") == ["a@b"]
    # groups are not understood (documented Racket limitation)
    assert extract_addresses("Group: a@b, c@d;", "address") == ["Group: a@b", "c@d;"]


@pytest.mark.parametrize("blank", [None, "", "   ", " \t\r\n\v"])
def test_extract_addresses_blank(blank: str | None) -> None:
    assert extract_addresses(blank, "address") == []


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('"A" "B, C" <a@x>', "cannot parse address"),
        ("(Johnny) doe@x", "cannot parse address: \\(Johnny\\) doe@x"),
        ("<a@b", "cannot parse address"),
        ("Name <a@b> <c@d> x", "too many angle brackets"),
        ("a>b>c", "too many angle brackets"),
    ],
)
def test_extract_addresses_errors(line: str, message: str) -> None:
    with pytest.raises(ValueError, match="^extract_addresses: " + message):
        extract_addresses(line, "address")


def test_extract_addresses_bad_kind() -> None:
    with pytest.raises(
        ValueError, match=r"(?s)extract_addresses: .*'name', 'address', 'full', or 'all'"
    ):
        extract_addresses("a@b", "email")  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="extract_addresses"):
        extract_addresses("a@b", None)  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="extract_addresses"):
        extract_addresses(b"a@b", "name")  # type: ignore[call-overload]


def test_extract_addresses_deep_comments_do_not_recurse() -> None:
    line = "a@b " + "(c)" * 5000
    [(name, address, _full)] = extract_addresses(line, "all")
    assert (name, address) == ("c", "a@b")


# -- 2.11 assemble_address_field -------------------------------------------


def test_assemble_address_field() -> None:
    assert assemble_address_field([]) == ""
    assert assemble_address_field(["doe@localhost", "Jane <jane@elsewhere>"]) == (
        "doe@localhost, Jane <jane@elsewhere>"
    )
    assert assemble_address_field(["a" * 40, "b" * 40, "c" * 10]) == (
        "a" * 40 + ",\r\n\t" + "b" * 40 + ", " + "c" * 10
    )


def test_assemble_address_field_boundary() -> None:
    # fold exactly when len + |a| reaches 72
    assert assemble_address_field(["a" * 36, "b" * 35]) == "a" * 36 + ", " + "b" * 35
    assert assemble_address_field(["a" * 36, "b" * 36]) == "a" * 36 + ",\r\n\t" + "b" * 36


# -- §4 unit and signature -------------------------------------------------

HEAD_NAMES = [
    "empty_header",
    "validate_header",
    "extract_field",
    "remove_field",
    "insert_field",
    "replace_field",
    "extract_all_fields",
    "append_headers",
    "standard_message_header",
    "data_lines_to_data",
    "extract_addresses",
    "assemble_address_field",
]


def test_head_unit_has_the_twelve_names() -> None:
    for name in HEAD_NAMES:
        assert hasattr(head_unit, name)
        assert name in head.__all__
    protocol_members = {n for n in vars(HeadSignature) if not n.startswith("_")}
    assert protocol_members == set(HEAD_NAMES)
    assert head_unit.empty_header == "\r\n"
    assert head_unit.extract_field("to", TH) == "field is\r\n continued"
    assert head_unit.extract_addresses("a@b, c@d", "address") == ["a@b", "c@d"]
    sig: HeadSignature = head_unit
    assert sig.insert_field(b"A", b"1", b"\r\n") == b"A: 1\r\n\r\n"


# -- beyond Racket: compose_message ----------------------------------------


def test_compose_message() -> None:
    data = compose_message("Subject: x\r\n\r\n", ["hello", b"raw \xff", "ünï"])
    assert data == b"Subject: x\r\n\r\nhello\r\nraw \xff\r\n\xc3\xbcn\xc3\xaf\r\n"
    assert compose_message(b"\r\n", []) == b"\r\n"
    assert compose_message(empty_header, iter(["a", "b"])) == b"\r\na\r\nb\r\n"


def test_compose_message_accepts_utf8_headers() -> None:
    header = "Subject: λ\r\n\r\n"  # not Latin-1: validated as bytes
    assert compose_message(header, ["x"]) == "Subject: λ\r\n\r\nx\r\n".encode()


@pytest.mark.parametrize("line", ["a\r\nb", "a\nb", "a\rb", "trailing\r\n", b"a\nb", "nul\0"])
def test_compose_message_rejects_bad_lines(line: str | bytes) -> None:
    with pytest.raises(ValueError, match="compose_message: line 1 contains"):
        compose_message(empty_header, ["fine", line])


@pytest.mark.parametrize(
    "header", ["", "A: b\r\n", "A: b\nc\r\n\r\n", "nocolon\r\n\r\n", "A: \0\r\n\r\n", ": x\r\n\r\n"]
)
def test_compose_message_rejects_bad_headers(header: str) -> None:
    with pytest.raises(ValueError, match="compose_message: "):
        compose_message(header, [])


def test_compose_message_type_errors() -> None:
    with pytest.raises(TypeError):
        compose_message(empty_header, "a single string")
    with pytest.raises(TypeError):
        compose_message(empty_header, [1])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        compose_message(None, [])  # type: ignore[arg-type]


def test_compose_message_line_limit() -> None:
    compose_message(empty_header, ["x" * 998], max_line_length=998)
    with pytest.raises(ValueError, match="longer than 998"):
        compose_message(empty_header, ["x" * 999], max_line_length=998)


# -- beyond Racket: bridges ------------------------------------------------


def test_header_to_message() -> None:
    header = standard_message_header("a@x.example", ["b@y.example"], [], [], "Hi", now=WHEN)
    msg = header_to_message(header, ["line one", "line two"])
    assert isinstance(msg, EmailMessage)
    assert msg["From"] == "a@x.example"
    assert msg["Subject"] == "Hi"
    assert msg["To"].addresses[0].addr_spec == "b@y.example"
    assert msg["Date"].datetime == WHEN
    assert msg.get_content() == "line one\r\nline two\r\n"


def test_header_to_message_decodes_rfc2047_and_utf8() -> None:
    msg = header_to_message("Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\nX-Raw: ñ\r\n\r\n")
    assert msg["Subject"] == "Grüße"
    assert msg["X-Raw"] == "ñ"


def test_header_to_message_validates() -> None:
    with pytest.raises(ValueError):
        header_to_message("not a header")
    with pytest.raises(ValueError):
        header_to_message(empty_header, ["bad\nline"])


def test_message_to_parts_round_trip() -> None:
    msg = EmailMessage()
    msg["From"] = "Jörg <joerg@x.example>"
    msg["To"] = "b@y.example"
    msg["Bcc"] = "hidden@z.example"
    msg["Subject"] = "Grüße"
    msg.set_content("body ä\n.dot line\n")
    header, lines = message_to_parts(msg)
    validate_header(header)
    assert header.isascii()
    assert extract_field("Bcc", header) is None
    assert extract_field("Subject", header) == "=?utf-8?q?Gr=C3=BC=C3=9Fe?="
    assert lines == [b"body \xc3\xa4", b".dot line"]
    again = header_to_message(header, lines)
    assert again["Subject"] == "Grüße"
    assert again["From"].addresses[0].display_name == "Jörg"
    assert again.get_content() == "body ä\r\n.dot line\r\n"
    header_bcc, _ = message_to_parts(msg, keep_bcc=True)
    assert extract_field("Bcc", header_bcc) == "hidden@z.example"


def test_message_to_header_refuses_non_ascii_addresses_without_smtputf8() -> None:
    msg = EmailMessage()
    msg["From"] = "jörg@bücher.example"
    with pytest.raises(ValueError, match="smtputf8=True"):
        message_to_header(msg)
    assert message_to_header(msg, smtputf8=True) == "From: jörg@bücher.example\r\n\r\n"


def test_message_to_header_empty_message() -> None:
    assert message_to_parts(EmailMessage()) == ("\r\n", [])


def test_message_to_header_multipart() -> None:
    msg = EmailMessage()
    msg["Subject"] = "att"
    msg.set_content("text")
    msg.add_attachment(b"\x00\x01binary", maintype="application", subtype="octet-stream")
    header, lines = message_to_parts(msg)
    parsed = header_to_message(header, lines)
    attachment = next(iter(parsed.iter_attachments()))
    assert isinstance(attachment, EmailMessage)
    assert attachment.get_content() == b"\x00\x01binary"


# -- beyond Racket: modern_message_header ----------------------------------


def test_modern_message_header_fields() -> None:
    header = modern_message_header(
        "Jörg Ünicode <joerg@bücher.example>",
        ["b@y.example", "Team: c@d.example, e@f.example;"],
        ['"Doe, John" <d@w.example>'],
        ["secret@v.example"],
        "Grüße aus Köln",
        date=WHEN,
    )
    validate_header(header)
    assert header.isascii()
    fields = dict(extract_all_fields(header))
    assert list(fields) == [
        "From",
        "To",
        "Cc",
        "Subject",
        "Date",
        "Message-ID",
        "MIME-Version",
        "Content-Type",
        "Content-Transfer-Encoding",
    ]
    assert fields["From"] == "=?utf-8?q?J=C3=B6rg_=C3=9Cnicode?= <joerg@xn--bcher-kva.example>"
    assert fields["Date"] == "Wed, 05 Aug 2026 09:31:58 -0600"
    assert re.fullmatch(r"<[^<>@\s]+@xn--bcher-kva\.example>", fields["Message-ID"])
    assert fields["MIME-Version"] == "1.0"
    assert fields["Content-Type"] == "text/plain; charset=utf-8"
    assert fields["Content-Transfer-Encoding"] == "8bit"
    assert "secret" not in header
    msg = header_to_message(header)
    assert msg["Subject"] == "Grüße aus Köln"
    assert [a.addr_spec for a in msg["To"].addresses] == [
        "b@y.example",
        "c@d.example",
        "e@f.example",
    ]
    assert msg["Cc"].addresses[0].display_name == "Doe, John"


def test_modern_message_header_folds_long_lines() -> None:
    tos = [f"Recipient Number {i} <recipient{i}@example.com>" for i in range(8)]
    header = modern_message_header("a@x.example", tos, [], [], "word " * 40, date=WHEN)
    assert all(len(line) <= 78 for line in header.split("\r\n"))
    assert len(header_to_message(header)["To"].addresses) == 8


def test_modern_message_header_options() -> None:
    header = modern_message_header(
        Address("", "a", "x.example"),
        [Group("Undisclosed recipients")],
        [],
        [],
        "S",
        message_id="<id-1@host.example>",
        date=WHEN,
        content_type=None,
        transfer_encoding=None,
    )
    assert header == (
        "From: a@x.example\r\nTo: Undisclosed recipients:;\r\nSubject: S\r\n"
        "Date: Wed, 05 Aug 2026 09:31:58 -0600\r\nMessage-ID: <id-1@host.example>\r\n"
        "MIME-Version: 1.0\r\n\r\n"
    )
    no_id = modern_message_header("a@x.example", [], [], [], "S", message_id=False)
    assert extract_field("Message-ID", no_id) is None
    own = modern_message_header("a@x.example", [], [], [], "S", domain="mail.example")
    assert (extract_field("Message-ID", own) or "").endswith("@mail.example>")


def test_modern_message_header_smtputf8() -> None:
    header = modern_message_header(
        "Jörg <jörg@bücher.example>",
        [],
        [],
        [],
        "Grüße",
        date=WHEN,
        message_id="<a@b>",
        smtputf8=True,
    )
    assert header.startswith("From: Jörg <jörg@bücher.example>\r\nSubject: Grüße\r\n")
    assert compose_message(header, []).startswith("From: Jörg".encode())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"from_": "not an address"}, "from_"),
        ({"from_": "a@x.example, b@x.example"}, "exactly one mailbox"),
        ({"from_": "jörg@x.example"}, "SMTPUTF8"),
        ({"tos": ["a@-bad-.example"]}, "tos"),
        ({"bccs": ["nope"]}, "bccs"),
        ({"subject": "a\r\nBcc: injected@x"}, "subject contains CR, LF"),
        ({"message_id": "no-brackets@x"}, "Message-ID"),
    ],
)
def test_modern_message_header_errors(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {
        "from_": "a@x.example",
        "tos": ["b@y.example"],
        "ccs": [],
        "bccs": [],
        "subject": "S",
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        modern_message_header(**args)  # type: ignore[arg-type]


def test_modern_message_header_rejects_string_as_list() -> None:
    with pytest.raises(TypeError, match="tos"):
        modern_message_header("a@x.example", "b@y.example", [], [], "S")


# -- issue 10, item 6: a bytes header matched as Racket does, UTF-8 letters folded by case ----


@pytest.mark.parametrize(
    ("field", "header", "value"),
    [
        (b"FR\xc3\x89D", b"Fr\xc3\xa9d: x\r\n\r\n", b"x"),  # the example from Racket
        (b"fr\xc3\xa9d", b"FR\xc3\x89D: y\r\n\r\n", b"y"),
        (b"STRA\xc3\x9fE", b"Stra\xc3\x9fe: z\r\n\r\n", b"z"),  # no upper case of its own
        (b"Fr\xe9d", b"Fr\xe9d: latin-1\r\n\r\n", b"latin-1"),  # not UTF-8: byte for byte
        (b"FR\xc9D", b"Fr\xe9d: latin-1\r\n\r\n", None),
    ],
)
def test_bytes_field_names_fold_utf8_letters(
    field: bytes, header: bytes, value: bytes | None
) -> None:
    assert extract_field(field, header) == value


def test_remove_field_folds_utf8_letters_too() -> None:
    assert remove_field(b"FR\xc3\x89D", b"Fr\xc3\xa9d: x\r\nA: b\r\n\r\n") == b"A: b\r\n\r\n"
