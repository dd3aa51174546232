"""SMTP URLs: ``smtp://``, ``smtp+starttls://`` and ``smtps://`` with credentials and options.

``smtps://user:password@host:port`` is implicit TLS (RFC 8314 §3.3, port 465
by default); ``smtp+starttls://`` requires STARTTLS (port 587 by default);
``smtp://`` takes ``?tls=`` (postwire's default, STARTTLS required, when
absent) and the matching default port.  User and password are
percent-decoded (``me%40example.com``).  Query options: ``tls``, ``cafile``,
``tls_fingerprint``, ``server_hostname``, ``auth_mechanism``, ``timeout``
(seconds), ``local_hostname``, ``proxy`` (a proxy URL, percent-encoded),
``allow_plaintext_auth``, ``pipelining``, ``chunking`` (``true``/``false``) and
``from`` (a default sender).

``lmtp://host[:port]`` speaks LMTP (RFC 2033, port 24 by default, TLS as for
``smtp://``).  A URL without a host whose path is absolute names a Unix
domain socket: ``smtp:///run/mail.sock``, ``lmtp:///var/run/dovecot/lmtp``.

No error message ever shows the password.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from .._core.errors import ConfigError
from .._net.proxy import check_proxy_url
from .._net.tls import TLS_MODES, normalize_fingerprint
from .settings import default_tls, parse_server, positive_seconds

__all__ = ["SCHEMES", "UrlOptions", "parse_url"]

#: Each scheme and the TLS mode it fixes (None: the ``tls`` option or the default).
SCHEMES: dict[str, str | None] = {
    "smtp": None,
    "smtp+starttls": "starttls",
    "smtps": "implicit",
    "lmtp": None,
}

_TEXT_OPTIONS = (
    "cafile",
    "tls_fingerprint",
    "server_hostname",
    "auth_mechanism",
    "local_hostname",
    "proxy",
)
_FLAG_OPTIONS = ("allow_plaintext_auth", "pipelining", "chunking")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


@dataclass(frozen=True)
class UrlOptions:
    """What a URL says: the server, the TLS mode, credentials and client options."""

    host: str
    port: int
    tls: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    sender: str | None = None
    #: Client keyword options from the query (``cafile``, ``timeout``...).
    options: dict[str, Any] = field(default_factory=dict)


def _redacted(url: str) -> str:
    """The URL with its password replaced, for error messages."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def parse_url(url: str) -> UrlOptions:
    """Read an SMTP URL; raises :class:`ConfigError` naming what is wrong (never the password)."""
    if not isinstance(url, str):
        raise TypeError(f"the URL must be a str, not {type(url).__name__}")
    if any(ch in url for ch in "\r\n\0\t "):
        raise ConfigError("the URL contains white space or a control character")
    try:
        parts = urllib.parse.urlsplit(url)
        port_given = parts.port
    except ValueError as exc:
        raise ConfigError(f"bad SMTP URL {_redacted(url)!r}: {exc}") from None

    def fail(message: str) -> ConfigError:
        return ConfigError(f"SMTP URL {_redacted(url)!r}: {message}")

    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise fail(f"the scheme must be one of {', '.join(s + '://' for s in SCHEMES)}")
    socket_path = parts.path if not parts.netloc and parts.path.startswith("/") else None
    if not parts.hostname and socket_path is None:
        raise fail("no host (or, for a Unix socket, a path: smtp:///run/mail.sock)")
    if (socket_path is None and parts.path not in ("", "/")) or parts.fragment:
        raise fail("an SMTP URL has no path or fragment, but for a Unix socket's")
    query: dict[str, str] = {}
    for key, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True):
        if key in query:
            raise fail(f"the option {key!r} is given twice")
        query[key] = value
    fixed = SCHEMES[scheme]
    tls = query.pop("tls", None) or fixed or default_tls(socket_path or "")
    if tls not in TLS_MODES:
        raise fail(f"tls must be one of {', '.join(TLS_MODES)}, not {tls!r}")
    if fixed is not None and tls != fixed:
        raise fail(f"{scheme}:// means tls={fixed}; it cannot be combined with tls={tls}")
    host = parts.hostname or ""
    server = f"[{host}]" if ":" in host else host
    if port_given is not None:
        server += f":{port_given}"
    if socket_path is not None:
        server = urllib.parse.unquote(socket_path)
    try:
        host, port = parse_server(server, tls, lmtp=scheme == "lmtp")
    except ValueError as exc:
        raise fail(str(exc)) from None
    options: dict[str, Any] = {}
    for key in _TEXT_OPTIONS:
        if key in query:
            value = query.pop(key)
            if not value:
                raise fail(f"the option {key} is empty")
            options[key] = value
    if scheme == "lmtp":
        options["lmtp"] = True
    if "proxy" in options:
        try:
            check_proxy_url(options["proxy"])
        except ValueError as exc:
            raise fail(str(exc)) from None
    if "tls_fingerprint" in options:
        try:
            normalize_fingerprint(options["tls_fingerprint"])
        except ValueError as exc:
            raise fail(str(exc)) from None
    for key in _FLAG_OPTIONS:
        if key in query:
            value = query.pop(key).lower()
            if value not in _TRUE + _FALSE:
                raise fail(f"the option {key} must be true or false, not {value!r}")
            options[key] = value in _TRUE
    if "timeout" in query:
        text = query.pop("timeout")
        timeout = positive_seconds(text)
        if timeout is None:
            raise fail(f"timeout must be a positive number of seconds, not {text!r}")
        options["timeout"] = timeout
    sender = query.pop("from", None) or None
    if query:
        known = ", ".join(("tls", *_TEXT_OPTIONS, *_FLAG_OPTIONS, "timeout", "from"))
        raise fail(f"unknown option {sorted(query)[0]!r} (known: {known})")
    username = urllib.parse.unquote(parts.username) if parts.username else None
    password = urllib.parse.unquote(parts.password) if parts.password is not None else None
    if password is not None and username is None:
        raise fail("a password without a user name")
    return UrlOptions(host, port, tls, username, password, sender, options)
