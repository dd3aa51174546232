"""SASL client mechanisms for SMTP AUTH (RFC 4954), as pure objects.

A mechanism turns the server's challenges into the client's responses; the
SMTP core moves the lines.  The driving loop is::

    mech = choose_mechanism(extensions.auth, username=u, password=p)
    ir = mech.initial_response()        # None, or bytes for the AUTH line
    send("AUTH " + mech.name + ("" if ir is None else " " + encode_payload(ir)))
    while reply.code == 334:            # a SASLError here means: send CANCEL ("*")
        send(encode_response(mech.respond(decode_challenge(reply.text))))
    if reply.code == 235:
        mech.verify_success(None)       # SCRAM: was the server's signature checked?

Credentials never appear in a mechanism's ``repr()`` nor in the text of any
exception raised here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
import stringprep
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable

from .chars import CONTROL
from .errors import NoCommonMechanism, SASLError

__all__ = [
    "CANCEL",
    "MAX_CHALLENGES",
    "MAX_SCRAM_ITERATIONS",
    "STRENGTH",
    "SUPPORTED",
    "CramMD5",
    "Login",
    "Mechanism",
    "OAuthBearer",
    "Plain",
    "ScramSHA256",
    "XOAuth2",
    "choose_mechanism",
    "decode_challenge",
    "encode_payload",
    "encode_response",
    "saslprep",
]

#: Password mechanisms, strongest first.
STRENGTH: tuple[str, ...] = ("SCRAM-SHA-256", "CRAM-MD5", "PLAIN", "LOGIN")
#: Every mechanism this module implements.
SUPPORTED: tuple[str, ...] = (*STRENGTH, "OAUTHBEARER", "XOAUTH2")
#: How many 334 challenges one mechanism answers before giving up.
MAX_CHALLENGES = 5
#: A server-chosen SCRAM iteration count is CPU time the client spends before
#: the server has proved anything; 10 million is ~2 s of PBKDF2 on a laptop
#: and far above any deployed setting (RFC 7677 §4 asks for at least 4096).
MAX_SCRAM_ITERATIONS = 10_000_000
#: The line a client sends to abandon an exchange (RFC 4954 §4).
CANCEL = "*"


# --- base64 framing (RFC 4954 §4) -------------------------------------------


def encode_payload(data: bytes) -> str:
    """Base64 for the initial response on the AUTH line.

    An empty initial response is sent as ``=`` (RFC 4954 §4), so that it
    differs from no initial response at all.
    """
    return base64.b64encode(data).decode("ascii") or "="


def encode_response(data: bytes) -> str:
    """Base64 for a line answering a 334 challenge.

    Unlike :func:`encode_payload`, an empty response is an empty line: the
    ``=`` form exists only for the AUTH line (RFC 4954 §4 and §8 grammar).
    """
    return base64.b64encode(data).decode("ascii")


def decode_challenge(text: str) -> bytes:
    """Decode the text of a 334 reply; surrounding whitespace is ignored.

    Raises :class:`SASLError` on anything but strict base64 (RFC 4954 §4: a
    client that cannot decode a challenge must cancel).
    """
    stripped = text.strip()
    if stripped in ("", "="):
        return b""  # "334 " is an empty challenge; tolerate the "=" form too
    try:
        raw = stripped.encode("ascii")
    except UnicodeEncodeError:
        raise SASLError("server challenge is not base64 (non-ASCII text)") from None
    try:
        return base64.b64decode(raw, validate=True)
    except binascii.Error:
        raise SASLError("server challenge is not valid base64") from None


# --- argument checks ----------------------------------------------------------


def _text(value: object, what: str, *, allow_empty: bool = False) -> str:
    """Check a credential argument; messages name the argument, never its value."""
    if value is None:
        raise ValueError(f"a {what} is required")
    if not isinstance(value, str):
        raise TypeError(f"the {what} must be str, not {type(value).__name__}")
    if not value and not allow_empty:
        raise ValueError(f"the {what} must not be empty")
    return value


def _utf8(value: str, what: str) -> bytes:
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError:
        # The codec's own message quotes the offending character: never show it.
        raise ValueError(f"the {what} is not valid Unicode text") from None


def _no_controls(value: str, what: str) -> str:
    if CONTROL.search(value):
        raise ValueError(f"the {what} must not contain control characters")
    return value


# --- SASLprep (RFC 4013) ------------------------------------------------------

# RFC 4013 §2.3: the prohibited output tables of RFC 3454.
_PROHIBITED: tuple[Callable[[str], bool], ...] = (
    stringprep.in_table_c12,
    stringprep.in_table_c21,
    stringprep.in_table_c22,
    stringprep.in_table_c3,
    stringprep.in_table_c4,
    stringprep.in_table_c5,
    stringprep.in_table_c6,
    stringprep.in_table_c7,
    stringprep.in_table_c8,
    stringprep.in_table_c9,
)


def saslprep(text: str, *, allow_unassigned: bool = True) -> str:
    """Prepare a user name or password with the SASLprep profile (RFC 4013).

    The whole profile is applied: mapping (§2.1), NFKC (§2.2), prohibited
    output (§2.3), bidi checks (§2.4) and, unless ``allow_unassigned``,
    unassigned code points (§2.5).  The tables are the stdlib's
    :mod:`stringprep` ones, which are Unicode 3.2 as RFC 3454 requires, and
    NFKC uses ``unicodedata.ucd_3_2_0`` for the same reason.  SCRAM treats
    passwords as "query" strings (RFC 5802 §2.2), hence the default.
    Raises ValueError (without quoting the text) when the string is refused.
    """
    mapped = "".join(
        " " if stringprep.in_table_c12(ch) else ch  # non-ASCII spaces -> SPACE
        for ch in text
        if not stringprep.in_table_b1(ch)  # "commonly mapped to nothing"
    )
    prepared = unicodedata.ucd_3_2_0.normalize("NFKC", mapped)
    for ch in prepared:
        if any(table(ch) for table in _PROHIBITED):
            raise ValueError("the text contains a character SASLprep prohibits")
        if not allow_unassigned and stringprep.in_table_a1(ch):
            raise ValueError("the text contains an unassigned code point")
    # RFC 3454 §6: right-to-left text must not mix in left-to-right characters
    # and must begin and end with a right-to-left character.
    if any(stringprep.in_table_d1(ch) for ch in prepared) and (
        any(stringprep.in_table_d2(ch) for ch in prepared)
        or not stringprep.in_table_d1(prepared[0])
        or not stringprep.in_table_d1(prepared[-1])
    ):
        raise ValueError("the text fails the SASLprep bidirectional check")
    return prepared


def _prepared(value: str, what: str) -> str:
    try:
        prepared = saslprep(value)
    except ValueError as exc:
        raise ValueError(f"the {what} is refused by SASLprep: {exc}") from None
    if not prepared:
        raise ValueError(f"the {what} is empty after SASLprep")
    return prepared


# --- mechanisms ---------------------------------------------------------------


class Mechanism(ABC):
    """One client side of a SASL exchange.

    ``name`` is the IANA mechanism name sent on the AUTH line.  Subclasses
    implement :meth:`_step`; :meth:`respond` adds the cap on challenges.
    ``error_details`` holds the decoded JSON error an OAuth server sent, if any.
    """

    name: str

    def __init__(self) -> None:
        self._challenges = 0
        self.error_details: dict[str, object] | None = None

    def initial_response(self) -> bytes | None:
        """The decoded initial response for the AUTH line, or None if there is none.

        ``b""`` means an empty initial response (sent as ``=``).
        """
        return None

    def respond(self, challenge: bytes) -> bytes:
        """Answer the decoded payload of a 334 reply with the decoded response.

        Raises :class:`SASLError` when the exchange cannot go on.
        """
        self._challenges += 1
        if self._challenges > MAX_CHALLENGES:
            raise SASLError(f"{self.name}: too many challenges (more than {MAX_CHALLENGES})")
        return self._step(challenge)

    @abstractmethod
    def _step(self, challenge: bytes) -> bytes:
        """Answer one challenge (the cap is already checked)."""

    def verify_success(self, data: bytes | None) -> None:
        """Check the exchange once the server has replied 235.

        Only mechanisms that authenticate the server (SCRAM) do anything here.
        """
        return None

    def __repr__(self) -> str:
        # Deliberately no user name, password or token (architecture: credentials
        # never appear in logs, reprs or exceptions).
        return f"<{type(self).__name__} SASL {self.name} mechanism, credentials hidden>"


class Plain(Mechanism):
    """PLAIN (RFC 4616): ``authzid NUL authcid NUL passwd`` in UTF-8."""

    name = "PLAIN"

    def __init__(self, username: str, password: str, authzid: str = "") -> None:
        super().__init__()
        parts = (
            _text(authzid, "authorization identity", allow_empty=True),
            _text(username, "username"),
            _text(password, "password"),
        )
        if any("\0" in part for part in parts):
            # RFC 4616 §2: NUL is the separator and may not appear inside a field.
            raise ValueError("PLAIN credentials must not contain NUL characters")
        encoded = [_utf8(part, "credentials") for part in parts]
        self._message = b"\0".join(encoded)

    def initial_response(self) -> bytes | None:
        return self._message

    def _step(self, challenge: bytes) -> bytes:
        # Only reached when the initial response was not sent: the server asks
        # for it with an empty challenge (RFC 4954 §4).  Answer that once.
        if self._challenges > 1:
            raise SASLError("PLAIN: unexpected further challenge")
        return self._message


class Login(Mechanism):
    """LOGIN (draft-murchison-sasl-login): user name, then password.

    Challenges are answered by their order, not their text, since servers
    word them differently ("Username:", "User Name\\0" from aiosmtpd...).
    """

    name = "LOGIN"

    def __init__(self, username: str, password: str) -> None:
        super().__init__()
        self._answers = (
            _utf8(_text(username, "username"), "username"),
            _utf8(_text(password, "password"), "password"),
        )

    def _step(self, challenge: bytes) -> bytes:
        if self._challenges > len(self._answers):
            raise SASLError("LOGIN: unexpected third challenge")
        return self._answers[self._challenges - 1]


class CramMD5(Mechanism):
    """CRAM-MD5 (RFC 2195): ``user SP hex(HMAC-MD5(password, challenge))``."""

    name = "CRAM-MD5"

    def __init__(self, username: str, password: str) -> None:
        super().__init__()
        self._user = _utf8(_text(username, "username"), "username")
        self._key = _utf8(_text(password, "password"), "password")

    def _step(self, challenge: bytes) -> bytes:
        if self._challenges > 1:
            raise SASLError("CRAM-MD5: unexpected further challenge")
        if not challenge:
            raise SASLError("CRAM-MD5: the server sent an empty challenge")
        digest = hmac.new(self._key, challenge, "md5").hexdigest()
        return self._user + b" " + digest.encode("ascii")


def _json_error(challenge: bytes) -> dict[str, object] | None:
    """The JSON object an OAuth server sends as its error challenge, if it is one."""
    try:
        value = json.loads(challenge.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


class _OAuth(Mechanism):
    """Shared logic: one client-first message, then at most one error challenge."""

    _error_answer: bytes

    def __init__(self) -> None:
        super().__init__()
        self._message = b""
        self._failed = False

    def initial_response(self) -> bytes | None:
        return self._message

    def _step(self, challenge: bytes) -> bytes:
        if self._failed:
            raise SASLError(f"{self.name}: the server kept challenging after its error")
        if not challenge and self._challenges == 1:
            return self._message  # the initial response was not sent
        # A non-empty challenge is the server's JSON error: answer so that the
        # server can end the exchange with its 5xx reply.
        self._failed = True
        self.error_details = _json_error(challenge)
        return self._error_answer


class XOAuth2(_OAuth):
    """Google/Microsoft XOAUTH2: ``user=U ^Aauth=Bearer T ^A^A``.

    After a failed token the server sends a JSON error as a 334 challenge; the
    client answers with an empty line and the server then replies 535.
    """

    name = "XOAUTH2"
    _error_answer = b""

    def __init__(self, username: str, token: str) -> None:
        super().__init__()
        user = _no_controls(_text(username, "username"), "username")
        bearer = _no_controls(_text(token, "OAuth2 token"), "OAuth2 token")
        self._message = (
            b"user="
            + _utf8(user, "username")
            + b"\x01auth=Bearer "
            + _utf8(bearer, "OAuth2 token")
            + b"\x01\x01"
        )


def _saslname(value: str) -> str:
    """RFC 5801 §4 / RFC 5802 §5.1: escape "=" and "," in a name."""
    return value.replace("=", "=3D").replace(",", "=2C")


class OAuthBearer(_OAuth):
    """OAUTHBEARER (RFC 7628 §3.1) with a GS2 header and host/port key-values.

    The error challenge (RFC 7628 §3.2.2) is answered with a single ``^A``.
    """

    name = "OAUTHBEARER"
    _error_answer = b"\x01"

    def __init__(
        self, username: str, token: str, host: str | None = None, port: int | None = None
    ) -> None:
        super().__init__()
        # The authorization identity is optional in RFC 7628; "" leaves it out.
        user = _no_controls(_text(username, "username", allow_empty=True), "username")
        bearer = _no_controls(_text(token, "OAuth2 token"), "OAuth2 token")
        header = f"n,a={_saslname(user)}," if user else "n,,"
        fields = []
        if host is not None:
            fields.append("host=" + _no_controls(_text(host, "host"), "host"))
        if port is not None:
            if isinstance(port, bool) or not isinstance(port, int):
                raise TypeError(f"the port must be int, not {type(port).__name__}")
            if not 0 <= port <= 65535:
                raise ValueError("the port must be between 0 and 65535")
            fields.append(f"port={port}")
        fields.append("auth=Bearer " + bearer)
        text = header + "\x01" + "".join(field + "\x01" for field in fields) + "\x01"
        self._message = _utf8(text, "OAUTHBEARER credentials")


# RFC 5802 §7: printable = %x21-2B / %x2D-7E (printable ASCII except ",").
_NONCE = re.compile(r"[\x21-\x2b\x2d-\x7e]+")
_ITERATIONS = re.compile(r"[1-9][0-9]{0,9}")


def _scram_attributes(message: bytes) -> list[tuple[str, str]]:
    """Split a SCRAM server message into its ``a=value`` attributes."""
    try:
        text = message.decode("utf-8")
    except UnicodeDecodeError:
        raise SASLError("SCRAM: server message is not UTF-8") from None
    attrs = []
    for part in text.split(","):
        if len(part) < 2 or part[1] != "=" or not ("a" <= part[0].lower() <= "z"):
            raise SASLError("SCRAM: malformed server message")
        attrs.append((part[0], part[2:]))
    return attrs


def _b64(value: str, what: str) -> bytes:
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raise SASLError(f"SCRAM: the {what} is not valid base64") from None


def _printable(value: str, limit: int = 100) -> str:
    """Server text made safe to show in an exception message."""
    return "".join(ch if " " <= ch <= "~" else "?" for ch in value[:limit])


class ScramSHA256(Mechanism):
    """SCRAM-SHA-256 (RFC 5802, RFC 7677) without channel binding (GS2 flag "n").

    The user name and password go through SASLprep (see :func:`saslprep`).
    The server's signature is checked; :meth:`verify_success` raises if the
    exchange ended without that proof.  ``nonce`` exists for test vectors.
    """

    name = "SCRAM-SHA-256"
    _GS2_HEADER = b"n,,"

    def __init__(self, username: str, password: str, nonce: str | None = None) -> None:
        super().__init__()
        user = _prepared(_text(username, "username"), "username")
        self._password = _utf8(_prepared(_text(password, "password"), "password"), "password")
        if nonce is None:
            nonce = secrets.token_urlsafe(24)  # 32 characters from [A-Za-z0-9_-]
        elif not isinstance(nonce, str) or not _NONCE.fullmatch(nonce):
            raise ValueError("the SCRAM nonce must be printable ASCII without ','")
        self._nonce = nonce
        self._client_first_bare = _utf8(f"n={_saslname(user)},r={nonce}", "username")
        self._server_signature: bytes | None = None  # set once server-first is answered
        self._verified = False

    def initial_response(self) -> bytes | None:
        return self._GS2_HEADER + self._client_first_bare

    def _step(self, challenge: bytes) -> bytes:
        if self._verified:
            raise SASLError("SCRAM: unexpected challenge after the server's proof")
        if self._server_signature is not None:
            self._check_server_final(challenge, self._server_signature)
            return b""  # RFC 4954 §4: no data with success, so answer the 334 empty
        if not challenge:
            return self._GS2_HEADER + self._client_first_bare  # the initial response was not sent
        return self._client_final(challenge)

    def _client_final(self, server_first: bytes) -> bytes:
        attrs = _scram_attributes(server_first)
        if attrs[0][0] == "m":
            raise SASLError("SCRAM: the server requires an unsupported extension")
        if [key for key, _ in attrs[:3]] != ["r", "s", "i"]:
            raise SASLError("SCRAM: malformed server-first-message")
        nonce, salt_text, count = (value for _, value in attrs[:3])
        # RFC 5802 §5.1: the server's nonce extends ours with its own part.
        if not (_NONCE.fullmatch(nonce) and nonce.startswith(self._nonce) and nonce != self._nonce):
            raise SASLError("SCRAM: the server nonce does not extend the client nonce")
        salt = _b64(salt_text, "salt")
        if not _ITERATIONS.fullmatch(count) or int(count) > MAX_SCRAM_ITERATIONS:
            raise SASLError("SCRAM: the iteration count is invalid or too large")

        # RFC 5802 §3.
        salted = hashlib.pbkdf2_hmac("sha256", self._password, salt, int(count))
        self._password = b""  # not needed any more
        client_key = hmac.digest(salted, b"Client Key", "sha256")
        stored_key = hashlib.sha256(client_key).digest()
        without_proof = b"c=" + base64.b64encode(self._GS2_HEADER) + b",r=" + nonce.encode()
        auth_message = self._client_first_bare + b"," + server_first + b"," + without_proof
        signature = hmac.digest(stored_key, auth_message, "sha256")
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        server_key = hmac.digest(salted, b"Server Key", "sha256")
        self._server_signature = hmac.digest(server_key, auth_message, "sha256")
        return without_proof + b",p=" + base64.b64encode(proof)

    def _check_server_final(self, server_final: bytes, expected: bytes) -> None:
        key, value = _scram_attributes(server_final)[0]
        if key == "e":
            raise SASLError(f"SCRAM: the server reported an error: {_printable(value)}")
        if key != "v":
            raise SASLError("SCRAM: malformed server-final-message")
        if not hmac.compare_digest(_b64(value, "server signature"), expected):
            raise SASLError("SCRAM: server signature mismatch (the server is not who it claims)")
        self._verified = True

    def verify_success(self, data: bytes | None) -> None:
        """Raise :class:`SASLError` unless the server's signature was verified.

        SMTP has no "additional data with success" (RFC 4954 §4), so the
        proof normally came in a last 334.  In case a server puts it in the
        235 text instead, ``data`` is checked too, raw or base64.
        """
        if self._verified:
            return
        if data and self._server_signature is not None:
            candidate = data.strip()
            if not candidate.startswith((b"v=", b"e=")):
                try:
                    candidate = base64.b64decode(candidate, validate=True)
                except binascii.Error:
                    candidate = b""
            if candidate.startswith((b"v=", b"e=")):
                self._check_server_final(candidate, self._server_signature)
                return
        raise SASLError("SCRAM: the server signature was never verified")


# --- choosing -----------------------------------------------------------------


def _build(
    name: str,
    username: str,
    password: str | None,
    token: str | None,
    host: str | None,
    port: int | None,
) -> Mechanism:
    if name in ("XOAUTH2", "OAUTHBEARER"):
        if token is None:
            raise ValueError(f"{name} needs an OAuth2 token")
        if name == "XOAUTH2":
            return XOAuth2(username, token)
        return OAuthBearer(username, token, host=host, port=port)
    if password is None:
        raise ValueError(f"{name} needs a password")
    if name == "SCRAM-SHA-256":
        return ScramSHA256(username, password)
    if name == "CRAM-MD5":
        return CramMD5(username, password)
    if name == "PLAIN":
        return Plain(username, password)
    return Login(username, password)


def choose_mechanism(
    advertised: Iterable[str],
    *,
    username: str,
    password: str | None,
    oauth2_token: str | None = None,
    preferred: str | None = None,
    host: str | None = None,
    port: int | None = None,
) -> Mechanism:
    """Pick the mechanism to authenticate with and build it.

    ``advertised`` is the server's AUTH list (any case; a space-separated
    string is accepted too).  With ``preferred`` that mechanism is used, if
    the server offers it.  Otherwise, with an OAuth2 token: OAUTHBEARER, else
    XOAUTH2; then (or without a token) the strongest of :data:`STRENGTH`.
    ``host`` and ``port`` only go into OAUTHBEARER.

    Raises :class:`NoCommonMechanism` when nothing fits, ValueError or
    TypeError for bad arguments.
    """
    if isinstance(advertised, str):
        advertised = advertised.split()
    offered = tuple(dict.fromkeys(name.strip().upper() for name in advertised if name.strip()))

    if preferred is not None:
        wanted = _text(preferred, "preferred mechanism").strip().upper()
        if wanted not in SUPPORTED:
            raise ValueError(
                f"unsupported SASL mechanism {_printable(preferred)!r}; "
                f"postwire supports {', '.join(SUPPORTED)}"
            )
        if wanted not in offered:
            raise NoCommonMechanism(offered, (wanted,), f"{wanted} is not offered")
        return _build(wanted, username, password, oauth2_token, host, port)

    usable: tuple[str, ...] = ()
    if oauth2_token is not None:
        usable = ("OAUTHBEARER", "XOAUTH2")
        for name in usable:
            if name in offered:
                return _build(name, username, password, oauth2_token, host, port)
        if password is None:
            raise NoCommonMechanism(offered, usable)
    if password is None:
        raise ValueError("a password (or an OAuth2 token) is required to authenticate")
    for name in STRENGTH:
        if name in offered:
            return _build(name, username, password, oauth2_token, host, port)
    raise NoCommonMechanism(offered, usable + STRENGTH)
