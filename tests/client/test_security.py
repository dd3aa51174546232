"""TLS that explains itself, pinning, STARTTLS injection, token refresh, secrets, timeouts."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import json
import logging
import ssl
import time
from collections.abc import Callable

import pytest
import trustme

from postwire import AsyncClient, Client, Timeouts, errors
from postwire._core.procedures import Wait
from servers.scripted import ScriptedServer

GREET = [("S", b"220 mx.test ESMTP\r\n"), ("C", b"EHLO client.test\r\n")]


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def _server_ctx(ca: trustme.CA, *names: str, **kw: object) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names, **kw).configure_cert(ctx)  # type: ignore[arg-type]
    return ctx


def _ca_file(ca: trustme.CA, tmp_path: object) -> str:
    path = f"{tmp_path}/ca.pem"
    ca.cert_pem.write_to_path(path)
    return path


def _implicit(
    ctx: ssl.SSLContext, script: list[tuple[object, ...]] | None = None
) -> ScriptedServer:
    steps = script or [("S", b"220 mx.test\r\n"), ("DRAIN", 1.0)]
    return ScriptedServer(steps, tls_context=ctx, implicit_tls=True, timeout=5)


def _connect(port: int, **kw: object) -> None:
    with Client("127.0.0.1", port, tls="implicit", local_hostname="client.test", timeout=3, **kw):  # type: ignore[arg-type]
        pass


# -- certificates ----------------------------------------------------------------------


def test_unknown_ca_says_how_to_pass_one(ca: trustme.CA) -> None:
    with _implicit(_server_ctx(ca, "127.0.0.1")) as server:
        with pytest.raises(errors.CertificateError, match="cafile") as info:
            _connect(server.port)
    assert "did not verify" in str(info.value)


def test_expired_certificate_says_expired(ca: trustme.CA, tmp_path: object) -> None:
    past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=2)
    ctx = _server_ctx(ca, "127.0.0.1", not_before=past - dt.timedelta(days=30), not_after=past)
    with _implicit(ctx) as server:
        with pytest.raises(errors.CertificateError, match="expired"):
            _connect(server.port, cafile=_ca_file(ca, tmp_path))


def test_wrong_host_and_server_hostname_override(ca: trustme.CA, tmp_path: object) -> None:
    ctx = _server_ctx(ca, "mail.example.org")
    cafile = _ca_file(ca, tmp_path)
    with _implicit(ctx) as server:
        with pytest.raises(errors.CertificateError, match="server_hostname"):
            _connect(server.port, cafile=cafile)
    script = [
        ("S", b"220 mx.test\r\n"),
        ("C", b"EHLO client.test\r\n"),
        ("S", b"250 mx\r\n"),
        ("C", b"QUIT\r\n"),
        ("S", b"221 bye\r\n"),
    ]
    with _implicit(ctx, script) as server:
        _connect(server.port, cafile=cafile, server_hostname="mail.example.org")
    assert server.errors == []


def test_fingerprint_pinning(ca: trustme.CA) -> None:
    leaf = ca.issue_cert("127.0.0.1")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(ctx)
    der = ssl.PEM_cert_to_DER_cert(leaf.cert_chain_pems[0].bytes().decode())
    good = hashlib.sha256(der).hexdigest()
    pretty = ":".join(good[i : i + 2] for i in range(0, 64, 2)).upper()
    script = [
        ("S", b"220 mx.test\r\n"),
        ("C", b"EHLO client.test\r\n"),
        ("S", b"250 mx\r\n"),
        ("C", b"QUIT\r\n"),
        ("S", b"221 bye\r\n"),
    ]
    # The right pin replaces CA verification (self-signed servers)...
    with _implicit(ctx, script) as server:
        _connect(server.port, tls_fingerprint=pretty)
    assert server.errors == []
    # ...and a wrong one refuses the server before a command is sent.
    with _implicit(ctx) as server:
        with pytest.raises(errors.CertificateError, match="pinned fingerprint"):
            _connect(server.port, tls_fingerprint="00" * 32)
    assert server.all_received == b""
    with pytest.raises(ValueError, match="64 hex"):
        Client("127.0.0.1", tls_fingerprint="abc")


def test_async_fingerprint_mismatch(ca: trustme.CA) -> None:
    async def main(port: int) -> None:
        async with AsyncClient(
            "127.0.0.1", port, tls="implicit", tls_fingerprint="11" * 32, timeout=3
        ):
            pass

    with _implicit(_server_ctx(ca, "127.0.0.1")) as server:
        with pytest.raises(errors.CertificateError, match="pinned"):
            asyncio.run(main(server.port))


# -- STARTTLS ------------------------------------------------------------------------------


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_starttls_response_injection_is_refused(flavour: str) -> None:
    script = [
        *GREET,
        ("S", b"250-mx\r\n250 STARTTLS\r\n"),
        ("C", b"STARTTLS\r\n"),
        ("S", b"220 go ahead\r\n250-injected\r\n250 AUTH PLAIN\r\n"),
        ("DRAIN", 1.0),
    ]
    with ScriptedServer(script) as server:
        with pytest.raises(errors.ProtocolError, match="injection"):
            if flavour == "sync":
                with Client("127.0.0.1", server.port, local_hostname="client.test", timeout=3):
                    pass
            else:

                async def main() -> None:
                    async with AsyncClient(
                        "127.0.0.1", server.port, local_hostname="client.test", timeout=3
                    ):
                        pass

                asyncio.run(main())
    assert server.errors == []


def test_starttls_stripping_fails_before_mail() -> None:
    script = [*GREET, ("S", b"250-mx\r\n250 AUTH PLAIN\r\n"), ("DRAIN", 1.0)]
    with ScriptedServer(script) as server:
        with pytest.raises(errors.TLSRequired, match="stripping"):
            with Client(
                "127.0.0.1",
                server.port,
                local_hostname="client.test",
                timeout=3,
                username="u",
                password="p",
            ) as client:
                client.send(b"x\r\n", sender="a@x", recipients=["b@y"])
    assert server.all_received == b"EHLO client.test\r\n"


# -- tokens and secrets ---------------------------------------------------------------------


def _xoauth2(user: str, token: str) -> bytes:
    raw = f"user={user}\x01auth=Bearer {token}\x01\x01".encode()
    return b"AUTH XOAUTH2 " + base64.b64encode(raw) + b"\r\n"


def _refresh_script() -> list[tuple[object, ...]]:
    error = base64.b64encode(json.dumps({"status": "401", "schemes": "bearer"}).encode())
    return [
        *GREET,
        ("S", b"250-mx\r\n250 AUTH XOAUTH2 PLAIN\r\n"),
        ("C", _xoauth2("me@x", "expired-token")),
        ("S", b"334 " + error + b"\r\n"),
        ("C", b"\r\n"),
        ("S", b"535 5.7.8 token expired\r\n"),
        ("C", _xoauth2("me@x", "fresh-token")),
        ("S", b"235 2.7.0 ok\r\n"),
        ("C", b"QUIT\r\n"),
        ("S", b"221 bye\r\n"),
    ]


def test_token_provider_refresh_and_retry() -> None:
    tokens = iter(["expired-token", "fresh-token"])
    calls: list[str] = []

    def provider() -> str:
        calls.append("called")
        return next(tokens)

    with ScriptedServer(_refresh_script()) as server:
        with Client(
            "127.0.0.1",
            server.port,
            tls="none",
            allow_plaintext_auth=True,
            local_hostname="client.test",
            username="me@x",
            oauth2_token=provider,
            timeout=3,
        ):
            pass
    assert server.errors == []
    assert len(calls) == 2


def test_async_token_provider_refresh_and_retry() -> None:
    tokens = iter(["expired-token", "fresh-token"])

    async def provider() -> str:
        await asyncio.sleep(0)
        return next(tokens)

    async def main(port: int) -> None:
        async with AsyncClient(
            "127.0.0.1",
            port,
            tls="none",
            allow_plaintext_auth=True,
            local_hostname="client.test",
            username="me@x",
            oauth2_token=provider,
            timeout=3,
        ):
            pass

    with ScriptedServer(_refresh_script()) as server:
        asyncio.run(main(server.port))
    assert server.errors == []


def test_static_token_is_not_retried() -> None:
    script = [*_refresh_script()[:7], ("C", b"QUIT\r\n"), ("S", b"221 bye\r\n")]
    with ScriptedServer(script) as server:
        with pytest.raises(errors.AuthenticationError, match="535") as info:
            with Client(
                "127.0.0.1",
                server.port,
                tls="none",
                allow_plaintext_auth=True,
                local_hostname="client.test",
                username="me@x",
                oauth2_token="expired-token",
                timeout=3,
            ):
                pass
    assert "expired-token" not in str(info.value)
    assert "401" in str(info.value)  # the server's JSON error is explained


def test_no_credentials_in_logs_reprs_errors_or_transcripts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    password = "hunter2-Secret"
    payload = base64.b64encode(f"\0user\0{password}".encode()).decode()
    script = [
        *GREET,
        ("S", b"250-mx\r\n250 AUTH PLAIN\r\n"),
        ("C", f"AUTH PLAIN {payload}\r\n".encode()),
        ("S", b"535 5.7.8 bad credentials\r\n"),
        ("C", b"QUIT\r\n"),
        ("S", b"221 bye\r\n"),
    ]
    lines: list[str] = []
    caplog.set_level(logging.DEBUG, logger="postwire")
    with ScriptedServer(script) as server:
        client = Client(
            "127.0.0.1",
            server.port,
            tls="none",
            allow_plaintext_auth=True,
            local_hostname="client.test",
            username="user",
            password=password,
            timeout=3,
            transcript=lines.append,
        )
        with pytest.raises(errors.AuthenticationError) as info:
            with client:
                pass
    texts = [
        repr(client),
        str(info.value),
        repr(info.value),
        "\n".join(lines),
        caplog.text,
        repr(info.value.reply),
    ]
    assert any("AUTH PLAIN <redacted>" in t for t in texts)
    for text in texts:
        assert password not in text
        assert payload not in text


# -- timeouts --------------------------------------------------------------------------------


def test_timeouts_scale_the_final_reply_with_size() -> None:
    t = Timeouts(command=10, data_end=60, data_end_per_mib=2)
    assert t.for_wait(Wait.COMMAND, 10 << 20) == 10
    assert t.for_wait(Wait.DATA_END, 0) == 60
    assert t.for_wait(Wait.DATA_END, 100 << 20) == pytest.approx(260)
    assert Timeouts.uniform(5).greeting == 5
    with pytest.raises(ValueError):
        Timeouts.uniform(0)


def test_greeting_timeout_is_its_own_and_hints_at_implicit_tls() -> None:
    with ScriptedServer([("SLEEP", 2.0)]) as server:
        t0 = time.monotonic()
        with pytest.raises(errors.Timeout, match=r"greeting.*implicit"):
            with Client(
                "127.0.0.1", server.port, tls="none", timeouts=Timeouts(greeting=0.3, command=30)
            ):
                pass
        assert time.monotonic() - t0 < 1.5


def test_total_deadline_bounds_a_slow_send() -> None:
    slow = [("SLEEP", 0.4)]
    script = [
        *GREET,
        ("S", b"250 mx\r\n"),
        ("C", b"MAIL FROM:<a@x>\r\n"),
        *slow,
        ("S", b"250 ok\r\n"),
        ("C", b"RCPT TO:<b@y>\r\n"),
        *slow,
        ("S", b"250 ok\r\n"),
        ("DRAIN", 2.0),
    ]
    with ScriptedServer(script) as server:
        with Client(
            "127.0.0.1", server.port, tls="none", local_hostname="client.test", timeout=5
        ) as client:
            t0 = time.monotonic()
            with pytest.raises(errors.Timeout, match="total deadline"):
                client.send(b"x\r\n", sender="a@x", recipients=["b@y"], deadline=0.6)
            assert time.monotonic() - t0 < 1.2
            assert not client.connected  # never reused after a timeout


def _silent_after(step: bytes) -> Callable[[], list[tuple[object, ...]]]:
    return lambda: [*GREET, ("S", b"250 mx\r\n"), ("C", step), ("SLEEP", 2.0)]


def test_command_timeout_closes_the_connection() -> None:
    with ScriptedServer(_silent_after(b"MAIL FROM:<a@x>\r\n")()) as server:
        with Client(
            "127.0.0.1", server.port, tls="none", local_hostname="client.test", timeout=0.4
        ) as client:
            with pytest.raises(errors.Timeout, match="MAIL"):
                client.send(b"x\r\n", sender="a@x", recipients=["b@y"])
            assert not client.connected
