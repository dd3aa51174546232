"""What a failed read or write on a connection means, worded once for every stream.

A read or write that times out is a :class:`Timeout`; any other failure (the
peer reset or closed the connection, a TLS record error, a closed file) is a
:class:`ServerDisconnected`.  Both name the protocol step that was waiting.
"""

from __future__ import annotations

import ssl

from .._core.errors import ServerDisconnected, SMTPError, Timeout

__all__ = ["read_failure", "write_failure"]


def _peer(peer: str) -> str:
    return f" {peer}" if peer else ""


def read_failure(
    exc: BaseException | None, step: str, peer: str, timeout: float | None
) -> SMTPError:
    """The error for a read that failed with ``exc`` (None: it timed out)."""
    if exc is None or isinstance(exc, TimeoutError):
        who = _peer(peer) or " the server"
        return Timeout(f"{step}: no reply from{who} within {timeout:.3g} s", step=step)
    if isinstance(exc, ssl.SSLError):
        return ServerDisconnected(f"{step}: TLS error from{_peer(peer)}: {exc}", step=step)
    return ServerDisconnected(f"{step}: connection to{_peer(peer)} broke: {exc}", step=step)


def write_failure(
    exc: BaseException | None, step: str, peer: str, timeout: float | None
) -> SMTPError:
    """The error for a write that failed with ``exc`` (None: it stalled past ``timeout``)."""
    if exc is None or isinstance(exc, TimeoutError):
        who = _peer(peer) or " the server"
        return Timeout(f"{step}: sending to{who} stalled for {timeout:.3g} s", step=step)
    return ServerDisconnected(
        f"{step}: connection to{_peer(peer)} broke while sending: {exc}", step=step
    )
