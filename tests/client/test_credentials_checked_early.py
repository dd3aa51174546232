"""Credentials with control characters are refused before any connection (issue 10, item 2).

RFC 4013 §2.3 prohibits control characters in SASL strings; the usual source
is a secret read from a file with its trailing newline.  Every entry point
raises ``ValueError`` at once, naming the argument and never its value.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from postwire import AsyncClient, AsyncPool, Client, Pool
from postwire.smtp import smtp_send_message, smtp_send_message_on_ports

HEADER = "Subject: x\r\n\r\n"
SECRETS = ["s3cret\n", "s3cret\r\n", "s3\0cret", "s3\tcret", "\x1bs3cret", "s3cret\x7f"]


@pytest.mark.parametrize("secret", SECRETS)
@pytest.mark.parametrize("factory", [Client, AsyncClient, Pool, AsyncPool])
def test_clients_and_pools_refuse_a_control_character_when_created(
    factory: Callable[..., Any], secret: str
) -> None:
    with pytest.raises(ValueError, match="password contains a control character") as info:
        factory("127.0.0.1", 1, username="ada", password=secret)
    assert "s3" not in str(info.value)
    with pytest.raises(ValueError, match="username contains a control character"):
        factory("127.0.0.1", 1, username=secret, password="pw")
    with pytest.raises(ValueError, match="oauth2_token contains a control character"):
        factory("127.0.0.1", 1, username="ada", oauth2_token=secret)


def test_a_trailing_newline_is_named_as_such() -> None:
    with pytest.raises(ValueError, match="at its end"):
        Client("127.0.0.1", 1, username="ada", password="from-a-file\n")


def test_the_url_path_refuses_it_too() -> None:
    with pytest.raises(ValueError, match="password contains a control character"):
        Client.from_url("smtp://ada:s3cret%0A@127.0.0.1:1")


def test_the_racket_layer_refuses_before_connecting() -> None:
    connects: list[tuple[str, int]] = []

    def tcp_connect(host: str, port: int) -> Any:
        connects.append((host, port))
        raise AssertionError("connected")

    for user, password in (("ada", "pw\n"), ("ad\na", "pw")):
        with pytest.raises(ValueError, match=r"auth_(user|passwd) contains a control character"):
            smtp_send_message(
                "127.0.0.1", "a@x", ["b@y"], HEADER, ["x"], 25,
                auth_user=user, auth_passwd=password, tcp_connect=tcp_connect,
            )  # fmt: skip
        with pytest.raises(ValueError, match="contains a control character"):
            smtp_send_message_on_ports(
                object(), object(), "a@x", ["b@y"], HEADER, ["x"], user, password, None
            )
    assert connects == []


def test_a_good_password_still_works_to_construct() -> None:
    Client("127.0.0.1", 1, username="ada", password="pässword with spaces")

    async def main() -> None:
        async with AsyncPool("127.0.0.1", 1, username="ada", password="ok") as pool:
            assert pool.max_connections == 10

    asyncio.run(main())
