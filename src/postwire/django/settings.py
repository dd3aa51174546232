"""What the backend connects with: its arguments, Django's ``EMAIL_*`` settings, ``POSTWIRE_EMAIL``.

Layers, lowest first (each one replaces what the ones below say):

1. Where to connect and how to log in: Django's ``EMAIL_HOST``, ``EMAIL_PORT``,
   ``EMAIL_HOST_USER``, ``EMAIL_HOST_PASSWORD``, ``EMAIL_USE_TLS`` and
   ``EMAIL_USE_SSL``; or, when ``POSTWIRE_EMAIL`` names a ``url`` or an
   ``account``, that SMTP URL or config-file account instead of those six.
2. ``EMAIL_TIMEOUT`` (when not ``None``), ``EMAIL_SSL_CERTFILE``,
   ``EMAIL_SSL_KEYFILE`` and ``EMAIL_OAUTH2_TOKEN``.
3. The other ``POSTWIRE_EMAIL`` keys: keyword arguments of
   :class:`postwire.Client` (``cafile``, ``tls_fingerprint``, ``dkim``, ``proxy``,
   ``tls``...).
4. The backend's own arguments (``get_connection(host=..., use_ssl=...)``),
   which override settings exactly as they do for Django's SMTP backend, and its
   extra keyword arguments, read as ``POSTWIRE_EMAIL`` keys.

Everything is read when the backend is made, so a bad setting raises
``ImproperlyConfigured`` (a bad value of a Django setting: ``ValueError``, as
Django's backend does) before any connection.

The same layers (without arguments) are the relay of ``manage.py postwire_outbox_work``
(:func:`relay_options`), so a worker sends exactly where ``EmailBackend`` would.
``POSTWIRE_OUTBOX`` (:func:`outbox_settings`) says where
:class:`~postwire.django.OutboxBackend` puts messages.
"""

from __future__ import annotations

import inspect
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from .._net.tls import make_context
from ..client.base import BaseClient, OAuth2Token, TLSMode
from ..config import ClientConfig, from_account, from_url
from ..errors import ConfigError
from ..signing import DKIMSigner

__all__ = [
    "OPTIONS",
    "Arguments",
    "Connection",
    "OutboxSettings",
    "outbox_settings",
    "relay_options",
    "resolve",
    "tls_context",
]

#: Client keyword arguments that have a Django setting: POSTWIRE_EMAIL must not repeat them.
_DJANGO_SETTING = {
    "host": "EMAIL_HOST",
    "port": "EMAIL_PORT",
    "username": "EMAIL_HOST_USER",
    "password": "EMAIL_HOST_PASSWORD",
    "timeout": "EMAIL_TIMEOUT",
    "oauth2_token": "EMAIL_OAUTH2_TOKEN",
}
#: Where the connection comes from instead of the EMAIL_* settings.
_SOURCES = ("url", "account", "config")
#: The keys of POSTWIRE_EMAIL: every other keyword argument of the client, and the sources.
OPTIONS: frozenset[str] = frozenset(
    name
    for name in (*inspect.signature(BaseClient.__init__).parameters, *_SOURCES)
    if name != "self" and name not in _DJANGO_SETTING
)
_TLS_ERROR = (
    # Django's own wording (django.core.mail.backends.smtp), so existing tests still match.
    "EMAIL_USE_TLS/EMAIL_USE_SSL are mutually exclusive, so only set one of those settings to True."
)


