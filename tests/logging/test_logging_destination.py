"""Which failures the handler retries, and how its arguments become client options.

On values: exceptions built by hand, options compared as dictionaries, TLS contexts
inspected; no connection is made.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trustme

from postwire import Reply
from postwire.errors import (
    CertificateError,
    ConnectError,
    PossiblyDelivered,
    RecipientsRefused,
    ReplyError,
    ServerDisconnected,
    Timeout,
    TLSRequired,
)
from postwire.logging.delivery import worth_retrying
from postwire.logging.destination import DEFAULT_TIMEOUT, resolve_destination

# -- failures ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "retry"),
    [
        (ConnectError("refused"), True),
        (Timeout("slow", step="greeting"), True),
        (ServerDisconnected("gone"), True),
        (ReplyError("MAIL", Reply(451, ("4.3.0 try later",))), True),
        (ConnectionResetError(), True),
        (PossiblyDelivered("lost after the dot"), False),
        (ReplyError("MAIL", Reply(550, ("5.7.1 no",))), False),
        (RecipientsRefused({"a@x.example": Reply(550, ("5.1.1 gone",))}), False),
        (CertificateError("unknown CA"), False),
        (TLSRequired("no STARTTLS"), False),
        (ValueError("bad address"), False),
    ],
)
def test_which_failures_are_retried(error: BaseException, retry: bool) -> None:
    assert worth_retrying(error) is retry


# -- where to send ----------------------------------------------------------------------------


def test_mailhost_credentials_and_timeout_as_the_stdlib_handler_names_them() -> None:
    dest = resolve_destination(mailhost=["mx.example.org", "2525"], credentials=("u", "p"))
    assert dict(dest.options) == {
        "host": "mx.example.org",
        "port": 2525,
        "username": "u",
        "password": "p",
        "timeout": DEFAULT_TIMEOUT,
    }
    # No "tls": the client's default, STARTTLS required and verified, whatever ``secure`` is.
    assert "tls" not in resolve_destination(mailhost="mx.example.org", secure=()).options
    assert "p" not in repr(dest)
    assert dest.target == "mx.example.org:2525"


def test_a_url_gives_server_sender_and_timeout_and_options_come_last() -> None:
    dest = resolve_destination(
        url="smtps://u:p@mx.example.org?from=app%40example.org&timeout=9",
        client_options={"tls": "implicit", "cafile": "/etc/ca.pem", "timeout": None},
    )
    assert dest.sender == "app@example.org"
    assert dest.options["timeout"] == 9.0  # None never erases a configured value
    assert (dest.options["port"], dest.options["cafile"]) == (465, "/etc/ca.pem")
    assert resolve_destination(url="smtp://mx.example.org", timeout=2).options["timeout"] == 2


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"mailhost": "a.example", "url": "smtp://b.example"},
        {"mailhost": ("a.example",)},
        {"mailhost": "a.example", "credentials": "user:pw"},
        {"mailhost": "a.example", "secure": ("k", "c", "x")},
    ],
)
def test_where_to_send_must_be_said_once_and_well(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        resolve_destination(**kwargs)  # type: ignore[arg-type]


def test_secure_loads_a_client_certificate_into_a_verifying_context(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("client.example.org")
    key_file, cert_file, both = tmp_path / "key.pem", tmp_path / "cert.pem", tmp_path / "both.pem"
    cert.private_key_pem.write_to_path(str(key_file))
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_and_cert_chain_pem.write_to_path(str(both))
    for secure in ((str(key_file), str(cert_file)), (str(both),)):
        context = resolve_destination(mailhost="mx.example.org", secure=secure).options[
            "ssl_context"
        ]
        assert isinstance(context, ssl.SSLContext)
        assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    other = ca.issue_cert("other.example.org")
    other.private_key_pem.write_to_path(str(key_file))  # a key that is not the certificate's
    with pytest.raises(ssl.SSLError):
        resolve_destination(mailhost="mx.example.org", secure=(str(key_file), str(cert_file)))
    with pytest.raises(ValueError, match="ssl_context"):
        resolve_destination(
            mailhost="mx.example.org",
            secure=(str(both),),
            client_options={"ssl_context": ssl.create_default_context()},
        )
