"""Connection settings in layers: what a config file, the environment or a caller gives.

``None`` means "not given at this layer", so layers can be stacked with
:meth:`Settings.over`; a password source given at one layer replaces every
source of the layers below (so that a command-line ``--password-env`` is not
mixed with the config file's ``password_command``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .._net.tls import TLS_MODES

__all__ = [
    "PASSWORD_KEYS",
    "TLS_MODES",
    "Settings",
    "default_tls",
    "parse_server",
    "positive_seconds",
]

#: The settings that say where a password comes from (never the password itself).
PASSWORD_KEYS = ("password_env", "password_file", "password_command", "password_prompt")


@dataclass
class Settings:
    """Connection settings; ``None`` means "not given at this layer"."""

    server: str | None = None
    tls: str | None = None
    cafile: str | None = None
    tls_fingerprint: str | None = None
    user: str | None = None
    password_env: str | None = None
    password_file: str | None = None
    password_command: str | None = None
    password_prompt: bool | None = None
    sender: str | None = None
    timeout: float | None = None
    allow_plaintext_auth: bool | None = None
    lmtp: bool | None = None
    proxy: str | None = None
    dkim_key: str | None = None
    dkim_selector: str | None = None
    dkim_domain: str | None = None
    dkim_headers: str | None = None
    dkim_canonicalization: str | None = None

    def over(self, lower: Settings) -> Settings:
        """These settings on top of ``lower`` (a password source replaces all lower ones)."""
        merged = dataclasses.replace(lower)
        if any(getattr(self, key) is not None for key in PASSWORD_KEYS):
            for key in PASSWORD_KEYS:
                setattr(merged, key, None)
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            if value is not None:
                setattr(merged, item.name, value)
        return merged

    @property
    def has_password_source(self) -> bool:
        return any(getattr(self, key) for key in PASSWORD_KEYS)


def positive_seconds(text: str) -> float | None:
    """``text`` as a positive number of seconds, or None when it is not one."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value > 0 else None


def default_tls(server: str) -> str:
    """The TLS mode when none is configured: STARTTLS, required (never plain text silently);
    none for a Unix socket, which has no name to verify a certificate against."""
    return "none" if server.lstrip().startswith("/") else "starttls"


def parse_server(text: str, tls: str, *, lmtp: bool = False) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]:port``, a bare IPv6 address or a socket path -> (host, port).

    Without a port: 465 for implicit TLS (RFC 8314 §3.3), 587 for STARTTLS
    (submission, RFC 6409), 25 otherwise; 24 for LMTP (RFC 2033 §5 forbids 25).
    An absolute path is a Unix domain socket (the port is 0).
    """
    text = text.strip()
    if text.startswith("/"):
        if any(ch.isspace() for ch in text):
            raise ValueError(f"bad socket path {text!r}")
        return text, 0
    port_text = ""
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"bad server address {text!r}: expected [IPv6]:port")
        port_text = rest[1:]
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host = text  # a name, an IPv4 address or a bare IPv6 address
    if not host or any(ch.isspace() or ch in "/@" for ch in host):
        raise ValueError(f"bad server address {text!r}: expected host[:port]")
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"bad port in server address {text!r}")
        return host, int(port_text)
    if lmtp:
        return host, 24
    return host, {"implicit": 465, "starttls": 587}.get(tls, 25)
