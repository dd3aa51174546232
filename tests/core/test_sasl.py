"""Tests for postwire._core.sasl: RFC vectors, exact bytes, choosing, errors,
redaction, and interoperability with real servers (aiosmtpd over TCP on
127.0.0.1, Dovecot's auth service over a Unix socket)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword
from hypothesis import given, settings
from hypothesis import strategies as st

from postwire._core.sasl import (
    CANCEL,
    MAX_CHALLENGES,
    STRENGTH,
    CramMD5,
    Login,
    Mechanism,
    OAuthBearer,
    Plain,
    ScramSHA256,
    XOAuth2,
    choose_mechanism,
    decode_challenge,
    encode_payload,
    encode_response,
    saslprep,
)
from postwire.errors import NoCommonMechanism, SASLError

# --- RFC 7677 §3 example ------------------------------------------------------

RFC7677_NONCE = "rOprNGfwEbeRWgbNEkqO"
RFC7677_SERVER_FIRST = (
    b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
)
RFC7677_CLIENT_FINAL = (
    b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
)
# As printed in RFC 7677 §3 (and reproduced by every SCRAM implementation).
RFC7677_SERVER_FINAL = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


def rfc7677() -> ScramSHA256:
    return ScramSHA256("user", "pencil", nonce=RFC7677_NONCE)


# --- base64 framing -----------------------------------------------------------


def test_encode_payload_uses_equals_for_empty() -> None:
    assert encode_payload(b"") == "="
    assert encode_payload(b"\0user\0pw") == "AHVzZXIAcHc="


def test_encode_response_uses_empty_line_for_empty() -> None:
    assert encode_response(b"") == ""
    assert encode_response(b"user") == "dXNlcg=="


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("VXNlcm5hbWU6", b"Username:"),
        ("  VXNlcm5hbWU6 \t\r\n", b"Username:"),
        ("", b""),
        ("   ", b""),
        ("=", b""),
        ("VXNlciBOYW1lAA==", b"User Name\x00"),
    ],
)
def test_decode_challenge(text: str, expected: bytes) -> None:
    assert decode_challenge(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "VXNlcm5hbWU",
        "VXNl cm5h",
        "Username:",
        "QQ==QQ==",
        "A===",
        "A",
        "dXNlcg==\x00",
        "dXNl\u00e9",
    ],
)
def test_decode_challenge_rejects_bad_base64(text: str) -> None:
    with pytest.raises(SASLError):
        decode_challenge(text)


@given(st.text())
def test_decode_challenge_only_raises_sasl_error(text: str) -> None:
    try:
        result = decode_challenge(text)
    except SASLError:
        return
    assert isinstance(result, bytes)


@given(st.binary())
def test_encode_decode_round_trip(data: bytes) -> None:
    assert decode_challenge(encode_response(data)) == data
    assert decode_challenge(encode_payload(data)) == data


# --- PLAIN --------------------------------------------------------------------


def test_plain_exact_bytes() -> None:
    mech = Plain("tim", "tanstaaftanstaaf")
    assert mech.name == "PLAIN"
    assert mech.initial_response() == b"\0tim\0tanstaaftanstaaf"
    # RFC 4954 §4.1 example: "test\0test\01234" is dGVzdAB0ZXN0ADEyMzQ=
    assert encode_payload(Plain("test", "1234", authzid="test").initial_response() or b"") == (
        "dGVzdAB0ZXN0ADEyMzQ="
    )


def test_plain_is_utf8() -> None:
    mech = Plain("jörg", "pässwörd€")
    assert mech.initial_response() == "\0jörg\0pässwörd€".encode()


def test_plain_without_initial_response_answers_one_empty_challenge() -> None:
    mech = Plain("u", "p")
    assert mech.respond(b"") == b"\0u\0p"
    with pytest.raises(SASLError, match="unexpected"):
        mech.respond(b"")
    mech.verify_success(None)  # a no-op


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (("u\0x", "p"), ValueError),
        (("u", "p\0x"), ValueError),
        (("u", "p", "a\0z"), ValueError),
        (("u", None), ValueError),
        ((None, "p"), ValueError),
        (("", "p"), ValueError),
        (("u", ""), ValueError),
        (("u", b"p"), TypeError),
        ((1, "p"), TypeError),
        (("u", "p\ud800"), ValueError),
    ],
)
def test_plain_rejects_bad_credentials(args: tuple[Any, ...], error: type[Exception]) -> None:
    with pytest.raises(error):
        Plain(*args)


# --- LOGIN --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (b"Username:", b"Password:"),
        (b"USERNAME:", b"PASSWORD:"),
        (b"username:", b"password:"),
        (b"User Name\x00", b"Password\x00"),  # aiosmtpd
        (b"", b""),
    ],
)
def test_login_answers_by_order(first: bytes, second: bytes) -> None:
    mech = Login("jörg", "secret")
    assert mech.name == "LOGIN"
    assert mech.initial_response() is None
    assert mech.respond(first) == "jörg".encode()
    assert mech.respond(second) == b"secret"
    with pytest.raises(SASLError, match="third"):
        mech.respond(b"Password:")


# --- CRAM-MD5 -----------------------------------------------------------------


def test_cram_md5_rfc2195_vector() -> None:
    mech = CramMD5("tim", "tanstaaftanstaaf")
    assert mech.name == "CRAM-MD5"
    assert mech.initial_response() is None
    response = mech.respond(b"<1896.697170952@postoffice.reston.mci.net>")
    assert response == b"tim b913a602c7eda7a495b4e6e7334d3890"
    # RFC 2195 §2 also shows the base64 form on the wire.
    assert encode_response(response) == "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw"
    with pytest.raises(SASLError):
        mech.respond(b"<again@example>")


def test_cram_md5_refuses_empty_challenge() -> None:
    with pytest.raises(SASLError, match="empty"):
        CramMD5("tim", "x").respond(b"")


# --- XOAUTH2 ------------------------------------------------------------------


def test_xoauth2_exact_bytes() -> None:
    mech = XOAuth2("someuser@example.com", "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg")
    assert mech.name == "XOAUTH2"
    expected = (
        b"user=someuser@example.com\x01"
        b"auth=Bearer ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg\x01\x01"
    )
    assert mech.initial_response() == expected
    # Google's documented base64 for that example.
    assert encode_payload(expected) == (
        "dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52"
        "YjNSbGNrQmhkSFJoZG1semRHRXVZMjl0Q2cBAQ=="
    )


def test_xoauth2_error_challenge_gets_empty_answer() -> None:
    mech = XOAuth2("u@example.com", "tok")
    error = {"status": "400", "schemes": "Bearer", "scope": "https://mail.google.com/"}
    challenge = decode_challenge(base64.b64encode(json.dumps(error).encode()).decode())
    assert mech.respond(challenge) == b""
    assert mech.error_details == error
    with pytest.raises(SASLError, match="kept challenging"):
        mech.respond(challenge)


def test_xoauth2_non_json_error_challenge() -> None:
    mech = XOAuth2("u", "tok")
    assert mech.respond(b"not json") == b""
    assert mech.error_details is None


def test_xoauth2_sends_message_on_empty_first_challenge() -> None:
    mech = XOAuth2("u", "tok")
    assert mech.respond(b"") == b"user=u\x01auth=Bearer tok\x01\x01"


@pytest.mark.parametrize(("user", "token"), [("u\x01", "t"), ("u", "t\x01"), ("u", "t\r\n")])
def test_xoauth2_rejects_control_characters(user: str, token: str) -> None:
    with pytest.raises(ValueError):
        XOAuth2(user, token)


# --- OAUTHBEARER --------------------------------------------------------------


def test_oauthbearer_rfc7628_example() -> None:
    # RFC 7628 §4.1.
    mech = OAuthBearer(
        "user@example.com",
        "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==",
        host="server.example.com",
        port=143,
    )
    assert mech.name == "OAUTHBEARER"
    assert mech.initial_response() == (
        b"n,a=user@example.com,\x01host=server.example.com\x01port=143\x01"
        b"auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01"
    )


def test_oauthbearer_without_host_and_port_and_escaped_name() -> None:
    assert OAuthBearer("a,b=c", "t").initial_response() == (
        b"n,a=a=2Cb=3Dc,\x01auth=Bearer t\x01\x01"
    )
    assert OAuthBearer("", "t").initial_response() == b"n,,\x01auth=Bearer t\x01\x01"


def test_oauthbearer_error_challenge_gets_ctrl_a() -> None:
    mech = OAuthBearer("u", "t")
    error = {"status": "invalid_token", "scope": "example_scope"}
    assert mech.respond(json.dumps(error).encode()) == b"\x01"
    assert mech.error_details == error
    with pytest.raises(SASLError):
        mech.respond(b"{}")


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"port": 70000}, ValueError),
        ({"port": -1}, ValueError),
        ({"port": "25"}, TypeError),
        ({"port": True}, TypeError),
        ({"host": "a\x01b"}, ValueError),
    ],
)
def test_oauthbearer_rejects_bad_host_port(kwargs: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        OAuthBearer("u", "t", **kwargs)


# --- SCRAM-SHA-256 ------------------------------------------------------------


def test_scram_rfc7677_vector() -> None:
    mech = rfc7677()
    assert mech.name == "SCRAM-SHA-256"
    assert mech.initial_response() == b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
    assert mech.respond(RFC7677_SERVER_FIRST) == RFC7677_CLIENT_FINAL
    assert mech.respond(RFC7677_SERVER_FINAL) == b""
    mech.verify_success(None)


def test_scram_sends_client_first_on_empty_challenge() -> None:
    mech = rfc7677()
    assert mech.respond(b"") == b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
    assert mech.respond(RFC7677_SERVER_FIRST) == RFC7677_CLIENT_FINAL


def test_scram_server_signature_mismatch() -> None:
    mech = rfc7677()
    mech.respond(RFC7677_SERVER_FIRST)
    bad = b"v=" + base64.b64encode(b"\0" * 32)
    with pytest.raises(SASLError, match="signature mismatch"):
        mech.respond(bad)
    with pytest.raises(SASLError, match="never verified"):
        mech.verify_success(None)


def test_scram_verify_success_without_server_final_raises() -> None:
    mech = rfc7677()
    mech.respond(RFC7677_SERVER_FIRST)
    with pytest.raises(SASLError, match="never verified"):
        mech.verify_success(None)
    with pytest.raises(SASLError, match="never verified"):
        mech.verify_success(b"2.7.0 Authentication successful")


def test_scram_verify_success_before_anything_raises() -> None:
    with pytest.raises(SASLError, match="never verified"):
        rfc7677().verify_success(RFC7677_SERVER_FINAL)


@pytest.mark.parametrize("data", [RFC7677_SERVER_FINAL, base64.b64encode(RFC7677_SERVER_FINAL)])
def test_scram_server_final_in_235_text(data: bytes) -> None:
    mech = rfc7677()
    mech.respond(RFC7677_SERVER_FIRST)
    mech.verify_success(data)


def test_scram_server_error_value() -> None:
    mech = rfc7677()
    mech.respond(RFC7677_SERVER_FIRST)
    with pytest.raises(SASLError, match="invalid-proof"):
        mech.respond(b"e=invalid-proof")


def test_scram_challenge_after_success() -> None:
    mech = rfc7677()
    mech.respond(RFC7677_SERVER_FIRST)
    mech.respond(RFC7677_SERVER_FINAL)
    with pytest.raises(SASLError, match="unexpected"):
        mech.respond(b"")


@pytest.mark.parametrize(
    "server_first",
    [
        b"m=ext,r=rOprNGfwEbeRWgbNEkqOxyz,s=QUJD,i=4096",  # mandatory extension
        b"r=someoneElsesNonce,s=QUJD,i=4096",  # nonce does not extend ours
        b"r=rOprNGfwEbeRWgbNEkqO,s=QUJD,i=4096",  # server added nothing
        b"r=rOprNGfwEbeRWgbNEkqOx y,s=QUJD,i=4096",  # space in nonce
        b"r=rOprNGfwEbeRWgbNEkqOxyz,s=QUJD!,i=4096",  # bad salt
        b"r=rOprNGfwEbeRWgbNEkqOxyz,s=QUJD,i=0",
        b"r=rOprNGfwEbeRWgbNEkqOxyz,s=QUJD,i=-1",
        b"r=rOprNGfwEbeRWgbNEkqOxyz,s=QUJD,i=abc",
        b"r=rOprNGfwEbeRWgbNEkqOxyz,s=QUJD,i=99999999999",
        b"r=rOprNGfwEbeRWgbNEkqOxyz,s=QUJD,i=\xd9\xa4",  # Arabic-Indic digit
        b"r=rOprNGfwEbeRWgbNEkqOxyz,i=4096,s=QUJD",  # wrong order
        b"r=rOprNGfwEbeRWgbNEkqOxyz,s=QUJD",  # missing i
        b"garbage",
        b"\xff\xfe",
        b"r=rOprNGfwEbeRWgbNEkqOxyz,,s=QUJD,i=4096",
    ],
)
def test_scram_rejects_bad_server_first(server_first: bytes) -> None:
    with pytest.raises(SASLError):
        rfc7677().respond(server_first)


def test_scram_ignores_trailing_extensions() -> None:
    mech = rfc7677()
    assert mech.respond(RFC7677_SERVER_FIRST + b",x=future").startswith(b"c=biws,r=")


def test_scram_escapes_username() -> None:
    mech = ScramSHA256("a=b,c", "pw", nonce="abc")
    assert mech.initial_response() == b"n,,n=a=3Db=2Cc,r=abc"


def test_scram_random_nonce_is_valid_and_fresh() -> None:
    first = ScramSHA256("u", "p").initial_response() or b""
    second = ScramSHA256("u", "p").initial_response() or b""
    assert first != second
    nonce = first.split(b",r=")[1]
    assert len(nonce) >= 24
    assert all(0x21 <= c <= 0x7E and c != 0x2C for c in nonce)


@pytest.mark.parametrize("nonce", ["", "a,b", "a b", "é"])
def test_scram_rejects_bad_nonce(nonce: str) -> None:
    with pytest.raises(ValueError):
        ScramSHA256("u", "p", nonce=nonce)


def test_scram_saslprep_applies_to_password() -> None:
    # U+00AD SOFT HYPHEN maps to nothing (RFC 4013 §2.1), so both passwords
    # produce the same proof.
    plain, hyphen = rfc7677(), ScramSHA256("user", "pen\u00adcil", nonce=RFC7677_NONCE)
    assert hyphen.respond(RFC7677_SERVER_FIRST) == plain.respond(RFC7677_SERVER_FIRST)


@pytest.mark.parametrize("password", ["\u0007bell", "\u00ad", "\u0627\u0031"])
def test_scram_rejects_passwords_saslprep_refuses(password: str) -> None:
    with pytest.raises(ValueError):
        ScramSHA256("user", password)


def test_challenge_cap() -> None:
    mech = rfc7677()
    for _ in range(MAX_CHALLENGES):
        mech.respond(b"")  # a server that keeps asking for the initial response
    with pytest.raises(SASLError, match="too many challenges"):
        mech.respond(b"")


# --- SASLprep (RFC 4013 §3 examples) ------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I\u00adX", "IX"),
        ("user", "user"),
        ("USER", "USER"),
        ("\u00aa", "a"),
        ("\u2168", "IX"),
        ("a\u00a0b", "a b"),  # non-ASCII space maps to SPACE
        ("\u0627\u0628", "\u0627\u0628"),  # all right-to-left is fine
    ],
)
def test_saslprep_examples(text: str, expected: str) -> None:
    assert saslprep(text) == expected


@pytest.mark.parametrize("text", ["\u0007", "\u0627\u0031", "a\ue000", "\ufffe"])
def test_saslprep_prohibited(text: str) -> None:
    with pytest.raises(ValueError):
        saslprep(text)


def test_saslprep_unassigned() -> None:
    unassigned = "\u0221"  # unassigned in Unicode 3.2
    assert saslprep(unassigned) == unassigned
    with pytest.raises(ValueError):
        saslprep(unassigned, allow_unassigned=False)


# --- choose_mechanism ---------------------------------------------------------


@pytest.mark.parametrize(
    ("advertised", "kwargs", "expected"),
    [
        (["PLAIN", "LOGIN"], {}, Plain),
        (["LOGIN", "PLAIN", "CRAM-MD5"], {}, CramMD5),
        (["scram-sha-256", "plain", "cram-md5"], {}, ScramSHA256),
        ("PLAIN LOGIN", {}, Plain),
        (["LOGIN"], {}, Login),
        (["SCRAM-SHA-256-PLUS", "GSSAPI", "PLAIN"], {}, Plain),
        (["XOAUTH2", "PLAIN"], {}, Plain),  # no token: OAuth is never chosen
        (["XOAUTH2", "OAUTHBEARER", "PLAIN"], {"oauth2_token": "t"}, OAuthBearer),
        (["XOAUTH2", "PLAIN", "SCRAM-SHA-256"], {"oauth2_token": "t"}, XOAuth2),
        (["PLAIN"], {"oauth2_token": "t"}, Plain),  # with a password to fall back on
        (["PLAIN", "LOGIN"], {"preferred": "login"}, Login),
        (["SCRAM-SHA-256", "PLAIN"], {"preferred": "Plain"}, Plain),
        (["XOAUTH2", "OAUTHBEARER"], {"preferred": "xoauth2", "oauth2_token": "t"}, XOAuth2),
    ],
)
def test_choose_mechanism(
    advertised: Any, kwargs: dict[str, Any], expected: type[Mechanism]
) -> None:
    kwargs = {"username": "u", "password": "p", **kwargs}
    mech = choose_mechanism(advertised, **kwargs)
    assert type(mech) is expected


def test_choose_token_only_without_oauth_offered() -> None:
    with pytest.raises(NoCommonMechanism) as info:
        choose_mechanism(["PLAIN", "LOGIN"], username="u", password=None, oauth2_token="t")
    assert info.value.offered == ("PLAIN", "LOGIN")
    assert "PLAIN, LOGIN" in str(info.value)
    assert "XOAUTH2" in str(info.value)


def test_choose_nothing_in_common_lists_offer() -> None:
    with pytest.raises(NoCommonMechanism) as info:
        choose_mechanism(["gssapi", "NTLM"], username="u", password="p")
    assert isinstance(info.value, ValueError)
    assert info.value.offered == ("GSSAPI", "NTLM")
    assert "GSSAPI, NTLM" in str(info.value)
    assert all(name in str(info.value) for name in STRENGTH)


def test_choose_nothing_offered() -> None:
    with pytest.raises(NoCommonMechanism, match="no mechanisms"):
        choose_mechanism([], username="u", password="p")


def test_choose_preferred_not_offered() -> None:
    with pytest.raises(NoCommonMechanism, match="CRAM-MD5 is not offered") as info:
        choose_mechanism(["PLAIN"], username="u", password="p", preferred="cram-md5")
    assert "PLAIN" in str(info.value)


def test_choose_preferred_unknown() -> None:
    with pytest.raises(ValueError, match="unsupported") as info:
        choose_mechanism(["GSSAPI"], username="u", password="p", preferred="GSSAPI")
    assert not isinstance(info.value, NoCommonMechanism)


def test_choose_preferred_oauth_without_token() -> None:
    with pytest.raises(ValueError, match="token"):
        choose_mechanism(["XOAUTH2"], username="u", password="p", preferred="XOAUTH2")


def test_choose_without_password() -> None:
    with pytest.raises(ValueError, match="password"):
        choose_mechanism(["PLAIN"], username="u", password=None)


def test_choose_oauthbearer_gets_host_and_port() -> None:
    mech = choose_mechanism(
        ["OAUTHBEARER"], username="u", password=None, oauth2_token="t", host="mx", port=587
    )
    assert mech.initial_response() == b"n,a=u,\x01host=mx\x01port=587\x01auth=Bearer t\x01\x01"


# --- redaction ----------------------------------------------------------------

USER = "alice-Uniq-7Q"
SECRET = "hunter2-Xq9-secret"
TOKEN = "ya29.tok-SECRET-Z"
SECRETS = (USER, SECRET, TOKEN)

FACTORIES: list[Callable[[], Mechanism]] = [
    lambda: Plain(USER, SECRET, authzid=USER),
    lambda: Login(USER, SECRET),
    lambda: CramMD5(USER, SECRET),
    lambda: XOAuth2(USER, TOKEN),
    lambda: OAuthBearer(USER, TOKEN, host="mx", port=25),
    lambda: ScramSHA256(USER, SECRET, nonce=RFC7677_NONCE),
]


def assert_clean(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


def assert_clean_error(exc: BaseException) -> None:
    assert_clean(str(exc))
    assert_clean(repr(exc))
    assert_clean(repr(exc.args))


@pytest.mark.parametrize("factory", FACTORIES)
def test_repr_hides_credentials(factory: Callable[[], Mechanism]) -> None:
    mech = factory()
    assert_clean(repr(mech))
    assert_clean(str(mech))
    assert mech.name in repr(mech)


@pytest.mark.parametrize("factory", FACTORIES)
def test_errors_hide_credentials(factory: Callable[[], Mechanism]) -> None:
    mech = factory()
    challenges = [
        b"",
        RFC7677_SERVER_FIRST,
        b"v=" + base64.b64encode(b"x" * 32),
        USER.encode(),
        b"",
        b"",
        b"",
    ]
    raised = []
    for challenge in challenges:
        try:
            mech.respond(challenge)
        except SASLError as exc:
            raised.append(exc)
    try:
        mech.verify_success(b"v=AAAA")
    except SASLError as exc:
        raised.append(exc)
    assert raised, "every mechanism gives up on this sequence"
    for error in raised:
        assert_clean_error(error)
    assert_clean(repr(mech))


@pytest.mark.parametrize(
    "build",
    [
        lambda: Plain(USER, SECRET + "\0"),
        lambda: Plain(USER + "\0", SECRET),
        lambda: Plain(USER, SECRET + "\ud800"),
        lambda: Login(USER, SECRET + "\udfff"),
        lambda: CramMD5(USER + "\udc80", SECRET),
        lambda: XOAuth2(USER, TOKEN + "\x01"),
        lambda: OAuthBearer(USER + "\n", TOKEN),
        lambda: ScramSHA256(USER, SECRET + "\u0007"),
        lambda: ScramSHA256(USER + "\ue000", SECRET),
        lambda: ScramSHA256(USER, "\u0627" + SECRET),
        lambda: ScramSHA256(USER, SECRET, nonce="bad,nonce"),
        lambda: Plain(USER, b"hunter2-Xq9-secret"),  # type: ignore[arg-type]
        lambda: choose_mechanism(["GSSAPI"], username=USER, password=SECRET),
        lambda: choose_mechanism(["PLAIN"], username=USER, password=SECRET, preferred="LOGIN"),
        lambda: choose_mechanism(["PLAIN"], username=USER, password=None, oauth2_token=TOKEN),
    ],
)
def test_argument_errors_hide_credentials(build: Callable[[], object]) -> None:
    with pytest.raises((ValueError, TypeError)) as info:
        build()
    assert_clean_error(info.value)
    assert info.value.__cause__ is None


# --- fuzzing: only SASLError escapes respond() ---------------------------------


@settings(deadline=None, max_examples=200)
@given(
    st.sampled_from(range(len(FACTORIES))),
    st.lists(
        st.one_of(
            st.binary(max_size=200),
            st.sampled_from([b"", RFC7677_SERVER_FIRST, RFC7677_SERVER_FINAL, b"e=x", b"{}"]),
        ),
        max_size=8,
    ),
    st.one_of(st.none(), st.binary(max_size=100)),
)
def test_respond_only_raises_sasl_error(
    index: int, challenges: list[bytes], final: bytes | None
) -> None:
    mech = FACTORIES[index]()
    for challenge in challenges:
        try:
            assert isinstance(mech.respond(challenge), bytes)
        except SASLError as exc:
            assert_clean_error(exc)
    try:
        mech.verify_success(final)
    except SASLError as exc:
        assert_clean_error(exc)


# --- aiosmtpd over TCP on 127.0.0.1 -------------------------------------------

GOOD_USER = "jörg@example.com"
GOOD_PASSWORD = "pä ss wörd"
GOOD_TOKEN = "ya29.good-token"


class OAuthHandler:
    """aiosmtpd handler adding XOAUTH2 and OAUTHBEARER server sides."""

    def __init__(self) -> None:
        self.after_error: list[bytes] = []

    async def _oauth(
        self, server: SMTP, args: list[str], expected: bytes, error_answer: bytes
    ) -> AuthResult:
        if len(args) > 1:
            blob: Any = base64.b64decode(args[1], validate=True)
        else:
            blob = await server.challenge_auth("")
        if blob == expected:
            return AuthResult(success=True)
        error = {"status": "401", "schemes": "bearer", "scope": "https://mail.example/"}
        answer = await server.challenge_auth(json.dumps(error))
        assert isinstance(answer, bytes)
        self.after_error.append(answer)
        assert answer == error_answer
        return AuthResult(success=False, handled=False)

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        expected = f"user={GOOD_USER}\x01auth=Bearer {GOOD_TOKEN}\x01\x01".encode()
        return await self._oauth(server, args, expected, b"")

    async def auth_OAUTHBEARER(self, server: SMTP, args: list[str]) -> AuthResult:
        expected = f"n,a={GOOD_USER},\x01auth=Bearer {GOOD_TOKEN}\x01\x01".encode()
        return await self._oauth(server, args, expected, b"\x01")


def check_password(
    server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == GOOD_USER.encode()
        and auth_data.password == GOOD_PASSWORD.encode()
    )
    return AuthResult(success=ok, handled=False)


async def smtp_auth(
    port: int, build: Callable[[list[str]], Mechanism], send_initial: bool = True
) -> tuple[int, Mechanism]:
    """A minimal SMTP AUTH driver, as the core is meant to drive a mechanism."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)

    async def reply() -> tuple[int, list[str]]:
        lines = []
        while True:
            raw = await asyncio.wait_for(reader.readline(), 5)
            assert raw.endswith(b"\r\n")
            line = raw[:-2].decode()
            lines.append(line[4:])
            if line[3:4] != "-":
                return int(line[:3]), lines

    async def send(text: str) -> None:
        writer.write(text.encode("ascii") + b"\r\n")
        await writer.drain()

    try:
        assert (await reply())[0] == 220
        await send("EHLO client.test")
        code, lines = await reply()
        assert code == 250
        auth_line = next(line for line in lines if line.upper().startswith("AUTH "))
        mech = build(auth_line.split()[1:])
        initial = mech.initial_response() if send_initial else None
        command = f"AUTH {mech.name}"
        if initial is not None:
            command += " " + encode_payload(initial)
        await send(command)
        code, lines = await reply()
        while code == 334:
            try:
                answer = encode_response(mech.respond(decode_challenge(lines[0])))
            except SASLError:
                answer = CANCEL
            await send(answer)
            code, lines = await reply()
        if code == 235:
            mech.verify_success(None)
        await send("QUIT")
        await reply()
        return code, mech
    finally:
        writer.close()
        await asyncio.wait_for(writer.wait_closed(), 5)


