"""Clients from configuration: SMTP URLs and config-file accounts (issue 10, item 5).

The parsing is checked on values; each constructor (Client, AsyncClient, Pool,
AsyncPool) is then checked against a real capture server with STARTTLS and
AUTH, including the glue-code mistake that used to send mail without logging
in: an override of ``None`` must never erase a configured credential.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from postwire import AsyncClient, AsyncPool, Client, Pool, SendResult
from postwire.capture import CaptureServer
from postwire.config import ClientConfig, from_account, from_url
from postwire.errors import ConfigError, NoPasswordSource

USER, PASSWORD = "ada@example.org", "s3cret: with/odd?chars"
ENCODED = "ada%40example.org:s3cret%3A%20with%2Fodd%3Fchars"
MESSAGE = b"Subject: configured\r\n\r\nhello\r\n"


# --- URLs ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "tls", "port"),
    [
        ("smtps://mx.example.org", "implicit", 465),
        ("smtp+starttls://mx.example.org", "starttls", 587),
        ("smtp://mx.example.org", "starttls", 587),
        ("smtp://mx.example.org?tls=none", "none", 25),
        ("smtp://mx.example.org?tls=opportunistic", "opportunistic", 25),
        ("smtp://mx.example.org:2525", "starttls", 2525),
        ("smtps://[::1]:4650", "implicit", 4650),
    ],
)
def test_url_schemes_and_default_ports(url: str, tls: str, port: int) -> None:
    config = from_url(url)
    assert (config.tls, config.port) == (tls, port)
    assert config.host in ("mx.example.org", "::1")


def test_url_credentials_are_percent_decoded_and_options_read() -> None:
    config = from_url(
        f"smtp+starttls://{ENCODED}@mx.example.org:587?cafile=/etc/ca.pem&timeout=7.5"
        "&allow_plaintext_auth=true&pipelining=false&from=ada%40example.org"
        "&server_hostname=mail.example.org&auth_mechanism=PLAIN"
    )
    assert (config.username, config.password) == (USER, PASSWORD)
    assert config.sender == "ada@example.org"
    assert config.client_options() == {
        "host": "mx.example.org",
        "port": 587,
        "tls": "starttls",
        "cafile": "/etc/ca.pem",
        "server_hostname": "mail.example.org",
        "username": USER,
        "password": PASSWORD,
        "auth_mechanism": "PLAIN",
        "timeout": 7.5,
        "allow_plaintext_auth": True,
        "pipelining": False,
    }
    assert PASSWORD not in repr(config)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://mx.example.org", "scheme"),
        ("smtp://", "no host"),
        ("smtps://mx.example.org?tls=starttls", "cannot be combined"),
        ("smtp://mx.example.org?tls=maybe", "tls must be one of"),
        ("smtp://mx.example.org?colour=blue", "unknown option 'colour'"),
        ("smtp://mx.example.org?timeout=-1", "timeout"),
        ("smtp://mx.example.org?pipelining=perhaps", "true or false"),
        ("smtp://mx.example.org?tls_fingerprint=abc", "fingerprint"),
        ("smtp://mx.example.org/path", "no path"),
        ("smtp://mx.example.org:99999", "Port out of range"),
        (f"smtp://{ENCODED}@mx.example.org:99999", "Port out of range"),
        (f"smtp://{ENCODED}@mx.example.org?x=1", "unknown option"),
    ],
)
def test_bad_urls_say_why_and_never_show_the_password(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        from_url(url)
    assert "s3cret" not in str(info.value)


# --- accounts -----------------------------------------------------------------------------


def _config_file(tmp_path: Path, server: CaptureServer, extra: str = "") -> Path:
    (tmp_path / "password").write_text(PASSWORD + "\n")  # a trailing newline, as editors leave
    path = tmp_path / "config.toml"
    path.write_text(
        f"""
default = "work"

[defaults]
tls = "starttls"

[accounts.work]
server = "127.0.0.1:{server.port}"
cafile = "{server.ca_file}"
user = "{USER}"
password_file = "password"
from = "{USER}"
timeout = 10
{extra}