@dataclass(frozen=True)
class Arguments:
    """The backend's constructor arguments; ``None`` means "take the setting"."""

    host: str | None = None
    port: int | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    use_tls: bool | None = None
    use_ssl: bool | None = None
    timeout: float | None = None
    ssl_keyfile: str | None = None
    ssl_certfile: str | None = None
    oauth2_token: OAuth2Token | str | None = field(default=None, repr=False)
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Connection:
    """The resolved settings: Django's names for Django's settings, the rest as client options."""

    host: str
    port: int
    username: str
    password: str = field(repr=False)
    tls: TLSMode
    timeout: float | None
    ssl_certfile: str | None
    ssl_keyfile: str | None
    oauth2_token: OAuth2Token | None = field(repr=False)
    #: Other keyword arguments of the client (POSTWIRE_EMAIL, the URL's or account's options).
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def use_tls(self) -> bool:
        return self.tls == "starttls"

    @property
    def use_ssl(self) -> bool:
        return self.tls == "implicit"

    @property
    def logs_in(self) -> bool:
        """Whether AUTH is done: Django logs in only with both a user name and a password."""
        return bool(self.username) and (bool(self.password) or self.oauth2_token is not None)

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments of :class:`postwire.Client` (without the client certificate)."""
        options: dict[str, Any] = {**self.options, "host": self.host, "port": self.port}
        options["tls"] = self.tls
        if self.timeout is not None:
            options["timeout"] = self.timeout
        if self.logs_in:
            options["username"] = self.username
            # A token replaces the password: XOAUTH2 or OAUTHBEARER, never both kinds.
            if self.oauth2_token is not None:
                options["oauth2_token"] = self.oauth2_token
            else:
                options["password"] = self.password
        return options


def resolve(arguments: Arguments) -> Connection:
    """The backend's settings from its arguments and Django's settings (see the module)."""
    extra = options_from(getattr(settings, "POSTWIRE_EMAIL", None), "POSTWIRE_EMAIL")
    extra.update(options_from(arguments.options, "the backend's keyword arguments", TypeError))
    configured = _configured(extra)
    if configured is None:
        base: dict[str, Any] = {
            "host": settings.EMAIL_HOST,
            "port": settings.EMAIL_PORT,
            "username": settings.EMAIL_HOST_USER,
            "password": settings.EMAIL_HOST_PASSWORD,
            "use_tls": settings.EMAIL_USE_TLS,
            "use_ssl": settings.EMAIL_USE_SSL,
        }
        lower: dict[str, Any] = {}
    else:
        lower = configured.client_options()
        configured_tls = lower.pop("tls")
        base = {
            "host": lower.pop("host"),
            "port": lower.pop("port"),
            "username": lower.pop("username", ""),
            "password": lower.pop("password", ""),
            "use_tls": configured_tls == "starttls",
            "use_ssl": configured_tls == "implicit",
        }
        if configured_tls in ("opportunistic", "none"):
            lower["tls"] = configured_tls
    # Django's rules (django.core.mail.backends.smtp): a false host or port takes the setting;
    # the other arguments take it only when None.
    use_tls = base["use_tls"] if arguments.use_tls is None else arguments.use_tls
    use_ssl = base["use_ssl"] if arguments.use_ssl is None else arguments.use_ssl
    if use_tls and use_ssl:
        raise ValueError(_TLS_ERROR)
    options = {**lower, **extra}
    configured_timeout = options.pop("timeout", None)
    tls: TLSMode = "implicit" if use_ssl else "starttls" if use_tls else "none"
    if "tls" in options:
        # POSTWIRE_EMAIL's (or the URL's) mode, unless the caller asked for TLS or SSL itself.
        named = options.pop("tls")
        if arguments.use_tls is None and arguments.use_ssl is None:
            tls = named
    timeout = _or_setting(arguments.timeout, "EMAIL_TIMEOUT")
    if timeout is None:
        timeout = configured_timeout
    certfile = _or_setting(arguments.ssl_certfile, "EMAIL_SSL_CERTFILE")
    keyfile = _or_setting(arguments.ssl_keyfile, "EMAIL_SSL_KEYFILE")
    if keyfile and not certfile:
        raise ImproperlyConfigured("EMAIL_SSL_KEYFILE is set but EMAIL_SSL_CERTFILE is not")
    if certfile and "ssl_context" in options:
        raise ImproperlyConfigured(
            "EMAIL_SSL_CERTFILE and POSTWIRE_EMAIL['ssl_context'] cannot go together: load the "
            "certificate into your context (ssl_context.load_cert_chain)"
        )
    token = _token_provider(_or_setting(arguments.oauth2_token, "EMAIL_OAUTH2_TOKEN"))
    username = base["username"] if arguments.username is None else arguments.username
    if token is not None and not username:
        raise ImproperlyConfigured("EMAIL_OAUTH2_TOKEN needs EMAIL_HOST_USER, the account's name")
    port = arguments.port or base["port"]
    if isinstance(port, str) and port.strip().isdigit():
        port = int(port)  # EMAIL_PORT read from the environment: smtplib takes "587" too
    return Connection(
        host=arguments.host or base["host"],
        port=port,
        username=username or "",
        password=(base["password"] if arguments.password is None else arguments.password) or "",
        tls=tls,
        timeout=timeout,
        ssl_certfile=certfile or None,
        ssl_keyfile=keyfile or None,
        oauth2_token=token,
        options=options,
    )


def tls_context(config: Connection) -> ssl.SSLContext:
    """The TLS context of ``config``: ``POSTWIRE_EMAIL["ssl_context"]``, or a verified one
    (TLS 1.2+, ``cafile`` or a pinned fingerprint) with the client certificate if one is set."""
    given = config.options.get("ssl_context")
    if isinstance(given, ssl.SSLContext):
        return given
    options = config.options
    context = make_context(options.get("cafile"), pinned=options.get("tls_fingerprint") is not None)
    if config.ssl_certfile:
        context.load_cert_chain(config.ssl_certfile, config.ssl_keyfile)
    return context


def relay_options() -> dict[str, Any]:
    """Client options for the relay the ``EMAIL_*`` settings and ``POSTWIRE_EMAIL`` describe.

    What :class:`~postwire.django.EmailBackend` would connect with (its settings without
    arguments, and its TLS context), for a worker of the outbox; raises
    ``ImproperlyConfigured``/``ValueError`` as the backend does, or ``OSError`` for an
    unreadable client certificate.
    """
    config = resolve(Arguments())
    options = config.client_options()
    if config.tls != "none":
        options["ssl_context"] = tls_context(config)
    return options


@dataclass(frozen=True)
class OutboxSettings:
    """``POSTWIRE_OUTBOX``: where :class:`~postwire.django.OutboxBackend` puts messages."""

    #: The outbox URL; None: the outbox's default (``$POSTWIRE_OUTBOX``, else the user's file).
    url: str | None = None
    #: The config-file account a worker sends through; None: the worker's default relay.
    route: str | None = None
    priority: int = 0
    #: The right-hand side of Message-IDs made for senders without a domain.
    domain: str | None = None


_OUTBOX_KEYS = ("url", "route", "priority", "domain")


def outbox_settings(**arguments: Any) -> OutboxSettings:
    """``POSTWIRE_OUTBOX`` (a URL, or a dict of :class:`OutboxSettings` fields), with the
    backend's arguments (not None) on top; raises ``ImproperlyConfigured``."""
    raw = getattr(settings, "POSTWIRE_OUTBOX", None)
    values: dict[str, Any]
    if raw is None:
        values = {}
    elif isinstance(raw, str):
        values = {"url": raw}
    elif isinstance(raw, Mapping):
        values = dict(raw)
    else:
        raise ImproperlyConfigured("POSTWIRE_OUTBOX must be an outbox URL or a dict")
    for key in values:
        if key not in _OUTBOX_KEYS:
            raise ImproperlyConfigured(
                f"POSTWIRE_OUTBOX: unknown key {key!r} (known: {', '.join(_OUTBOX_KEYS)})"
            )
    values.update({key: value for key, value in arguments.items() if value is not None})
    result = OutboxSettings(**values)
    if result.url is not None and (not isinstance(result.url, str) or not result.url):
        raise ImproperlyConfigured("POSTWIRE_OUTBOX['url'] must be a non-empty str")
    if result.route is not None and (not isinstance(result.route, str) or not result.route):
        raise ImproperlyConfigured("POSTWIRE_OUTBOX['route'] must be an account name")
    if isinstance(result.priority, bool) or not isinstance(result.priority, int):
        raise ImproperlyConfigured("POSTWIRE_OUTBOX['priority'] must be an int")
    return result