@pytest.fixture
async def aiosmtpd_port() -> Any:
    handler = OAuthHandler()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, authenticator=check_password, auth_require_tls=False),
        "127.0.0.1",
        0,
    )
    port = server.sockets[0].getsockname()[1]
    try:
        yield port, handler
    finally:
        server.close()
        await asyncio.wait_for(server.wait_closed(), 5)


@pytest.mark.parametrize("preferred", ["PLAIN", "LOGIN"])
@pytest.mark.parametrize("send_initial", [True, False])
@pytest.mark.parametrize(("password", "code"), [(GOOD_PASSWORD, 235), ("wrong", 535)])
async def test_aiosmtpd_password_mechanisms(
    aiosmtpd_port: tuple[int, OAuthHandler],
    preferred: str,
    send_initial: bool,
    password: str,
    code: int,
) -> None:
    port, _ = aiosmtpd_port

    def build(offered: list[str]) -> Mechanism:
        return choose_mechanism(offered, username=GOOD_USER, password=password, preferred=preferred)

    result, mech = await smtp_auth(port, build, send_initial)
    assert result == code
    assert mech.name == preferred


async def test_aiosmtpd_chooser_picks_plain(aiosmtpd_port: tuple[int, OAuthHandler]) -> None:
    port, _ = aiosmtpd_port
    offered: list[str] = []

    def build(advertised: list[str]) -> Mechanism:
        offered.extend(advertised)
        return choose_mechanism(advertised, username=GOOD_USER, password=GOOD_PASSWORD)

    code, mech = await smtp_auth(port, build)
    assert {"PLAIN", "LOGIN", "XOAUTH2", "OAUTHBEARER"} <= set(offered)
    assert (code, mech.name) == (235, "PLAIN")


