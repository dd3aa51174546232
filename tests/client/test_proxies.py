"""SOCKS5 (Dante) and HTTP CONNECT (tinyproxy) proxies, sync and asyncio (issue 14, item 4).

TLS goes through the tunnel and is verified against the mail server's name; the proxies'
own logs show that the connection went through them.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from postwire import AsyncClient, Client, Pool, SendResult
from postwire.capture import CaptureServer
from postwire.errors import CertificateError, ConnectError
from servers.proxies import HttpProxy, SocksProxy

MESSAGE = b"Subject: proxied\r\n\r\nthrough the tunnel\r\n"


@pytest.fixture
def capture() -> Iterator[CaptureServer]:
    with CaptureServer(tls="starttls") as server:
        yield server


@pytest.fixture(params=["socks", "http"])
def proxy(request: pytest.FixtureRequest) -> SocksProxy | HttpProxy:
    name = "socks_proxy" if request.param == "socks" else "http_proxy"
    found: SocksProxy | HttpProxy = request.getfixturevalue(name)
    return found


def test_both_clients_through_the_proxy_verify_the_servers_name(
    capture: CaptureServer, proxy: SocksProxy | HttpProxy
) -> None:
    options = {"cafile": capture.ca_file, "proxy": proxy.url(), "timeout": 10}
    with Client("localhost", capture.port, **options) as client:
        assert client.tls_active
        client.send(MESSAGE, sender="a@x", recipients=["sync@y"])

    async def main() -> SendResult:
        async with AsyncClient("localhost", capture.port, **options) as client:
            return await client.send(MESSAGE, sender="a@x", recipients=["async@y"])

    assert asyncio.run(main()).accepted == ["async@y"]
    messages = capture.wait_for(2)
    assert [m.rcpt_tos for m in messages] == [["sync@y"], ["async@y"]]
    assert all(m.tls for m in messages)
    assert str(capture.port) in proxy.log_text()  # the proxy carried the connection


def test_the_certificate_is_checked_against_the_mail_servers_name_not_the_proxys(
    capture: CaptureServer, proxy: SocksProxy | HttpProxy
) -> None:
    client = Client(
        "localhost", capture.port, cafile=capture.ca_file, proxy=proxy.url(),
        server_hostname="mail.wrong.example", timeout=10,
    )  # fmt: skip
    with pytest.raises(CertificateError, match=r"mail\.wrong\.example"):
        client.connect()
    assert capture.messages == []


def test_a_pool_through_a_proxy(capture: CaptureServer, socks_proxy: SocksProxy) -> None:
    with Pool(
        "localhost", capture.port, cafile=capture.ca_file, proxy=socks_proxy.url(),
        max_connections=2,
    ) as pool:  # fmt: skip
        outcomes = pool.send_many([(MESSAGE, "a@x", [f"r{i}@y"]) for i in range(6)])
    assert all(isinstance(o, SendResult) for o in outcomes)
    assert len(capture.wait_for(6)) == 6


def test_wrong_proxy_credentials_say_so(capture: CaptureServer, http_proxy: HttpProxy) -> None:
    bad = f"http://{http_proxy.user}:wrong@127.0.0.1:{http_proxy.port}"
    with pytest.raises(ConnectError, match=r"40[17].*credentials") as info:
        Client("localhost", capture.port, cafile=capture.ca_file, proxy=bad).connect()
    assert "wrong" not in str(info.value)  # the password is never shown


class _DroppingProxy:
    """Accepts each connection and closes it at once: a proxy that drops."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize("scheme", ["socks5", "http"])
def test_a_proxy_that_drops_is_a_connect_error_at_once(scheme: str) -> None:
    dropping = _DroppingProxy()
    try:
        url = f"{scheme}://127.0.0.1:{dropping.port}"
        start = time.monotonic()
        with pytest.raises(ConnectError, match=r"through the proxy|refused to connect"):
            Client("mail.example.org", 25, proxy=url, timeout=5).connect()

        async def main() -> None:
            await AsyncClient("mail.example.org", 25, proxy=url, timeout=5).connect()

        with pytest.raises(ConnectError):
            asyncio.run(main())
        assert time.monotonic() - start < 4.5  # neither waited for its timeout
        assert dropping.accepted == 2
    finally:
        dropping.close()


def test_bad_proxy_urls_are_refused_when_the_client_is_made() -> None:
    for url in ("ftp://127.0.0.1:21", "socks5://127.0.0.1", "http://:8080"):
        with pytest.raises(ValueError, match="proxy must be"):
            Client("mail.example.org", proxy=url)
    with pytest.raises(ValueError, match="Unix socket cannot be reached through a proxy"):
        Client("/run/x.sock", tls="none", proxy="socks5://127.0.0.1:1080")