def _or_setting(argument: Any, name: str) -> Any:
    """The argument, or Django's setting when the argument is None."""
    return getattr(settings, name, None) if argument is None else argument


def options_from(
    raw: object, where: str, error: type[Exception] = ImproperlyConfigured
) -> dict[str, Any]:
    """POSTWIRE_EMAIL (or the backend's keyword arguments) checked, dotted paths imported."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise error(f"{where} must be a dict of postwire client options")
    options = dict(raw)
    for key in options:
        if key in _DJANGO_SETTING:
            raise error(f"{where}: {key!r} is Django's {_DJANGO_SETTING[key]} setting; set that")
        if key not in OPTIONS:
            raise error(f"{where}: unknown option {key!r} (known: {', '.join(sorted(OPTIONS))})")
    if isinstance(options.get("transcript"), str):
        options["transcript"] = _imported(options["transcript"], f"{where}['transcript']")
    if isinstance(options.get("dkim"), Mapping):
        options["dkim"] = _dkim_signer(options["dkim"], where)
    return options


def _configured(options: dict[str, Any]) -> ClientConfig | None:
    """The SMTP URL's or account's settings, when POSTWIRE_EMAIL names one (keys removed)."""
    url = options.pop("url", None)
    account = options.pop("account", None)
    config = options.pop("config", None)
    if url is not None and account is not None:
        raise ImproperlyConfigured("POSTWIRE_EMAIL: give 'url' or 'account', not both")
    if config is not None and account is None:
        raise ImproperlyConfigured("POSTWIRE_EMAIL: 'config' names the file of an 'account'")
    try:
        if url is not None:
            return from_url(url)
        if account is not None:
            # True: the file's default account, as `postwire send` without --account.
            return from_account(None if account is True else account, config=config)
    except ConfigError as exc:
        raise ImproperlyConfigured(f"POSTWIRE_EMAIL: {exc}") from exc
    return None


def _token_provider(value: object) -> OAuth2Token | None:
    """EMAIL_OAUTH2_TOKEN: a callable returning a token, or the dotted path of one."""
    if value is None:
        return None
    if isinstance(value, str):
        value = _imported(value, "EMAIL_OAUTH2_TOKEN")
    if not callable(value):
        raise ImproperlyConfigured(
            "EMAIL_OAUTH2_TOKEN must be a callable that returns a token, or its dotted path"
        )
    return cast(Callable[[], str], value)


def _imported(path: str, where: str) -> Any:
    try:
        return import_string(path)
    except ImportError as exc:
        raise ImproperlyConfigured(f"{where}: cannot import {path!r}: {exc}") from exc


def _dkim_signer(values: Mapping[str, Any], where: str) -> DKIMSigner:
    """``{"key": path, "domain": ..., "selector": ..., **DKIMSigner options}``."""
    options = dict(values)
    try:
        key, domain, selector = options.pop("key"), options.pop("domain"), options.pop("selector")
    except KeyError as exc:
        raise ImproperlyConfigured(f"{where}['dkim'] needs {exc.args[0]!r}") from None
    try:
        return DKIMSigner.from_file(key, domain=domain, selector=selector, **options)
    except (ValueError, TypeError, ImportError) as exc:
        raise ImproperlyConfigured(f"{where}['dkim']: {exc}") from exc
