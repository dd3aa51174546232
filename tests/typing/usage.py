"""Public API as a user writes it, checked by ``mypy --strict`` (never run by pytest).

If a public signature changes in a way that breaks ordinary use, the type
check in ``./run tests`` fails here.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from email.message import EmailMessage

from postwire import (
    DSN,
    AsyncClient,
    AsyncPool,
    CancelHandle,
    Client,
    DKIMSigner,
    Pool,
    PossiblyDelivered,
    RecipientsRefused,
    Reply,
    SendResult,
    SMTPError,
    Timeouts,
)
from postwire.head import compose_message, extract_field, standard_message_header
from postwire.logging import SMTPHandler
from postwire.smtp import ports_to_ssl_ports, smtp_send_message, smtp_sending_end_of_message


def sync_usage(msg: EmailMessage) -> list[str]:
    ctx: ssl.SSLContext = ssl.create_default_context()
    with Client(
        "mail.example.org",
        587,
        ssl_context=ctx,
        username="u",
        password="p",
        timeouts=Timeouts(connect=5, data_end=120),
    ) as client:
        result: SendResult = client.send(msg)
        raw: SendResult = client.send(b"Subject: x\r\n\r\nx\r\n", sender="a@x", recipients=["b@y"])
        refused: dict[str, Reply] = dict(raw.refused)
        outcomes = client.send_many([msg, (b"x\r\n", "a@x", ["b@y"])])
        for outcome in outcomes:
            if isinstance(outcome, SendResult):
                print(outcome.reply.code, outcome.reply.enhanced_status)
        handle = CancelHandle()
        client.send(msg, cancel=handle, end_of_message=lambda: None)
        print(refused, client.extensions.max_size, client.tls_active)
        return result.accepted


async def async_usage(msg: EmailMessage) -> None:
    async def token() -> str:
        return "t"

    async with AsyncClient("mail.example.org", 587, username="u", oauth2_token=token) as client:
        try:
            result = await client.send(msg)
            print(result.accepted)
        except RecipientsRefused as exc:
            print(exc.refused)
        except SMTPError as exc:
            print(exc.step, exc.reply, exc.is_transient)
        for outcome in await client.send_many([msg]):
            print(outcome)
        async for outcome in client.send_many_iter([msg]):
            print(outcome)
    async with AsyncPool("mail.example.org", max_connections=4) as pool:
        outcomes: list[SendResult | BaseException] = await pool.send_many([msg])
        print(outcomes)
        async for outcome in pool.send_many_iter([msg]):
            print(outcome)


def racket_usage() -> None:
    header = standard_message_header("a@x", ["b@y"], [], [], "hi")
    assert extract_field("Subject", header) == "hi"
    with smtp_sending_end_of_message.parameterize(lambda: None):
        smtp_send_message(
            "mail.example.org",
            "a@x",
            ["b@y"],
            header,
            ["line"],
            587,
            auth_user="a",
            auth_passwd="p",
            tls_encode=ports_to_ssl_ports,
        )
    data: bytes = compose_message(header, ["line"])
    with Pool("mail.example.org") as pool:
        pool.send(data, sender="a@x", recipients=["b@y"])


def signing_and_delivery_options(msg: EmailMessage) -> None:
    signer = DKIMSigner.from_file("dkim.pem", domain="example.org", selector="s1")
    record: str = signer.dns_record()
    print(signer.dns_name(), record, signer.algorithm)
    signer2 = DKIMSigner("example.org", "s2", b"...", headers=["From", "To"],
                         canonicalization="relaxed/simple")  # fmt: skip
    with Client("/run/lmtp.sock", lmtp=True, tls="none", dkim=signer2) as lmtp:
        try:
            lmtp.send(msg, dsn=DSN(notify={"FAILURE"}, ret="HDRS", envid="x"), require_tls=False)
        except PossiblyDelivered as exc:
            known: tuple[str, ...] = exc.delivered + exc.unknown
            print(known, dict(exc.refused))
    Pool("mail.example.org", proxy="socks5://127.0.0.1:1080", dkim=signer)


def logging_usage(password: str) -> None:
    handler = SMTPHandler(("smtp.example.org", 587), "app@example.org", ["ops@example.org"],
                          "app errors", credentials=("app", password), secure=())  # fmt: skip
    handler.setLevel(logging.ERROR)
    logging.getLogger().addHandler(handler)
    by_url = SMTPHandler(url="smtps://app:pw@smtp.example.org", toaddrs="ops@example.org",
                         batch_delay=10.0, rate_limit=None, drop="oldest",
                         client_options={"cafile": "/etc/ssl/ca.pem"})  # fmt: skip
    went: bool = by_url.send_pending(timeout=2.0)
    counts: tuple[int, int, int, int] = (
        by_url.messages_sent,
        by_url.records_sent,
        by_url.records_dropped,
        by_url.send_failures,
    )
    print(went, counts, by_url.records_queued)
    by_url.close()


if __name__ == "__main__":  # pragma: no cover
    asyncio.run(async_usage(EmailMessage()))


def django_backend_usage() -> int:
    from postwire.django import EmailBackend

    backend = EmailBackend(
        host="mail.example.org", port=587, use_tls=True, fail_silently=False, cafile="ca.pem"
    )
    opened: bool | None = backend.open()
    try:
        sent: int = backend.send_messages([])
    finally:
        backend.close()
    return sent + int(bool(opened))


def django_outbox_backend_usage() -> int:
    from postwire.django import OutboxBackend
    from postwire.logging import SMTPHandler
    from postwire.outbox import Outbox

    backend = OutboxBackend(fail_silently=True, url="sqlite:///outbox.sqlite3", priority=2)
    with backend:
        queued: int = backend.send_messages([])
    handler = SMTPHandler(fromaddr="app@x", toaddrs="ops@y", outbox=True, account="alerts")
    shared = SMTPHandler(fromaddr="app@x", toaddrs="ops@y", outbox=Outbox())
    handler.close()
    shared.close()
    return queued


def outbox_usage(msg: EmailMessage) -> dict[str, int]:
    from postwire.outbox import Entry, Outbox, RelayLimits, RetryPolicy, State

    with Outbox("sqlite:///outbox.sqlite3") as outbox:
        entry: Entry = outbox.put(msg, priority=1, route="work")
        entries: list[Entry] = outbox.put_many([(b"Subject: x\r\n\r\nx\r\n", "a@x", ["b@y"])])
        counts: dict[State, int] = outbox.counts()
        again: Entry = outbox.retry(entry.id)
        waiting = [e.id for e in outbox.list(State.DEFERRED) if e.next_attempt_at is not None]
        assert again.id == entry.id and entries and counts and waiting is not None
        return outbox.work(
            relay="smtp+starttls://mail.example.org",
            until_empty=True,
            policy=RetryPolicy(min_backoff=60, lifetime=86400, uncertain="hold"),
            limits=RelayLimits(max_connections=4, rate=10),
        )


async def async_outbox_usage(msg: EmailMessage) -> int:
    from postwire.outbox import AsyncOutbox

    async with AsyncOutbox() as outbox:
        entry = await outbox.put(msg)
        await outbox.hold(entry.id)
        return (await outbox.release(entry.id)).id
