"""postwire.address: validate_address and the RFC 5322 address-list parser."""

from __future__ import annotations

from email.headerregistry import Address as EmailAddress
from email.headerregistry import AddressHeader, HeaderRegistry

import pytest

from postwire.address import (
    Address,
    Group,
    format_address_list,
    normalize_domain,
    parse_address,
    parse_address_list,
    parse_mailboxes,
    validate_address,
)

# -- validate_address ------------------------------------------------------


@pytest.mark.parametrize(
    ("addr", "expected"),
    [
        ("doe@localhost", "doe@localhost"),  # special-use names are fine for SMTP
        ("user@example.com", "user@example.com"),
        ("a@test", "a@test"),
        ("first.last+tag@sub.example.org", "first.last+tag@sub.example.org"),
        ("!#$%&'*+-/=?^_`{|}~@example.com", "!#$%&'*+-/=?^_`{|}~@example.com"),
        ("Case@Example.COM", "Case@Example.COM"),  # local parts are case-sensitive
        ('"john doe"@example.com', '"john doe"@example.com'),
        ('"abc"@example.com', "abc@example.com"),  # needless quotes dropped
        ('"a\\"b\\\\c"@example.com', '"a\\"b\\\\c"@example.com'),
        ('"\\a"@example.com', "a@example.com"),  # quoted-pair of an ordinary char
        ('"a@b"@example.com', '"a@b"@example.com'),
        ("a@[127.0.0.1]", "a@[127.0.0.1]"),
        ("a@[IPv6:2001:db8:0:0:0:0:0:1]", "a@[IPv6:2001:db8::1]"),
        ("a@[ipv6:::1]", "a@[IPv6:::1]"),
        ("a@1.2.3.4", "a@1.2.3.4"),
        ("user@bücher.example", "user@xn--bcher-kva.example"),
        ("user@BÜCHER.example", "user@xn--bcher-kva.example"),
        ("user@xn--bcher-kva.example", "user@xn--bcher-kva.example"),
        ("x" * 64 + "@example.com", "x" * 64 + "@example.com"),
    ],
)
def test_validate_address_accepts(addr: str, expected: str) -> None:
    assert validate_address(addr) == expected


@pytest.mark.parametrize(
    ("addr", "reason"),
    [
        ("", "missing '@'"),
        ("plainaddress", "missing '@'"),
        ("@example.com", "empty local part"),
        ('""@example.com', "empty local part"),
        ("a@", "missing domain"),
        ("a..b@example.com", "misplaced '.'"),
        (".a@example.com", "misplaced '.'"),
        ("a.@example.com", "misplaced '.'"),
        ("a b@example.com", "must be quoted"),
        ("a,b@example.com", "must be quoted"),
        ("a@b@example.com", "must be quoted"),
        ('"unterminated@example.com', "unterminated"),
        ('"a"b@example.com', "after the closing quote"),
        ('"a\\é"@example.com', "bad escape"),
        ("<a@example.com>", "without angle brackets"),
        ("a@example.com\r\nRCPT TO:<x@y>", "control character U\\+000D"),
        ("a\0@example.com", "control character U\\+0000"),
        ("a@-example.com", "invalid domain label"),
        ("a@example-.com", "invalid domain label"),
        ("a@exa_mple.com", "invalid domain label"),
        ("a@example..com", "invalid domain label"),
        ("a@example.com.", "invalid domain label"),
        ("a@" + "x" * 64 + ".com", "invalid domain label"),
        ("a@xn--zz.example", "invalid A-label"),
        ("a@ab--cd.example", "reserved domain label"),
        ("a@[1.2.3]", "invalid IPv4"),
        ("a@[1.2.3.256]", "invalid IPv4"),
        ("a@[IPv6:::g]", "invalid IPv6"),
        ("a@[IPv6:fe80::1%eth0]", "invalid IPv6"),
        ("a@[x400:whatever]", "unsupported address literal tag"),
        ("a@[127.0.0.1", "malformed address literal"),
        ("a@exa mple.com", "invalid domain label"),
        ("x" * 65 + "@example.com", "local part longer than 64"),
        ("a@" + ".".join(["x" * 63] * 5), "domain longer than 255"),
        ("x" * 64 + "@" + ".".join(["y" * 63] * 3), "address longer than 254"),
        ("jörg@example.com", "needs SMTPUTF8"),
        ("a@☃.example\u0301x", "invalid"),
    ],
)
def test_validate_address_rejects(addr: str, reason: str) -> None:
    with pytest.raises(ValueError, match="^validate_address: .*" + reason):
        validate_address(addr)


