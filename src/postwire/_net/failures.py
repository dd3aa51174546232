"""What a failed read or write on a connection means, worded once for every stream.

A read or write that times out is a :class:`Timeout`; any other failure (the
peer reset or closed the connection, a TLS record error, a closed file) is a
:class:`ServerDisconnected`.  Both name the protocol step that was waiting.
"""

from __future__ import annotations

import ssl

from .._core.errors import ServerDisconnected, SMTPError, Timeout

__all__ = ["read_failure", "write_failure"]


def _failure(
    exc: BaseException | None, step: str, peer: str, timeout: float | None, *, sending: bool
) -> SMTPError:
    if exc is None or isinstance(exc, TimeoutError):
        who = f" {peer}" if peer else " the server"
        waited = f"sending to{who} stalled for" if sending else f"no reply from{who} within"
        return Timeout(f"{step}: {waited} {timeout:.3g} s", step=step)
    where = f" {peer}" if peer else ""
    if isinstance(exc, ssl.SSLError) and not sending:
        return ServerDisconnected(f"{step}: TLS error from{where}: {exc}", step=step)
    while_ = " while sending" if sending else ""
    return ServerDisconnected(f"{step}: connection to{where} broke{while_}: {exc}", step=step)


def read_failure(
    exc: BaseException | None, step: str, peer: str, timeout: float | None
) -> SMTPError:
    """The error for a read that failed with ``exc`` (None: it timed out)."""
    return _failure(exc, step, peer, timeout, sending=False)


def write_failure(
    exc: BaseException | None, step: str, peer: str, timeout: float | None
) -> SMTPError:
    """The error for a write that failed with ``exc`` (None: it stalled past ``timeout``)."""
    return _failure(exc, step, peer, timeout, sending=True)
