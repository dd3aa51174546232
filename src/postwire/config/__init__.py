"""Client settings from configuration: an SMTP URL, or an account of the config file.

The command line, the outbox worker and application glue (Django, logging)
all build their clients here, so a setting means the same everywhere::

    client = Client.from_url("smtps://me%40example.org:secret@smtp.example.org")
    client = Client.from_account("work")            # ~/.config/postwire/config.toml
    pool = Pool.from_account(max_connections=4)     # the default account

``from_url`` and ``from_account`` return a :class:`ClientConfig`;
:meth:`ClientConfig.client_options` gives the keyword arguments of
:class:`~postwire.Client`, :class:`~postwire.AsyncClient` and the pools.
Keyword overrides given to ``Client.from_url`` and friends replace a
configured value, except ``None``, which never erases one (a glue layer that
passes ``password=None`` along must not log in without the password).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .._core.errors import ConfigError
from .._net.tls import TLSMode
from ..signing.dkim import DKIMSigner
from .files import ENV_VARS, KEYS, find_config, load_settings
from .passwords import Prompt, read_password
from .settings import TLS_MODES, Settings, default_tls, parse_server, positive_seconds
from .url import SCHEMES, parse_url

__all__ = [
    "ENV_VARS",
    "KEYS",
    "SCHEMES",
    "TLS_MODES",
    "ClientConfig",
    "Settings",
    "account_options",
    "config_from_settings",
    "default_tls",
    "dkim_from_settings",
    "find_config",
    "from_account",
    "from_url",
    "load_settings",
    "parse_server",
    "positive_seconds",
    "read_password",
    "url_options",
    "with_overrides",
]


@dataclass(frozen=True)
class ClientConfig:
    """Where and how to connect: everything a client needs, the password already read.

    ``sender`` is the configured default sender (an account's ``from``); it is
    not a client option.  The password never appears in the ``repr``.
    """

    host: str
    port: int
    tls: TLSMode = "starttls"
    cafile: str | None = None
    tls_fingerprint: str | None = None
    server_hostname: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    auth_mechanism: str | None = None
    timeout: float | None = None
    local_hostname: str | None = None
    allow_plaintext_auth: bool | None = None
    pipelining: bool | None = None
    chunking: bool | None = None
    lmtp: bool | None = None
    proxy: str | None = None
    dkim: DKIMSigner | None = None
    sender: str | None = None

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for a client or pool; what is not configured is left out."""
        options = {
            item.name: getattr(self, item.name)
            for item in dataclasses.fields(self)
            if item.name != "sender" and getattr(self, item.name) is not None
        }
        return options


def with_overrides(options: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` with ``overrides`` on top; an override that is ``None`` keeps the option."""
    return {**options, **{key: value for key, value in overrides.items() if value is not None}}


def url_options(url: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments for a client or pool: an SMTP URL's settings, then ``overrides``."""
    return with_overrides(from_url(url).client_options(), overrides)


def account_options(
    account: str | None, config: str | None, overrides: Mapping[str, Any]
) -> dict[str, Any]:
    """Keyword arguments for a client or pool: an account's settings, then ``overrides``."""
    return with_overrides(from_account(account, config=config).client_options(), overrides)


def from_url(url: str) -> ClientConfig:
    """The settings an SMTP URL gives (see :mod:`postwire.config.url`)."""
    parsed = parse_url(url)
    tls: TLSMode = parsed.tls  # type: ignore[assignment]  # checked by parse_url
    return ClientConfig(
        host=parsed.host,
        port=parsed.port,
        tls=tls,
        username=parsed.username,
        password=parsed.password,
        sender=parsed.sender,
        **parsed.options,
    )


def from_account(
    account: str | None = None,
    *,
    config: str | None = None,
    environ: Mapping[str, str] | None = None,
    prompt: Prompt | None = None,
) -> ClientConfig:
    """The settings of an account of the config file (the default account if none is named).

    The ``POSTWIRE_*`` environment variables apply on top, as for the command
    line; ``config`` names the file (else ``$POSTWIRE_CONFIG``, else
    ``~/.config/postwire/config.toml``).  The password is read from the
    account's source now (``prompt`` is asked when there is none).  Raises
    :class:`~postwire.errors.ConfigError` when something is missing or wrong.
    """
    settings = load_settings(Settings(), config=config, account=account, environ=environ)
    return config_from_settings(settings, environ=environ, prompt=prompt)


def config_from_settings(
    settings: Settings,
    *,
    environ: Mapping[str, str] | None = None,
    prompt: Prompt | None = None,
) -> ClientConfig:
    """Resolve layered settings: the server's address, and the password from its source."""
    if not settings.server:
        raise ConfigError(
            "no server: give --server HOST[:PORT], set POSTWIRE_SERVER, "
            "or configure an account in the config file"
        )
    tls: TLSMode = settings.tls or default_tls(settings.server)  # type: ignore[assignment]
    try:
        host, port = parse_server(settings.server, tls, lmtp=bool(settings.lmtp))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return ClientConfig(
        host=host,
        port=port,
        tls=tls,
        cafile=settings.cafile,
        tls_fingerprint=settings.tls_fingerprint,
        username=settings.user,
        password=read_password(settings, host, prompt=prompt, environ=environ),
        timeout=settings.timeout,
        allow_plaintext_auth=settings.allow_plaintext_auth,
        lmtp=settings.lmtp,
        proxy=settings.proxy,
        dkim=dkim_from_settings(settings),
        sender=settings.sender,
    )


def dkim_from_settings(settings: Settings) -> DKIMSigner | None:
    """The DKIM signer the ``dkim_*`` settings describe, or None without ``dkim_key``.

    Raises :class:`~postwire.errors.ConfigError` when the key cannot be read or a
    setting is missing or wrong, before anything is sent.
    """
    if settings.dkim_key is None:
        others = [
            name
            for name in ("dkim_selector", "dkim_domain", "dkim_headers", "dkim_canonicalization")
            if getattr(settings, name) is not None
        ]
        if others:
            raise ConfigError(f"{others[0]} is set but dkim_key is not: give the signing key")
        return None
    missing = [n for n in ("dkim_selector", "dkim_domain") if getattr(settings, n) is None]
    if missing:
        raise ConfigError(f"dkim_key is set but {' and '.join(missing)} is not")
    options: dict[str, Any] = {}
    if settings.dkim_headers is not None:
        options["headers"] = settings.dkim_headers
    if settings.dkim_canonicalization is not None:
        options["canonicalization"] = settings.dkim_canonicalization
    try:
        return DKIMSigner.from_file(
            settings.dkim_key,
            domain=settings.dkim_domain or "",
            selector=settings.dkim_selector or "",
            **options,
        )
    except (ValueError, ImportError) as exc:
        raise ConfigError(str(exc)) from None
