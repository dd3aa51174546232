"""DKIM signing (issue 14, item 1), checked by another implementation: OpenDKIM.

Every message goes to the test Postfix's DKIM port, whose milter (OpenDKIM, verify mode,
tests/servers/opendkim.py) writes its verdict into the delivered copy.  The keys are made by
the fixture with ``cryptography``; postwire reads them from the files, as a user's would be.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import io
import re
from email.message import EmailMessage

import pytest

from postwire import AsyncClient, AsyncPool, Client, DKIMSigner, Pool, SendResult
from servers.opendkim import DOMAIN, DkimVerifier, dkim_verdicts
from servers.postfix import PostfixServer

SENDER = f"news@{DOMAIN}"
RCPT = "reader@test.example"
#: Bare LF line endings, a line starting with a dot, no final line break: postwire makes this
#: CRLF text, ends the last line and dot-stuffs it; the signature must cover the first two.
RAW = (
    f"From: News <{SENDER}>\nTo: {RCPT}\nSubject: signed\n"
    "Date: Thu, 03 Dec 2026 10:00:00 +0000\nMessage-ID: <raw@example.org>\n\n"
    "first line\n.a dotted line\r\nlast line, not ended"
).encode()


def _signer(oracle: DkimVerifier, selector: str, **options: object) -> DKIMSigner:
    return DKIMSigner.from_file(oracle.key_files[selector], DOMAIN, selector, **options)


def _delivered(postfix: PostfixServer, count: int = 1) -> list[bytes]:
    return postfix.wait_for_messages(count, timeout=30)


def _signature_tags(delivered: bytes) -> dict[str, str]:
    msg = email.message_from_bytes(delivered, policy=email.policy.compat32)
    value = "".join(str(msg["DKIM-Signature"]).split())
    return dict(tag.split("=", 1) for tag in value.split(";") if tag)


@pytest.mark.parametrize("selector", ["rsa", "rsa1", "ed"])
def test_sync_client_signatures_pass(
    postfix_inbox: PostfixServer, dkim_oracle: DkimVerifier, selector: str
) -> None:
    """RSA from PKCS #8 and PKCS #1 PEM, Ed25519 from PKCS #8 PEM; over STARTTLS."""
    signer = _signer(dkim_oracle, selector)
    with Client(
        postfix_inbox.host, postfix_inbox.dkim_port, cafile=postfix_inbox.ca_file, dkim=signer
    ) as client:
        result = client.send(RAW, sender=SENDER, recipients=[RCPT])
    assert result.accepted == [RCPT]
    (delivered,) = _delivered(postfix_inbox)
    assert dkim_verdicts(delivered) == ["pass"]
    tags = _signature_tags(delivered)
    assert tags["a"] == signer.algorithm and tags["s"] == selector and tags["d"] == DOMAIN
    assert tags["c"] == "relaxed/relaxed"
    # The body as delivered is the normalized one the signature was computed over.
    assert delivered.endswith(b"first line\n.a dotted line\nlast line, not ended\n")


def test_async_client_signs_an_email_message_after_adding_date_and_message_id(
    postfix_inbox: PostfixServer, dkim_oracle: DkimVerifier
) -> None:
    msg = EmailMessage()
    msg["From"] = SENDER
    msg["To"] = RCPT
    msg["Subject"] = "Grüße, signed"  # encoded word: the serialized form is what is signed
    msg.set_content("Hello\n\nwith a UTF-8 body: é\n", cte="8bit")
    signer = _signer(dkim_oracle, "ed")

    async def main() -> SendResult:
        async with AsyncClient(
            postfix_inbox.host, postfix_inbox.dkim_port, tls="none", dkim=signer
        ) as client:
            return await client.send(msg)

    assert asyncio.run(main()).accepted == [RCPT]
    assert "Date" not in msg and "Message-ID" not in msg  # the caller's message is untouched
    (delivered,) = _delivered(postfix_inbox)
    assert dkim_verdicts(delivered) == ["pass"]
    signed = _signature_tags(delivered)["h"].split(":")
    assert "date" in signed and "message-id" in signed  # what postwire added is signed
    assert signed.count("from") == 2  # and nobody can add a second From


