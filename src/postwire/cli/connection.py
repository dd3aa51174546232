"""Shared by ``send``, ``send --many``, ``sendmail`` and ``probe``: options, server, client."""

from __future__ import annotations

import argparse
import getpass
import os
import ssl
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from .._core.envelope import SendResult
from .._core.errors import ConfigError, NoPasswordSource
from .._net.tls import make_context, normalize_fingerprint
from ..client import Client, TLSMode
from ..config import (
    TLS_MODES,
    Settings,
    default_tls,
    dkim_from_settings,
    load_settings,
    parse_server,
    positive_seconds,
    read_password,
)
from ..signing import DKIMSigner
from .exits import CLIError, Exit
from .output import Transcript, one_line, reply_json

__all__ = [
    "DEFAULT_TIMEOUT",
    "Target",
    "add_auth_options",
    "add_connection_options",
    "add_dkim_options",
    "make_client",
    "result_exit_code",
    "result_json",
    "settings_from_args",
    "target_from",
]

DEFAULT_TIMEOUT = 30.0


def _positive(text: str) -> float:
    value = positive_seconds(text)
    if value is None:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds: {text!r}")
    return value


def _fingerprint(text: str) -> str:
    try:
        return normalize_fingerprint(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_connection_options(parser: argparse.ArgumentParser, *, server: bool = True) -> None:
    """Add ``--server`` (unless ``server=False``), ``--tls``, ``--cafile`` and the like."""
    group = parser.add_argument_group("connection")
    if server:
        group.add_argument(
            "--server",
            metavar="HOST[:PORT]",
            help="the SMTP server (default port: 587 for starttls, 465 for implicit, else 25), "
            "or the path of a Unix socket",
        )
    group.add_argument(
        "--tls",
        choices=TLS_MODES,
        help="starttls (default: required), implicit (TLS from the first byte, port 465), "
        "opportunistic (STARTTLS when offered), none",
    )
    group.add_argument("--cafile", metavar="PATH", help="trust this CA file (PEM)")
    group.add_argument(
        "--tls-fingerprint",
        type=_fingerprint,
        metavar="SHA256",
        help="pin the server certificate's SHA-256 fingerprint (hex, colons allowed); "
        "without --cafile it replaces chain verification (a self-signed server)",
    )
    group.add_argument(
        "--timeout",
        type=_positive,
        metavar="SECONDS",
        help=f"limit for each network step (default {DEFAULT_TIMEOUT:g})",
    )
    group.add_argument(
        "--proxy",
        metavar="URL",
        help="through a proxy: socks5://[user:pass@]host:port or http://[user:pass@]host:port",
    )
    group.add_argument(
        "--lmtp", action="store_true", default=None, help="speak LMTP (RFC 2033; port 24)"
    )
    group.add_argument("--config", metavar="PATH", help="the config file (TOML)")
    group.add_argument("--account", metavar="NAME", help="the config file account to use")
    group.add_argument(
        "--transcript",
        action="store_true",
        help="print the SMTP exchange on stderr (elapsed seconds, -> sent, <- received, "
        "** notes; AUTH redacted)",
    )


def add_auth_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--user`` and the password-source options."""
    group = parser.add_argument_group(
        "authentication", "the password is never read from the command line"
    )
    group.add_argument("--user", metavar="NAME", help="authenticate (AUTH) as this user")
    source = group.add_mutually_exclusive_group()
    source.add_argument("--password-env", metavar="VAR", help="the password is in variable VAR")
    source.add_argument(
        "--password-file", metavar="PATH", help="the password is the first line of PATH"
    )
    source.add_argument(
        "--password-command",
        metavar="CMD",
        help="the password is the first line CMD prints (run by /bin/sh)",
    )
    source.add_argument(
        "--password-prompt",
        action="store_true",
        default=None,
        help="ask on the terminal (the default when stdin is a terminal)",
    )
    group.add_argument(
        "--allow-plaintext-auth",
        action="store_true",
        default=None,
        help="allow credentials over a connection without TLS",
    )


def add_dkim_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--dkim-key``, ``--dkim-selector``, ``--dkim-domain`` and the finer DKIM choices."""
    group = parser.add_argument_group(
        "DKIM signing",
        "sign each message (RFC 6376) over the bytes sent; needs postwire[dkim]; "
        "the config file's dkim_* settings give the same",
    )
    group.add_argument(
        "--dkim-key",
        metavar="PATH",
        help="the private key: PEM (RSA or Ed25519) or dknewkey's Ed25519 seed",
    )
    group.add_argument("--dkim-selector", metavar="NAME", help="the selector (s=)")
    group.add_argument("--dkim-domain", metavar="DOMAIN", help="the signing domain (d=)")
    group.add_argument(
        "--dkim-headers",
        metavar="A:B:...",
        help="the header fields to sign, in order (default: those RFC 6376 recommends, From twice)",
    )
    group.add_argument(
        "--dkim-canonicalization",
        metavar="H/B",
        help="header/body canonicalization, each simple or relaxed (default relaxed/relaxed)",
    )


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The config file, the environment, then the options in ``args``."""
    get: Mapping[str, Any] = vars(args)
    cli = Settings(
        server=get.get("server"),
        tls=get.get("tls"),
        cafile=get.get("cafile"),
        tls_fingerprint=get.get("tls_fingerprint"),
        user=get.get("user"),
        password_env=get.get("password_env"),
        password_file=get.get("password_file"),
        password_command=get.get("password_command"),
        password_prompt=get.get("password_prompt"),
        timeout=get.get("timeout"),
        allow_plaintext_auth=get.get("allow_plaintext_auth"),
        lmtp=get.get("lmtp"),
        proxy=get.get("proxy"),
        dkim_key=get.get("dkim_key"),
        dkim_selector=get.get("dkim_selector"),
        dkim_domain=get.get("dkim_domain"),
        dkim_headers=get.get("dkim_headers"),
        dkim_canonicalization=get.get("dkim_canonicalization"),
    )
    return load_settings(cli, config=get.get("config"), account=get.get("account"))


@dataclass(frozen=True)
class Target:
    """Everything needed to connect, with the password already read."""

    host: str
    port: int
    tls: TLSMode
    ssl_context: ssl.SSLContext | None
    cafile: str | None
    tls_fingerprint: str | None
    timeout: float
    user: str | None
    password: str | None
    allow_plaintext_auth: bool
    lmtp: bool = False
    proxy: str | None = None
    dkim: DKIMSigner | None = None

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def target_from(
    settings: Settings, *, missing_password: int, server: str | None = None, auth: bool = True
) -> Target:
    """Resolve the server, the TLS context and the password (before anything is sent)."""
    text = server or settings.server or ""
    tls = cast(TLSMode, settings.tls or default_tls(text))
    if not text:
        raise CLIError(
            "no server: give --server HOST[:PORT], set POSTWIRE_SERVER, "
            "or configure an account in the config file",
            Exit.CONFIG,
        )
    try:
        host, port = parse_server(text, tls, lmtp=bool(settings.lmtp))
    except ValueError as exc:
        raise CLIError(str(exc), Exit.USAGE) from None
    context = None
    if tls != "none":
        try:
            context = make_context(settings.cafile, pinned=settings.tls_fingerprint is not None)
        except (OSError, ssl.SSLError) as exc:
            reason = getattr(exc, "strerror", None) or one_line(exc)
            message = f"cannot load the CA file {settings.cafile}: {reason}"
            raise CLIError(message, Exit.CONFIG) from None
    dkim = dkim_from_settings(settings)  # a ConfigError (78) when the key is unusable
    password = None
    if auth:
        prompt = _prompt if settings.password_prompt or sys.stdin.isatty() else None
        try:
            password = read_password(settings, host, prompt=prompt)
        except NoPasswordSource as exc:
            raise CLIError(str(exc), missing_password) from None
    return Target(
        host=host,
        port=port,
        tls=tls,
        ssl_context=context,
        cafile=settings.cafile,
        tls_fingerprint=settings.tls_fingerprint,
        timeout=settings.timeout or DEFAULT_TIMEOUT,
        user=settings.user if auth else None,
        password=password,
        allow_plaintext_auth=bool(settings.allow_plaintext_auth),
        lmtp=bool(settings.lmtp),
        proxy=settings.proxy,
        dkim=dkim,
    )


def _prompt(user: str, host: str) -> str:
    """Ask for the password on the terminal (never echoed)."""
    try:
        os.close(os.open("/dev/tty", os.O_RDWR))
    except OSError:
        raise CLIError("no terminal to ask for the password on", Exit.USAGE) from None
    try:
        return getpass.getpass(f"password for {user} at {host}: ")
    except EOFError:
        raise ConfigError("no password given at the prompt") from None


def make_client(
    target: Target, transcript: Transcript | None, ssl_context: ssl.SSLContext | None = None
) -> Client:
    """A client for ``target`` (not connected yet); TLS details go into the transcript."""
    client = Client(
        target.host,
        target.port,
        tls=target.tls,
        ssl_context=ssl_context or target.ssl_context,
        tls_fingerprint=target.tls_fingerprint,
        username=target.user,
        password=target.password,
        allow_plaintext_auth=target.allow_plaintext_auth,
        timeout=target.timeout,
        lmtp=target.lmtp,
        proxy=target.proxy,
        dkim=target.dkim,
        transcript=transcript,
    )
    if transcript is not None:
        transcript.on_tls = lambda: _tls_text(client)
    return client


def _tls_text(client: Client) -> str | None:
    info = client.tls_info()
    if info is None:
        return None
    return f"{info.get('version')}, cipher {info.get('cipher')}"


def result_exit_code(result: SendResult) -> int:
    """0 when every recipient was accepted; 75 if the refusals were all 4xx, else 67."""
    if not result.refused:
        return Exit.OK
    transient = all(reply.is_transient for reply in result.refused.values())
    return Exit.TEMPFAIL if transient else Exit.NOUSER


def result_json(result: SendResult) -> dict[str, object]:
    """A send result as JSON-ready data: accepted, refused (with replies) and the final reply."""
    return {
        "accepted": list(result.accepted),
        "refused": {addr: reply_json(reply) for addr, reply in result.refused.items()},
        "reply": reply_json(result.reply),
    }