[accounts.other]
server = "127.0.0.1:1"
"""
    )
    return path


def test_account_settings_are_read_with_the_password_from_its_source(
    tmp_path: Path, capture: CaptureServer
) -> None:
    path = _config_file(tmp_path, capture)
    config = from_account(config=str(path), environ={})
    assert isinstance(config, ClientConfig)
    assert (config.host, config.port, config.tls) == ("127.0.0.1", capture.port, "starttls")
    assert (config.username, config.password, config.sender) == (USER, PASSWORD, USER)
    assert config.cafile == str(capture.ca_file)
    assert config.timeout == 10
    other = from_account("other", config=str(path), environ={})
    assert (other.port, other.username) == (1, None)
    with pytest.raises(ConfigError, match="no account named 'nope'"):
        from_account("nope", config=str(path), environ={})


def test_environment_applies_on_top_of_the_account(tmp_path: Path, capture: CaptureServer) -> None:
    path = _config_file(tmp_path, capture)
    config = from_account(config=str(path), environ={"POSTWIRE_TIMEOUT": "3"})
    assert config.timeout == 3


def test_an_account_without_a_password_source_says_so(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[accounts.a]\nserver = "127.0.0.1:2525"\nuser = "ada"\n')
    with pytest.raises(NoPasswordSource, match="no password source for user ada"):
        from_account(config=str(path), environ={})


def test_account_dkim_settings_make_a_signer(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    (tmp_path / "dkim.pem").write_bytes(key)
    path = tmp_path / "config.toml"
    path.write_text(
        '[accounts.a]\nserver = "127.0.0.1:2525"\ndkim_key = "dkim.pem"\n'
        'dkim_selector = "s1"\ndkim_domain = "example.org"\n'
        'dkim_headers = ["From", "Subject"]\ndkim_canonicalization = "simple/relaxed"\n'
    )
    signer = from_account(config=str(path), environ={}).dkim
    assert signer is not None and signer.algorithm == "ed25519-sha256"
    assert (signer.domain, signer.selector, signer.headers, signer.canonicalization) == (
        "example.org", "s1", ("From", "Subject"), ("simple", "relaxed"),
    )  # fmt: skip
    assert Client.from_account(config=str(path)).dkim == signer
    # The environment names the key too; a key without selector and domain is refused.
    environ = {"POSTWIRE_DKIM_KEY": str(tmp_path / "dkim.pem")}
    path.write_text('[accounts.a]\nserver = "127.0.0.1:2525"\n')
    with pytest.raises(ConfigError, match="dkim_selector and dkim_domain"):
        from_account(config=str(path), environ=environ)
    path.write_text('[accounts.a]\nserver = "127.0.0.1:2525"\ndkim_headers = "From"\n')
    with pytest.raises(ConfigError, match="dkim_key is not"):
        from_account(config=str(path), environ={})


def test_account_tls_fingerprint_is_checked_on_load(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[accounts.a]\nserver = "127.0.0.1:2525"\ntls_fingerprint = "zz"\n')
    with pytest.raises(ConfigError, match=r"\[accounts.a\].*fingerprint"):
        from_account(config=str(path), environ={})


# --- every client and pool, against a real server --------------------------------------------


@pytest.fixture
def capture() -> Iterator[CaptureServer]:
    with CaptureServer(tls="starttls", auth={USER: PASSWORD}, require_auth=True) as server:
        yield server


def _url(server: CaptureServer) -> str:
    return f"smtp+starttls://{ENCODED}@127.0.0.1:{server.port}?cafile={server.ca_file}&timeout=10"


def _send_sync(client: Client) -> SendResult:
    with client:
        return client.send(MESSAGE, sender=USER, recipients=["b@example.org"])


def test_client_from_url_logs_in_over_starttls(capture: CaptureServer) -> None:
    result = _send_sync(Client.from_url(_url(capture)))
    assert result.accepted == ["b@example.org"]
    (message,) = capture.wait_for(1)
    assert message.auth_user == USER and message.tls


def test_a_none_override_never_erases_a_configured_credential(
    tmp_path: Path, capture: CaptureServer
) -> None:
    # Glue code (a Django backend written by hand) passed its own unset settings along.
    path = _config_file(tmp_path, capture)
    client = Client.from_account(config=str(path), username=None, password=None, timeout=None)
    _send_sync(client)
    (message,) = capture.wait_for(1)
    assert message.auth_user == USER
    # A real override does replace: the server then refuses the wrong password.
    wrong = Client.from_url(_url(capture), password="wrong")
    with pytest.raises(Exception, match="535"):
        _send_sync(wrong)


def test_async_client_and_both_pools_from_configuration(
    tmp_path: Path, capture: CaptureServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _config_file(tmp_path, capture)
    monkeypatch.setenv("POSTWIRE_CONFIG", str(path))
    with Pool.from_account(max_connections=2) as pool:
        assert isinstance(pool.send(MESSAGE, sender=USER, recipients=["p@example.org"]), SendResult)
    with Pool.from_url(_url(capture), max_connections=1) as pool:
        outcomes = pool.send_many([(MESSAGE, USER, ["q@example.org"])])
        assert isinstance(outcomes[0], SendResult)

    async def main() -> None:
        async with AsyncClient.from_account("work") as client:
            await client.send(MESSAGE, sender=USER, recipients=["r@example.org"])
        async with AsyncPool.from_url(_url(capture)) as pool:
            await pool.send(MESSAGE, sender=USER, recipients=["s@example.org"])

    asyncio.run(main())
    messages = capture.wait_for(4)
    assert sorted(m.rcpt_tos[0] for m in messages) == [
        "p@example.org",
        "q@example.org",
        "r@example.org",
        "s@example.org",
    ]
    assert {m.auth_user for m in messages} == {USER}


def test_url_tls_fingerprint_pins_the_server_certificate(capture: CaptureServer) -> None:
    context = ssl.create_default_context(cafile=str(capture.ca_file))
    with Client("127.0.0.1", capture.port, ssl_context=context, username=USER, password=PASSWORD):
        pass
    der = _server_certificate(capture)
    good = hashlib.sha256(der).hexdigest()
    url = f"smtp+starttls://{ENCODED}@127.0.0.1:{capture.port}?tls_fingerprint={good}"
    _send_sync(Client.from_url(url))
    bad = "00" * 32
    with pytest.raises(Exception, match="fingerprint"):
        _send_sync(Client.from_url(url.replace(good, bad)))


def _server_certificate(server: CaptureServer) -> bytes:
    client = Client(
        "127.0.0.1", server.port, cafile=server.ca_file, username=USER, password=PASSWORD
    )
    with client:
        info = client.tls_info()
    assert info is not None and isinstance(info["peercert_der"], bytes)
    return info["peercert_der"]