@pytest.mark.parametrize("name", ["XOAUTH2", "OAUTHBEARER"])
@pytest.mark.parametrize("send_initial", [True, False])
async def test_aiosmtpd_oauth(
    aiosmtpd_port: tuple[int, OAuthHandler], name: str, send_initial: bool
) -> None:
    port, handler = aiosmtpd_port

    def build(token: str) -> Callable[[list[str]], Mechanism]:
        def make(offered: list[str]) -> Mechanism:
            return choose_mechanism(
                offered, username=GOOD_USER, password=None, oauth2_token=token, preferred=name
            )

        return make

    code, mech = await smtp_auth(port, build(GOOD_TOKEN), send_initial)
    assert code == 235
    assert mech.error_details is None

    code, mech = await smtp_auth(port, build("expired"), send_initial)
    assert code == 535
    assert mech.error_details == {
        "status": "401",
        "schemes": "bearer",
        "scope": "https://mail.example/",
    }
    assert handler.after_error == [b"" if name == "XOAUTH2" else b"\x01"]


# --- Dovecot's auth service (a real SCRAM/CRAM-MD5 server) --------------------

DOVECOT_CONF = """\
base_dir = {base}/run
state_dir = {base}/state
log_path = {base}/dovecot.log
instance_name = postwire-sasl-test
protocols =
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login cram-md5 scram-sha-256
auth_failure_delay = 0
# allow the non-ASCII user name (the default set is ASCII only)
auth_username_chars =
auth_verbose = yes
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {base}/passwd
}}
userdb {{
  driver = static
  args = uid=65534 gid=65534 home={base}/home
}}
service auth {{
  unix_listener auth-client {{
    path = {base}/auth-client
    mode = 0666
  }}
}}
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
"""