def test_validate_address_path_limit_is_exact() -> None:
    domain = ".".join(["y" * 63, "y" * 63, "y" * 61])  # 189 octets
    ok = "x" * 64 + "@" + domain  # 254 octets: path "<...>" is exactly 256
    assert len(ok) == 254
    assert validate_address(ok) == ok
    with pytest.raises(ValueError, match="longer than 254"):
        validate_address("x" * 64 + "@" + domain + "y")


def test_validate_address_smtputf8() -> None:
    assert validate_address("jörg@bücher.example", smtputf8=True) == "jörg@bücher.example"
    assert validate_address("user@BÜCHER.example", smtputf8=True) == "user@bücher.example"
    assert validate_address('"jö rg"@x.example', smtputf8=True) == '"jö rg"@x.example'
    decomposed = "jo\u0308rg@x.example"
    assert validate_address(decomposed, smtputf8=True) == "jörg@x.example"  # NFC
    # an ASCII domain is kept as written, A-labels included
    assert validate_address("a@xn--bcher-kva.example", smtputf8=True) == "a@xn--bcher-kva.example"


@pytest.mark.parametrize("bad", ["a\u200bb@x.example", "a\u00a0b@x.example", "a\u202eb@x.example"])
def test_validate_address_smtputf8_refuses_invisible_characters(bad: str) -> None:
    with pytest.raises(ValueError, match="not allowed in a local part"):
        validate_address(bad, smtputf8=True)


def test_validate_address_octets_not_characters() -> None:
    local = "é" * 32  # 64 octets in UTF-8
    assert validate_address(local + "@x.example", smtputf8=True) == local + "@x.example"
    with pytest.raises(ValueError, match="longer than 64 octets"):
        validate_address("é" * 33 + "@x.example", smtputf8=True)


def test_validate_address_type_error() -> None:
    with pytest.raises(TypeError, match="validate_address"):
        validate_address(b"a@b")  # type: ignore[arg-type]


def test_normalize_domain() -> None:
    assert normalize_domain("Bücher.example") == "xn--bcher-kva.example"
    assert normalize_domain("Bücher.example", smtputf8=True) == "bücher.example"
    assert normalize_domain("[IPv6:0::1]") == "[IPv6:::1]"
    with pytest.raises(ValueError):
        normalize_domain("bad_domain")


# -- parse_address_list ----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", []),
        ("  \t ", []),
        ("a@b", [Address("", "a", "b")]),
        ("John Doe <doe@localhost>", [Address("John Doe", "doe", "localhost")]),
        ("<doe@localhost>", [Address("", "doe", "localhost")]),
        (
            '"Doe, John" <doe@x>, jane@y',
            [Address("Doe, John", "doe", "x"), Address("", "jane", "y")],
        ),
        ('"A \\"q\\" \\\\B" <a@x>', [Address('A "q" \\B', "a", "x")]),
        ('"john doe"@x', [Address("", "john doe", "x")]),
        ('"a@b"@x', [Address("", "a@b", "x")]),
        ("John Q. Public <jqp@x>", [Address("John Q. Public", "jqp", "x")]),
        ("doe@localhost (Johnny (nested) Doe)", [Address("", "doe", "localhost")]),
        ("(lead) a@b (trail)", [Address("", "a", "b")]),
        ("John (the man) Doe <a@b>", [Address("John Doe", "a", "b")]),
        ("a(comment)@(x)b", [Address("", "a", "b")]),
        ("a@[127.0.0.1]", [Address("", "a", "[127.0.0.1]")]),
        ("a@[ 127.0.0.1 ]", [Address("", "a", "[127.0.0.1]")]),
        ("a@[x\\]y]", [Address("", "a", "[x\\]y]")]),
        ("john . doe @ example . com", [Address("", "john.doe", "example.com")]),
        ('john."d o e"@x', [Address("", "john.d o e", "x")]),
        ("<@r1.example,@r2.example:a@b>", [Address("", "a", "b")]),
        ("a@b,\r\n c@d", [Address("", "a", "b"), Address("", "c", "d")]),
        ("a@b,\n\tc@d", [Address("", "a", "b"), Address("", "c", "d")]),
        (",a@b,,c@d,", [Address("", "a", "b"), Address("", "c", "d")]),
        ("jörg@bücher.example", [Address("", "jörg", "bücher.example")]),
        ("Jörg <j@x>", [Address("Jörg", "j", "x")]),
    ],
)
def test_parse_address_list(text: str, expected: list[Address | Group]) -> None:
    assert parse_address_list(text) == expected


