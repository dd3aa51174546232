"""Shared by ``send``, ``send --many``, ``sendmail`` and ``probe``: options, server, client."""

from __future__ import annotations

import argparse
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from .._core.envelope import SendResult
from .._net.tls import make_context, normalize_fingerprint
from ..client import Client, TLSMode
from .config import TLS_MODES, Settings, load_settings, parse_server, read_password
from .exits import CLIError, Exit
from .output import Transcript, one_line, reply_json

__all__ = [
    "DEFAULT_TIMEOUT",
    "Target",
    "add_auth_options",
    "add_connection_options",
    "make_client",
    "result_exit_code",
    "result_json",
    "settings_from_args",
    "target_from",
]

DEFAULT_TIMEOUT = 30.0


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds: {text!r}")
    return value


def add_connection_options(parser: argparse.ArgumentParser, *, server: bool = True) -> None:
    """Add ``--server`` (unless ``server=False``), ``--tls``, ``--cafile`` and the like."""
    group = parser.add_argument_group("connection")
    if server:
        group.add_argument(
            "--server",
            metavar="HOST[:PORT]",
            help="the SMTP server (default port: 587 for starttls, 465 for implicit, else 25)",
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
        metavar="SHA256",
        help="pin the server certificate's SHA-256 fingerprint (hex, colons allowed); "
        "without --cafile it replaces CA verification (as msmtp's tls_fingerprint)",
    )
    group.add_argument(
        "--timeout",
        type=_positive,
        metavar="SECONDS",
        help=f"limit for each network step (default {DEFAULT_TIMEOUT:g})",
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
    timeout: float
    user: str | None
    password: str | None
    allow_plaintext_auth: bool
    tls_fingerprint: str | None = None

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def target_from(
    settings: Settings, *, missing_password: int, server: str | None = None, auth: bool = True
) -> Target:
    """Resolve the server, the TLS context and the password (before anything is sent)."""
    tls = cast(TLSMode, settings.tls or "starttls")
    text = server or settings.server
    if not text:
        raise CLIError(
            "no server: give --server HOST[:PORT], set POSTWIRE_SERVER, "
            "or configure an account in the config file",
            Exit.CONFIG,
        )
    try:
        host, port = parse_server(text, tls)
    except ValueError as exc:
        raise CLIError(str(exc), Exit.USAGE) from None
    context = None
    fingerprint = settings.tls_fingerprint
    if fingerprint is not None:
        try:
            fingerprint = normalize_fingerprint(fingerprint)
        except ValueError as exc:
            raise CLIError(f"--tls-fingerprint: {exc}", Exit.USAGE) from None
    if tls != "none":
        try:
            context = make_context(settings.cafile, pinned=fingerprint is not None)
        except (OSError, ssl.SSLError) as exc:
            reason = getattr(exc, "strerror", None) or one_line(exc)
            message = f"cannot load the CA file {settings.cafile}: {reason}"
            raise CLIError(message, Exit.CONFIG) from None
    password = read_password(settings, host, missing=missing_password) if auth else None
    return Target(
        host=host,
        port=port,
        tls=tls,
        ssl_context=context,
        cafile=settings.cafile,
        tls_fingerprint=fingerprint,
        timeout=settings.timeout or DEFAULT_TIMEOUT,
        user=settings.user if auth else None,
        password=password,
        allow_plaintext_auth=bool(settings.allow_plaintext_auth),
    )


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
