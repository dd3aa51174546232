"""DKIMSigner without a server: keys, refusals, the wire form, the envelope after signing.

Whether the signatures verify is asked of OpenDKIM in tests/client/test_dkim.py; here the
public key postwire derives is checked against ``cryptography``'s, and the choices a user
makes are checked to be refused clearly when wrong.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from postwire import Client, DKIMSigner
from postwire._core.message import prepare_message
from postwire.signing import sign_prepared, wire_form

PEM = serialization.Encoding.PEM
NO_ENCRYPTION = serialization.NoEncryption()
MESSAGE = b"From: a@example.org\nTo: b@example.net\nSubject: hi\n\nbody\n.dot\nend"


def _rsa(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def _spki_b64(key: rsa.RSAPrivateKey) -> str:
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


@pytest.mark.parametrize(
    "fmt", [serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL]
)
def test_rsa_keys_give_the_published_record(fmt: serialization.PrivateFormat) -> None:
    key = _rsa()
    signer = DKIMSigner("example.org", "s1", key.private_bytes(PEM, fmt, NO_ENCRYPTION))
    assert signer.algorithm == "rsa-sha256"
    assert signer.dns_name() == "s1._domainkey.example.org"
    assert signer.dns_record() == f"v=DKIM1; k=rsa; p={_spki_b64(key)}"
    assert "PRIVATE" not in repr(signer) and "p=" not in repr(signer)


def test_ed25519_keys_from_pem_and_from_dknewkeys_seed() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    raw_public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    record = f"v=DKIM1; k=ed25519; p={base64.b64encode(raw_public).decode()}"
    pem = key.private_bytes(PEM, serialization.PrivateFormat.PKCS8, NO_ENCRYPTION)
    seed = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, NO_ENCRYPTION
    )
    for given in (pem, pem.decode(), base64.b64encode(seed) + b"\n"):
        signer = DKIMSigner("example.org", "ed", given)
        assert signer.algorithm == "ed25519-sha256" and signer.dns_record() == record


def test_a_pem_written_with_crlf_line_endings_is_read() -> None:
    pem = _rsa().private_bytes(PEM, serialization.PrivateFormat.PKCS8, NO_ENCRYPTION)
    signer = DKIMSigner("example.org", "s", pem.replace(b"\n", b"\r\n"))
    assert signer.sign(MESSAGE).startswith(b"DKIM-Signature: v=1; a=rsa-sha256;")


def _encrypted() -> bytes:
    return _rsa().private_bytes(
        PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"pw")
    )


def _ec() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(PEM, serialization.PrivateFormat.PKCS8, NO_ENCRYPTION)


def _short_rsa() -> bytes:
    # cryptography makes no key under 1024 bits: the textbook one (n = 61 * 53), in PKCS #1.
    def integer(value: int) -> bytes:
        octets = value.to_bytes(value.bit_length() // 8 + 1, "big")
        return bytes([0x02, len(octets)]) + octets

    fields = b"".join(integer(v) for v in (0, 3233, 17, 413, 61, 53, 53, 49, 38))
    der = bytes([0x30, len(fields)]) + fields
    body = base64.encodebytes(der)
    return b"-----BEGIN RSA PRIVATE KEY-----\n" + body + b"-----END RSA PRIVATE KEY-----\n"


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (_encrypted, "encrypted"),
        (_ec, "neither RSA nor Ed25519"),
        (_short_rsa, "12 bits"),
        (lambda: b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "CERTIFICATE"),
        (lambda: b"not a key at all", "not a DKIM private key"),
        (lambda: b"-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n", "DER|short"),
    ],
)
def test_unusable_keys_are_refused_with_the_reason(make: Callable[[], bytes], reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        DKIMSigner("example.org", "s", make())


@pytest.fixture(scope="module")
def pem() -> bytes:
    return _rsa().private_bytes(PEM, serialization.PrivateFormat.PKCS8, NO_ENCRYPTION)


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        ({"headers": ["To", "Subject"]}, "From field must be signed"),
        ({"headers": ["From", "Received"]}, "changes in transit"),
        ({"headers": ["From", "Bad Name"]}, "not a header field name"),
        ({"canonicalization": "relaxed/loose"}, "simple or relaxed"),
        ({"identity": "user@example.com"}, "must be an address at example.org"),
        ({"identity": "user@notexample.org"}, "must be an address at example.org"),
    ],
)
def test_bad_choices_are_refused_when_the_signer_is_made(
    pem: bytes, options: dict[str, object], reason: str
) -> None:
    with pytest.raises(ValueError, match=reason):
        DKIMSigner("example.org", "s", pem, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("domain", ["", "exa mple.org", "a;b", "..org", "bücher.example"])
def test_bad_domains_are_refused(pem: bytes, domain: str) -> None:
    with pytest.raises(ValueError, match="domain"):
        DKIMSigner(domain, "s", pem)


def test_choices_are_kept(pem: bytes) -> None:
    signer = DKIMSigner(
        "example.org", "s", pem, headers="From:To:From", canonicalization="relaxed",
        identity="news@mail.example.org",
    )  # fmt: skip
    assert signer.headers == ("From", "To", "From")
    assert signer.canonicalization == ("relaxed", "simple")  # c=relaxed means relaxed/simple
    field = signer.signature(wire_form(MESSAGE))
    unfolded = b" ".join(field.split())
    assert b"c=relaxed/simple;" in unfolded and b"i=news@mail.example.org;" in unfolded
    assert b"h=from : to : from;" in unfolded


def test_the_wire_form_is_what_data_and_bdat_send() -> None:
    assert wire_form(b"a\nb\rc") == b"a\r\nb\r\nc\r\n"
    assert wire_form(b"a\r\n") == b"a\r\n"
    assert wire_form(b"") == b""
    assert wire_form(b"a\nb\0", binary=True) == b"a\nb\0"  # BINARYMIME travels as it is


def test_the_signature_verifies_over_the_wire_form(pem: bytes) -> None:
    signer = DKIMSigner("example.org", "s", pem)
    signed = signer.sign(MESSAGE)
    assert signed.endswith(b"\r\nbody\r\n.dot\r\nend\r\n")  # CRLF, the last line ended
    record = signer.dns_record().encode()

    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"s._domainkey.example.org."
        return record

    assert dkim.verify(signed, dnsfunc=dns)
    assert not dkim.verify(signed.replace(b"body", b"bodY"), dnsfunc=dns)


def test_signing_reads_streamed_content_and_updates_the_envelope(pem: bytes) -> None:
    signer = DKIMSigner("example.org", "s", pem)
    content = MESSAGE.replace(b"body", "bödy".encode())
    for given in (io.BytesIO(content), iter([content[:10], content[10:]])):
        prepared = prepare_message(given, sender="a@example.org", recipients=["b@example.net"])
        assert prepared.envelope.size in (None, len(content))
        signed = sign_prepared(prepared, signer)
        assert isinstance(signed.content, bytes) and signed.content.startswith(b"DKIM-Sig")
        assert signed.envelope.size == len(signed.content)
        assert signed.envelope.eight_bit is True and signed.envelope.recipients == (
            "b@example.net",
        )


def test_a_client_wants_a_dkim_signer(pem: bytes) -> None:
    with pytest.raises(TypeError, match="DKIMSigner"):
        Client("127.0.0.1", 25, dkim=pem)  # type: ignore[arg-type]
    client = Client("127.0.0.1", 25, dkim=DKIMSigner("example.org", "s", pem))
    assert client.dkim is not None and client.dkim.selector == "s"
