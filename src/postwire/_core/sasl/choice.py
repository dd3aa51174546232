"""Which mechanism to authenticate with, given the server's AUTH list and the credentials."""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import NoCommonMechanism
from .mechanism import Mechanism
from .oauth import OAuthBearer, XOAuth2
from .password import CramMD5, Login, Plain
from .scram import ScramSHA256
from .text import printable, required_text

__all__ = ["STRENGTH", "SUPPORTED", "choose_mechanism"]

#: Password mechanisms, strongest first.
STRENGTH: tuple[str, ...] = ("SCRAM-SHA-256", "CRAM-MD5", "PLAIN", "LOGIN")
#: Every mechanism this package implements.
SUPPORTED: tuple[str, ...] = (*STRENGTH, "OAUTHBEARER", "XOAUTH2")


def _build(
    name: str,
    *,
    username: str,
    password: str | None,
    token: str | None,
    host: str | None,
    port: int | None,
) -> Mechanism:
    if name in ("XOAUTH2", "OAUTHBEARER"):
        if token is None:
            raise ValueError(f"{name} needs an OAuth2 token")
        if name == "XOAUTH2":
            return XOAuth2(username, token)
        return OAuthBearer(username, token, host=host, port=port)
    if password is None:
        raise ValueError(f"{name} needs a password")
    if name == "SCRAM-SHA-256":
        return ScramSHA256(username, password)
    if name == "CRAM-MD5":
        return CramMD5(username, password)
    if name == "PLAIN":
        return Plain(username, password)
    return Login(username, password)


def choose_mechanism(
    advertised: Iterable[str],
    *,
    username: str,
    password: str | None,
    oauth2_token: str | None = None,
    preferred: str | None = None,
    host: str | None = None,
    port: int | None = None,
) -> Mechanism:
    """Pick the mechanism to authenticate with and build it.

    ``advertised`` is the server's AUTH list (any case; a space-separated
    string is accepted too).  With ``preferred`` that mechanism is used, if
    the server offers it.  Otherwise, with an OAuth2 token: OAUTHBEARER, else
    XOAUTH2; then (or without a token) the strongest of :data:`STRENGTH`.
    ``host`` and ``port`` only go into OAUTHBEARER.

    Raises :class:`NoCommonMechanism` when nothing fits, ValueError or
    TypeError for bad arguments.
    """
    if isinstance(advertised, str):
        advertised = advertised.split()
    offered = tuple(dict.fromkeys(name.strip().upper() for name in advertised if name.strip()))

    def build(name: str) -> Mechanism:
        return _build(
            name,
            username=username,
            password=password,
            token=oauth2_token,
            host=host,
            port=port,
        )

    if preferred is not None:
        wanted = required_text(preferred, "preferred mechanism").strip().upper()
        if wanted not in SUPPORTED:
            raise ValueError(
                f"unsupported SASL mechanism {printable(preferred)!r}; "
                f"postwire supports {', '.join(SUPPORTED)}"
            )
        if wanted not in offered:
            raise NoCommonMechanism(offered, (wanted,), f"{wanted} is not offered")
        return build(wanted)

    usable: tuple[str, ...] = ()
    if oauth2_token is not None:
        usable = ("OAUTHBEARER", "XOAUTH2")
        for name in usable:
            if name in offered:
                return build(name)
        if password is None:
            raise NoCommonMechanism(offered, usable)
    if password is None:
        raise ValueError("a password (or an OAuth2 token) is required to authenticate")
    for name in STRENGTH:
        if name in offered:
            return build(name)
    raise NoCommonMechanism(offered, usable + STRENGTH)