def test_parse_groups() -> None:
    text = 'Friends: a@b, "c, d" <c@d>;, e@f, Undisclosed recipients:;'
    assert parse_address_list(text) == [
        Group("Friends", (Address("", "a", "b"), Address("c, d", "c", "d"))),
        Address("", "e", "f"),
        Group("Undisclosed recipients", ()),
    ]
    assert parse_mailboxes(text) == [
        Address("", "a", "b"),
        Address("c, d", "c", "d"),
        Address("", "e", "f"),
    ]
    assert parse_address_list("G: (none) ;") == [Group("G")]
    assert parse_address_list("G:,a@b,,;") == [Group("G", (Address("", "a", "b"),))]


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("=?utf-8?q?J=C3=B6rg?= <j@x>", "Jörg"),
        ("=?UTF-8?B?SsO2cmc=?= <j@x>", "Jörg"),
        ("=?utf-8?q?J=C3=B6rg?= =?utf-8?q?_M?= <j@x>", "Jörg M"),  # RFC 2047 §6.2
        ("=?utf-8?q?J=C3=B6rg?= M <j@x>", "Jörg M"),
        ("Dr. =?iso-8859-1?q?J=F6rg?= <j@x>", "Dr. Jörg"),
        ("=?utf-8*de?q?J=C3=B6rg?= <j@x>", "Jörg"),  # RFC 2231 language tag
        ('"=?utf-8?q?J=C3=B6rg?=" <j@x>', "Jörg"),  # common, if not allowed
        ("=?x-unknown?q?abc?= <j@x>", "=?x-unknown?q?abc?="),  # left as is
        ("=?utf-8?q?a=0D=0Ab?= <j@x>", "=?utf-8?q?a=0D=0Ab?="),  # no CR/LF smuggling
        ('"=?utf-8?q?x?= literal" <j@x>', "=?utf-8?q?x?= literal"),
    ],
)
def test_parse_rfc2047_display_names(text: str, name: str) -> None:
    assert parse_address(text).display_name == name


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a@", "missing domain at the end"),
        ("foo bar", "expected '@', '<' or ':'"),
        ("a@b, c", "expected '@', '<' or ':'"),
        ("<>", "empty address '<>'"),
        ("<a@b> <c@d>", "expected ',' between addresses at position 6"),
        ('"unterminated <a@b>', "unterminated quoted string at position 0"),
        ("a@b (c", "unterminated comment"),
        ("a@b (c (d)", "unterminated comment"),
        ("G: a@b", "missing its closing ';'"),
        ("G: H: a@b;;", "cannot contain a group"),
        (": a@b;", "needs a display name"),
        ("a@b\nc@d", "control character U\\+000A"),
        ("a@b\r\nc@d", "control character U\\+000D"),
        ("a b@c", "separated by '.'"),
        ("a@b.", "empty label in domain"),
        (".a@b", "misplaced '.'"),
        ("a.@b", "ends with '.'"),
        ("<a@b", "expected '>'"),
        ("<ab>", "expected '@' in angle brackets"),
        ("a@[1.2", "unterminated domain literal"),
        ("a@b]", "expected ',' between addresses"),
        ("<@r1 a@b>", "malformed source route"),
        ("Doe, John <a@b>", "expected '@', '<' or ':'"),
    ],
)
def test_parse_address_list_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match="^parse_address_list: .*" + message):
        parse_address_list(text)


def test_parse_address_exactly_one() -> None:
    assert parse_address(" a@b ") == Address("", "a", "b")
    for text in ("", "a@b, c@d", "G: a@b;"):
        with pytest.raises(ValueError, match="parse_address: expected exactly one mailbox"):
            parse_address(text)


def test_parse_type_error() -> None:
    with pytest.raises(TypeError):
        parse_address_list(b"a@b")  # type: ignore[arg-type]


def test_parse_agrees_with_the_standard_library() -> None:
    registry = HeaderRegistry()
    text = (
        '"Doe, John" <doe@x.example>, jane@y.example (Jane), '
        "Team: =?utf-8?q?J=C3=B6rg?= <j@z.example>, k@z.example;, <l@w.example>"
    )
    header = registry("To", text)
    assert isinstance(header, AddressHeader)
    assert not header.defects
    stdlib = [(a.display_name, a.username, a.domain) for a in header.addresses]
    ours = [(a.display_name, a.local_part, a.domain) for a in parse_mailboxes(text)]
    assert ours == stdlib


