"""Property tests for postwire.head and postwire.address (bounded hypothesis runs)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
from email_validator import EmailNotValidError
from email_validator import validate_email as ev_validate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from postwire.address import Address, Group, parse_address_list, validate_address
from postwire.head import (
    compose_message,
    data_lines_to_data,
    empty_header,
    extract_addresses,
    extract_all_fields,
    extract_field,
    header_to_message,
    insert_field,
    message_to_parts,
    modern_message_header,
    remove_field,
    replace_field,
    standard_message_header,
    validate_header,
)

BOUNDED = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# A field name validate_header accepts: no space, TAB, VT, ':', '"', CR, LF or 0x01-0x1A.
NAME_CHARS = st.characters(min_codepoint=0x21, max_codepoint=0x7E, blacklist_characters=':"')
names = st.text(NAME_CHARS, min_size=1, max_size=12)
# A one-line value: Latin-1 without CR/LF, not starting with white space (skipped on extract).
VALUE_CHARS = st.characters(min_codepoint=0x20, max_codepoint=0xFF, blacklist_characters="\x7f")
values = st.text(VALUE_CHARS, max_size=30).filter(lambda v: not v.startswith(" "))
fields = st.lists(st.tuples(names, values), max_size=8)
lines = st.lists(st.text(VALUE_CHARS, max_size=20), min_size=1, max_size=5).filter(
    lambda ls: not ls[0].startswith(" ")
)


def build(pairs: list[tuple[str, str]]) -> str:
    header = empty_header
    for name, value in reversed(pairs):
        header = insert_field(name, value, header)
    return header


def first_index(pairs: list[tuple[str, str]], name: str) -> int | None:
    for index, (other, _) in enumerate(pairs):
        if other.lower() == name.lower():
            return index
    return None


# -- insert then extract ---------------------------------------------------


@BOUNDED
@given(fields, names, values)
def test_insert_then_extract(pairs: list[tuple[str, str]], name: str, value: str) -> None:
    header = insert_field(name, value, build(pairs))
    assert extract_field(name, header) == value
    assert extract_field(name.swapcase(), header) == value
    raw = insert_field(name.encode(), value.encode("latin-1"), build(pairs).encode("latin-1"))
    assert extract_field(name.encode(), raw) == value.encode("latin-1")


@BOUNDED
@given(fields, names, lines)
def test_insert_then_extract_multiline(
    pairs: list[tuple[str, str]], name: str, value_lines: list[str]
) -> None:
    value = data_lines_to_data(value_lines)
    header = insert_field(name, value, build(pairs))
    assert extract_field(name, header) == value
    assert extract_all_fields(header)[0] == (name, value)


@BOUNDED
@given(fields)
def test_extract_all_fields_round_trip(pairs: list[tuple[str, str]]) -> None:
    header = build(pairs)
    assert extract_all_fields(header) == pairs
    assert extract_all_fields(header.encode("latin-1")) == [
        (n.encode(), v.encode("latin-1")) for n, v in pairs
    ]


# -- replace and remove never corrupt other fields -------------------------


@BOUNDED
@given(fields, names, values, st.booleans(), st.integers(min_value=0, max_value=7))
def test_replace_field_touches_one_field(
    pairs: list[tuple[str, str]], name: str, value: str, existing: bool, pick: int
) -> None:
    if pairs and existing:
        name = pairs[pick % len(pairs)][0]
    header = build(pairs)
    result = replace_field(name, value, header)
    index = first_index(pairs, name)
    expected = [(name, value), *pairs] if index is None else list(pairs)
    if index is not None:
        expected[index] = (name, value)
    assert extract_all_fields(result) == expected
    validate_header(result)


@BOUNDED
@given(fields, names, st.booleans(), st.integers(min_value=0, max_value=7))
def test_remove_field_touches_one_field(
    pairs: list[tuple[str, str]], name: str, existing: bool, pick: int
) -> None:
    if pairs and existing:
        name = pairs[pick % len(pairs)][0]
    header = build(pairs)
    result = remove_field(name, header)
    index = first_index(pairs, name)
    expected = list(pairs)
    if index is not None:
        del expected[index]
    assert extract_all_fields(result) == expected
    validate_header(result)
    raw = remove_field(name.encode(), header.encode("latin-1"))
    assert raw == result.encode("latin-1")


# -- validate_header accepts what the builders produce ---------------------


@BOUNDED
@given(fields)
def test_validate_header_accepts_inserted_fields(pairs: list[tuple[str, str]]) -> None:
    validate_header(build(pairs))
    validate_header(build(pairs).encode("latin-1"))


LATIN1_TEXT = st.text(VALUE_CHARS, max_size=40)
offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda m: timezone(timedelta(minutes=m))
)
moments = st.builds(
    lambda ts, tz: datetime.fromtimestamp(ts, tz),
    st.integers(min_value=0, max_value=4_000_000_000),
    offsets,
)


@BOUNDED
@given(
    LATIN1_TEXT,
    st.lists(LATIN1_TEXT, max_size=6),
    st.lists(LATIN1_TEXT, max_size=6),
    LATIN1_TEXT,
    moments,
)
def test_validate_header_accepts_standard_message_header(
    from_: str, tos: list[str], ccs: list[str], subject: str, now: datetime
) -> None:
    header = standard_message_header(from_, tos, ccs, [], subject, now=now)
    validate_header(header)
    assert extract_field("Subject", header) == subject.lstrip(" ")


# Addresses the modern builder accepts: dot-atom locals, LDH domains, any display name.
atext = st.sampled_from(
    list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-/=?^_`{|}~")
)
atoms = st.text(atext, min_size=1, max_size=8)
locals_ = st.lists(atoms, min_size=1, max_size=3).map(".".join)
labels = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True).filter(
    lambda label: label[2:4] != "--"  # reserved for A-labels (RFC 5890 §2.3.1)
)
domains = st.lists(labels, min_size=1, max_size=3).map(lambda ls: ".".join([*ls, "example"]))
display_names = st.text(
    st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="\x7f"), max_size=30
)
addresses = st.builds(Address, display_names, locals_, domains)
groups = st.builds(
    Group,
    st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=12),
    st.lists(addresses, max_size=3).map(tuple),
)
recipients = st.lists(st.one_of(addresses, groups), max_size=4)
subjects = st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=80)


@BOUNDED
@given(addresses, recipients, recipients, subjects, moments)
def test_modern_message_header_is_valid_and_parses_back(
    sender: Address,
    tos: list[Address | Group],
    ccs: list[Address | Group],
    subject: str,
    now: datetime,
) -> None:
    header = modern_message_header(sender, tos, ccs, [], subject, date=now)
    validate_header(header)
    assert header.isascii()
    assert all(len(line) <= 998 for line in header.split("\r\n"))
    msg = header_to_message(header, ["body"])
    # Leading blanks of a raw subject are folding white space, not text; an
    # encoded subject (non-ASCII) keeps them.
    assert str(msg["Subject"]) in (subject, subject.lstrip(" "))
    assert msg["From"].addresses[0].addr_spec == sender.addr_spec
    again, body = message_to_parts(msg)
    validate_header(again)
    assert body == [b"body"]
    if subject.strip(" "):  # the email package rewrites an all-blank field as "Name: "
        assert compose_message(again, body) == compose_message(header, ["body"])


# -- address values round-trip through their formatting --------------------


@BOUNDED
@given(st.lists(st.one_of(addresses, groups), max_size=4), st.booleans())
def test_format_then_parse_round_trip(items: list[Address | Group], utf8: bool) -> None:
    text = ", ".join(item.format(utf8=utf8) for item in items)
    assert parse_address_list(text) == items


@BOUNDED
@given(st.builds(Address, display_names, st.text(VALUE_CHARS, min_size=1, max_size=20), domains))
def test_any_local_part_round_trips(address: Address) -> None:
    assert parse_address_list(address.format(utf8=True)) == [address]


# -- extract_addresses equals a literal transcription of Racket's code -----
# (the module replaces some of Racket's regexps by linear scans; this is the oracle)

B = "[ \t\n\r\v]"
R_ALL_BLANK = re.compile(rf"{B}*\Z")
R_QUOTED = re.compile(r'"[^"]*"')
R_PARENED = re.compile(r"[(][^)]*[)]")
R_COMMA_SEPARATED = re.compile(r"([^,]*),(.*)", re.DOTALL)
R_PARENED_NAME = re.compile(rf"(.*)[(]([^)]*)[)]{B}*\Z", re.DOTALL)
R_QUOTED_NAME = re.compile(rf'{B}*("[^"]*")(.*)', re.DOTALL)
R_SIMPLE_NAME = re.compile(rf"{B}*([^ \t\n\r\v].*)(<.*>){B}*\Z", re.DOTALL)
R_NORMAL_NAME = re.compile(rf"{B}*<([^>]*)>{B}*")


def racket_extract(s: str) -> list[tuple[str, str, str]]:
    if R_ALL_BLANK.match(s):
        return []
    prefix = ""
    while True:
        mq1, mq2 = R_QUOTED.search(s), R_PARENED.search(s)
        mq = (mq1 if mq1.start() < mq2.start() else mq2) if mq1 and mq2 else (mq1 or mq2)
        mc = s.find(",")
        if mq and mc >= 0 and mq.start() < mc < mq.end():
            prefix, s = prefix + s[: mq.end()], s[mq.end() :]
            continue
        m = R_COMMA_SEPARATED.match(s)
        element, rest = (prefix + m.group(1), m.group(2)) if m else (prefix + s, None)
        first = [] if R_ALL_BLANK.match(element) else [racket_one(element, element)]  # fix 3
        return first + (racket_extract(rest) if rest is not None else [])


def racket_one(s: str, orig: str) -> tuple[str, str, str]:
    m = R_PARENED_NAME.match(s)
    if m:
        name, addr, full = racket_one(m.group(1), orig)
        return (m.group(2) if name == addr else name, addr, f"{full} ({m.group(2)})")
    m = R_QUOTED_NAME.match(s)
    if m:
        addr = racket_angle(m.group(2), s)
        return m.group(1), addr, f"{m.group(1)} <{addr}>"
    m = R_SIMPLE_NAME.match(s)
    if m:
        name = re.sub(rf"{B}*\Z", "", m.group(1), count=1)
        addr = racket_angle(m.group(2), s)
        return name, addr, f"{name} <{addr}>"
    addr = racket_angle(s, orig) if re.search("[<>]", s) else racket_simple(s, orig)
    return addr, addr, addr


def racket_angle(s: str, orig: str) -> str:
    if re.search("<.*<", s, re.DOTALL) or re.search(">.*>", s, re.DOTALL):
        raise ValueError(f"extract_addresses: too many angle brackets: {s}")
    m = R_NORMAL_NAME.search(s)
    if not m:
        raise ValueError(f"extract_addresses: cannot parse address: {orig}")
    return racket_simple(m.group(1), orig)


def racket_simple(s: str, orig: str) -> str:
    if re.search(r'[,"()<>]', s):
        raise ValueError(f"extract_addresses: cannot parse address: {orig}")
    return s.strip(" \t\n\r\v")


ADDRESSY = st.text(st.sampled_from(list('<>()",a@b. \t\n')), max_size=40)


@BOUNDED
@given(st.one_of(ADDRESSY, st.text(max_size=40)))
def test_extract_addresses_matches_racket_regexps(text: str) -> None:
    try:
        expected: list[tuple[str, str, str]] | str = racket_extract(text)
    except ValueError as err:
        expected = str(err)
    try:
        got: list[tuple[str, str, str]] | str = extract_addresses(text, "all")
    except ValueError as err:
        got = str(err)
    assert got == expected


# -- the parsers never crash -----------------------------------------------

ANY_TEXT = st.one_of(
    st.text(max_size=60),
    st.text(st.sampled_from(list('<>()",;:@.\\[] \t\r\naé=?qQbB')), max_size=60),
)


@BOUNDED
@given(ANY_TEXT, st.sampled_from(["name", "address", "full", "all"]))
def test_extract_addresses_never_crashes(text: str, kind: str) -> None:
    try:
        result = extract_addresses(text, kind)  # type: ignore[call-overload]
    except ValueError as err:
        assert str(err).startswith("extract_addresses: ")
    else:
        assert isinstance(result, list)


@BOUNDED
@given(ANY_TEXT)
def test_parse_address_list_never_crashes(text: str) -> None:
    try:
        result = parse_address_list(text)
    except ValueError as err:
        assert str(err).startswith("parse_address_list: ")
    else:
        for item in result:
            # whatever parses can be written back and parses to the same value
            assert parse_address_list(item.format(utf8=True)) == [item]


@BOUNDED
@given(ANY_TEXT, st.booleans())
def test_validate_address_never_crashes(text: str, smtputf8: bool) -> None:
    try:
        normalized = validate_address(text, smtputf8=smtputf8)
    except ValueError as err:
        assert str(err).startswith("validate_address: ")
    else:
        assert validate_address(normalized, smtputf8=smtputf8) == normalized


@BOUNDED
@given(st.text(max_size=60), st.lists(st.text(max_size=20), max_size=4))
def test_validate_header_and_compose_never_crash(header: str, body: list[str]) -> None:
    for candidate in (header, header.encode("utf-8", "surrogatepass")):
        try:
            validate_header(candidate)
        except ValueError as err:
            assert str(err).startswith("validate_header: ")
    try:
        data = compose_message(header, body)
    except ValueError as err:
        assert str(err).startswith("compose_message: ")
    else:
        assert data.endswith(b"\r\n")


# -- validate_address agrees with email-validator on ordinary addresses ----

ordinary = st.builds(lambda local, domain: f"{local}@{domain}", locals_, domains)


def email_validator_accepts(addr: str) -> bool:
    try:
        ev_validate(
            addr,
            check_deliverability=False,
            allow_smtputf8=False,
            allow_quoted_local=True,
            allow_domain_literal=True,
            globally_deliverable=False,
            strict=True,
        )
    except EmailNotValidError:
        return False
    return True


@BOUNDED
@given(ordinary)
def test_validate_address_agrees_with_email_validator(addr: str) -> None:
    try:
        ours = validate_address(addr) == addr
    except ValueError:
        ours = False
    assert ours == email_validator_accepts(addr)


@pytest.mark.parametrize(
    "addr", ["a@b.example", '"x y"@b.example', "a@[127.0.0.1]", "a@xn--bcher-kva.example"]
)
def test_email_validator_oracle_sanity(addr: str) -> None:
    assert email_validator_accepts(addr)
    assert validate_address(addr)