@pytest.fixture(scope="module")
def dovecot_socket() -> Iterator[Path]:
    # Not under pytest's tmp_path: that is mode 0700 and Dovecot's auth
    # process (an unprivileged user) must read the passwd file.
    base = Path(tempfile.mkdtemp(prefix="postwire-dovecot-"))
    base.chmod(0o755)
    (base / "dovecot.conf").write_text(DOVECOT_CONF.format(base=base))
    (base / "passwd").write_text(f"{GOOD_USER}:{{PLAIN}}{GOOD_PASSWORD}\n")
    proc = subprocess.Popen(
        ["dovecot", "-F", "-c", str(base / "dovecot.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        path = base / "auth-client"
        deadline = time.monotonic() + 15
        while not path.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                log = base / "dovecot.log"
                detail = log.read_text() if log.exists() else ""
                pytest.fail(f"dovecot did not start: {detail}")
            time.sleep(0.05)
        yield path
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        shutil.rmtree(base, ignore_errors=True)


def dovecot_auth(path: Path, mech: Mechanism) -> tuple[str, int]:
    """Run one exchange over Dovecot's auth-client protocol (version 1.2).

    Returns the final verb ("OK" or "FAIL") and how many challenges came.
    """
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(5)
        sock.connect(str(path))
        stream = sock.makefile("rwb")
        stream.write(b"VERSION\t1\t2\nCPID\t%d\n" % os.getpid())
        stream.flush()
        while not stream.readline().startswith(b"DONE"):
            pass
        command = f"AUTH\t1\t{mech.name}\tservice=smtp\tnologin"
        initial = mech.initial_response()
        if initial is not None:
            command += "\tresp=" + encode_payload(initial)
        stream.write(command.encode() + b"\n")
        stream.flush()
        challenges = 0
        while True:
            fields = stream.readline().decode().rstrip("\n").split("\t")
            if fields[0] != "CONT":
                break
            challenges += 1
            answer = encode_response(mech.respond(decode_challenge(fields[2])))
            stream.write(f"CONT\t1\t{answer}\n".encode())
            stream.flush()
        if fields[0] == "OK":
            extra = [field[5:] for field in fields if field.startswith("resp=")]
            mech.verify_success(decode_challenge(extra[0]) if extra else None)
        return fields[0], challenges


@pytest.mark.parametrize(
    ("build", "challenges"),
    [
        (lambda pw: ScramSHA256(GOOD_USER, pw), 2),
        (lambda pw: CramMD5(GOOD_USER, pw), 1),
        (lambda pw: Plain(GOOD_USER, pw), 0),
        (lambda pw: Login(GOOD_USER, pw), 2),
    ],
)
def test_dovecot(dovecot_socket: Path, build: Callable[[str], Mechanism], challenges: int) -> None:
    assert dovecot_auth(dovecot_socket, build(GOOD_PASSWORD)) == ("OK", challenges)
    verb, _ = dovecot_auth(dovecot_socket, build("not the password"))
    assert verb == "FAIL"


def test_dovecot_scram_server_final_is_verified(dovecot_socket: Path) -> None:
    mech = ScramSHA256(GOOD_USER, GOOD_PASSWORD)
    assert dovecot_auth(dovecot_socket, mech) == ("OK", 2)
    with pytest.raises(SASLError, match="unexpected"):
        mech.respond(b"")  # the server's proof was consumed and checked