@pytest.mark.parametrize("chunking", [True, False], ids=["BDAT", "DATA"])
def test_both_framings_carry_the_signed_bytes(
    postfix_inbox: PostfixServer, dkim_oracle: DkimVerifier, chunking: bool
) -> None:
    lines: list[str] = []
    signer = _signer(dkim_oracle, "rsa", canonicalization="simple/simple")
    with Client(
        postfix_inbox.host,
        postfix_inbox.dkim_port,
        tls="none",
        dkim=signer,
        chunking=chunking,
        transcript=lines.append,
    ) as client:
        # A file, read from where it stands: signing reads it whole.
        client.send(io.BytesIO(RAW), sender=SENDER, recipients=[RCPT])
    # The transcript shows BDAT chunks as content only: no DATA command means BDAT was used.
    assert any("-> DATA" in line for line in lines) is not chunking
    (delivered,) = _delivered(postfix_inbox)
    # simple/simple: not one byte of the signed header or body may differ on arrival.
    assert dkim_verdicts(delivered) == ["pass"]
    assert _signature_tags(delivered)["c"] == "simple/simple"


def test_header_list_is_configurable(
    postfix_inbox: PostfixServer, dkim_oracle: DkimVerifier
) -> None:
    signer = _signer(dkim_oracle, "rsa", headers=["From", "Subject", "Date", "From"])
    with Client(postfix_inbox.host, postfix_inbox.dkim_port, tls="none", dkim=signer) as client:
        client.send(iter([RAW[:20], RAW[20:]]), sender=SENDER, recipients=[RCPT])
    (delivered,) = _delivered(postfix_inbox)
    assert dkim_verdicts(delivered) == ["pass"]
    assert _signature_tags(delivered)["h"] == "from:subject:date:from"


def test_pipelined_send_many_and_both_pools(
    postfix_inbox: PostfixServer, dkim_oracle: DkimVerifier
) -> None:
    signer = _signer(dkim_oracle, "ed")
    items = [(RAW.replace(b"signed", b"signed %d" % i), SENDER, [RCPT]) for i in range(6)]
    with Client(postfix_inbox.host, postfix_inbox.dkim_port, tls="none", dkim=signer) as client:
        outcomes = client.send_many(items[:2])
    with Pool(postfix_inbox.host, postfix_inbox.dkim_port, tls="none", dkim=signer) as pool:
        outcomes += pool.send_many(items[2:4])

    async def main() -> list[SendResult | BaseException]:
        async with AsyncPool(
            postfix_inbox.host, postfix_inbox.dkim_port, tls="none", dkim=signer
        ) as pool:
            return await pool.send_many(items[4:])

    outcomes += asyncio.run(main())
    assert all(isinstance(o, SendResult) for o in outcomes)
    delivered = _delivered(postfix_inbox, 6)
    assert [dkim_verdicts(m) for m in delivered] == [["pass"]] * 6
    subjects = sorted(re.search(rb"Subject: (.*)", m).group(1) for m in delivered)  # type: ignore[union-attr]
    assert subjects == [b"signed %d" % i for i in range(6)]


def test_the_oracle_fails_a_key_that_is_not_the_published_one(
    postfix_inbox: PostfixServer, dkim_oracle: DkimVerifier
) -> None:
    """The verifier really verifies: a signature by another key fails, no signature is none."""
    with Client(
        postfix_inbox.host, postfix_inbox.dkim_port, tls="none",
        dkim=_signer(dkim_oracle, "wrong"),
    ) as client:  # fmt: skip
        client.send(RAW, sender=SENDER, recipients=[RCPT])
    with Client(postfix_inbox.host, postfix_inbox.dkim_port, tls="none") as client:
        client.send(RAW, sender=SENDER, recipients=[RCPT])
    first, second = _delivered(postfix_inbox, 2)
    assert dkim_verdicts(first) == ["fail"]
    assert dkim_verdicts(second) == ["none"]


def test_an_async_iterable_cannot_be_signed_and_says_why(dkim_oracle: DkimVerifier) -> None:
    async def chunks():  # type: ignore[no-untyped-def]
        yield RAW

    async def main() -> None:
        client = AsyncClient("127.0.0.1", 25, tls="none", dkim=_signer(dkim_oracle, "rsa"))
        # Refused while the message is prepared, before any connection is needed.
        await client.send(chunks(), sender=SENDER, recipients=[RCPT])

    with pytest.raises(TypeError, match="whole message"):
        asyncio.run(main())