# -- Address and Group values ----------------------------------------------


def test_address_formatting() -> None:
    assert Address("", "a", "b").format() == "a@b"
    assert Address("John Doe", "a", "b").format() == "John Doe <a@b>"
    assert Address("Doe, John", "a", "b").format() == '"Doe, John" <a@b>'
    assert Address("John Q. Public", "a", "b").format() == '"John Q. Public" <a@b>'
    assert Address('say "hi"', "a", "b").format() == '"say \\"hi\\"" <a@b>'
    assert Address("", "john doe", "b").format() == '"john doe"@b'
    assert Address("", "john doe", "b").addr_spec == '"john doe"@b'
    assert Address("Jörg", "j", "bücher.example").format() == (
        "=?utf-8?q?J=C3=B6rg?= <j@xn--bcher-kva.example>"
    )
    assert Address("Jörg", "j", "bücher.example").format(utf8=True) == "Jörg <j@bücher.example>"
    assert str(Address("Jörg", "jörg", "x")) == "Jörg <jörg@x>"
    with pytest.raises(ValueError, match="needs SMTPUTF8"):
        Address("", "jörg", "x").format()


def test_long_display_names_use_short_encoded_words() -> None:
    name = "Ünïcödé " * 20
    formatted = Address(name, "a", "b").format()
    words = formatted.split(" <")[0].split(" ")
    assert len(words) > 1
    assert all(len(word) <= 75 for word in words)
    assert parse_address(formatted).display_name == name


def test_literal_encoded_word_lookalike_survives() -> None:
    a = Address("=?utf-8?q?x?=", "a", "b")
    assert parse_address(a.format()) == a
    assert parse_address(a.format(utf8=True)) == a


def test_group_formatting() -> None:
    group = Group("Team", (Address("", "a", "b"), Address("C D", "c", "d")))
    assert group.format() == "Team: a@b, C D <c@d>;"
    assert Group("Empty").format() == "Empty:;"
    assert Group("").format() == '"":;'
    assert parse_address_list('"": a@b;') == [Group("", (Address("", "a", "b"),))]
    assert Group("Équipe").format() == "=?utf-8?q?=C3=89quipe?=:;"
    assert Group("T", [Address("", "a", "b")]).members == (Address("", "a", "b"),)  # type: ignore[arg-type]
    assert format_address_list([group, Address("", "e", "f")]) == "Team: a@b, C D <c@d>;, e@f"


def test_values_reject_injection_and_bad_parts() -> None:
    with pytest.raises(ValueError, match="control character"):
        Address("Evil\r\nBcc: x@y", "a", "b")
    with pytest.raises(ValueError, match="control character"):
        Address("", "a\nb", "b")
    with pytest.raises(ValueError, match="local_part is empty"):
        Address("", "", "b")
    with pytest.raises(ValueError, match="invalid domain"):
        Address("", "a", "")
    with pytest.raises(ValueError, match="invalid domain"):
        Address("", "a", "b c")
    with pytest.raises(ValueError, match="lone surrogate"):
        Address("\udcff", "a", "b")
    with pytest.raises(TypeError):
        Group("G", ("a@b",))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Address(None, "a", "b")  # type: ignore[arg-type]


def test_address_is_frozen_and_hashable() -> None:
    a = Address("N", "a", "b")
    with pytest.raises(AttributeError):
        a.local_part = "x"  # type: ignore[misc]
    assert {a, Address("N", "a", "b")} == {a}


def test_normalized() -> None:
    a = Address("N", "abc", "Bücher.example").normalized()
    assert a == Address("N", "abc", "xn--bcher-kva.example")
    assert Address("", "jörg", "x.example").normalized(smtputf8=True).local_part == "jörg"
    with pytest.raises(ValueError, match="needs SMTPUTF8"):
        Address("", "jörg", "x.example").normalized()


def test_email_package_conversion() -> None:
    ours = Address("Jörg", "j", "x.example")
    theirs = ours.to_email()
    assert theirs == EmailAddress("Jörg", "j", "x.example")
    assert Address.from_email(theirs) == ours
    group = Group("G", (ours,)).to_email()
    assert group.display_name == "G" and group.addresses == (theirs,)
