"""Release a captured message to a real SMTP server, through :class:`postwire.AsyncClient`.

The server is chosen when the catcher starts (``--release-to URL``), never by the web page,
so a page cannot turn the catcher into a relay to a server of its choosing; the page only
picks the recipients (as Mailpit's release does). The message goes byte for byte, with the
captured envelope sender and the chosen recipients.

URLs: ``smtp://host[:port]`` (plain text, port 25), ``smtp+starttls://host[:port]`` (STARTTLS
required, port 587), ``smtps://host[:port]`` (implicit TLS, RFC 8314, port 465); an optional
``user@`` takes its password from ``POSTWIRE_RELEASE_PASSWORD``; query parameters ``cafile``
and ``tls_fingerprint``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import cast
from urllib.parse import parse_qs, unquote, urlsplit

from .._core.envelope import SendResult
from ..client import AsyncClient, TLSMode

__all__ = ["ReleaseTarget", "parse_release_url"]

_SCHEMES: dict[str, tuple[str, int]] = {
    "smtp": ("none", 25),
    "smtp+starttls": ("starttls", 587),
    "smtps": ("implicit", 465),
}


@dataclass(frozen=True)
class ReleaseTarget:
    """Where released messages go."""

    host: str
    port: int
    tls: str = "starttls"
    username: str | None = None
    password: str | None = None
    cafile: str | None = None
    tls_fingerprint: str | None = None
    timeout: float = 30.0

    @property
    def address(self) -> str:
        """``host:port`` for messages."""
        return f"{self.host}:{self.port}"

    async def release(self, data: bytes, sender: str, recipients: Sequence[str]) -> SendResult:
        """Send ``data`` from ``sender`` to ``recipients``; raises postwire's errors."""
        async with AsyncClient(
            self.host,
            self.port,
            tls=cast(TLSMode, self.tls),
            cafile=self.cafile,
            tls_fingerprint=self.tls_fingerprint,
            username=self.username,
            password=self.password,
            timeout=self.timeout,
        ) as client:
            return await client.send(data, sender=sender, recipients=list(recipients))


def parse_release_url(url: str, environ: Mapping[str, str] | None = None) -> ReleaseTarget:
    """A :class:`ReleaseTarget` from a URL (see the module's description)."""
    env = os.environ if environ is None else environ
    parts = urlsplit(url)
    if parts.scheme not in _SCHEMES:
        raise ValueError(
            f"release URL must start with {', '.join(s + '://' for s in _SCHEMES)}: {url!r}"
        )
    tls, default_port = _SCHEMES[parts.scheme]
    if not parts.hostname:
        raise ValueError(f"release URL has no host: {url!r}")
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    unknown = sorted(set(query) - {"cafile", "tls_fingerprint"})
    if unknown:
        raise ValueError(f"unknown release URL parameter {unknown[0]!r}")
    if parts.password is not None:
        raise ValueError(
            "put no password in the release URL: set POSTWIRE_RELEASE_PASSWORD instead"
        )
    username = unquote(parts.username) if parts.username else None
    password = None
    if username is not None:
        password = env.get("POSTWIRE_RELEASE_PASSWORD")
        if not password:
            raise ValueError(f"release user {username!r} needs POSTWIRE_RELEASE_PASSWORD")
    return ReleaseTarget(
        host=parts.hostname,
        port=parts.port or default_port,
        tls=tls,
        username=username,
        password=password,
        cafile=query.get("cafile"),
        tls_fingerprint=query.get("tls_fingerprint"),
    )
