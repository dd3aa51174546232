"""Where a composed message goes: the one seam between the handler and the network.

The sending thread hands each message to a :class:`Delivery` and learns from the exception
it raises (if any) whether the records may go again (:func:`worth_retrying`).  Today the
only delivery is :class:`ClientDelivery`, a postwire :class:`~postwire.Client` that connects
for each message; a durable outbox (the planned ``outbox=`` option) would be another class
with the same two members, chosen where the handler is built, and nothing else would change.
"""

from __future__ import annotations

from collections.abc import Mapping
from email.message import EmailMessage
from typing import Any, Protocol

from .._core.errors import ConnectError, PossiblyDelivered, SMTPError
from ..client import Client

__all__ = ["ClientDelivery", "Delivery", "worth_retrying"]


class Delivery(Protocol):
    """Something that takes a message for delivery, or raises."""

    @property
    def target(self) -> str:
        """Where messages go, for reports (``host:port``)."""
        ...

    def deliver(self, message: EmailMessage) -> None:
        """Deliver ``message`` or raise; called from the sending thread only."""
        ...


class ClientDelivery:
    """Each message through a new :class:`~postwire.Client`, connected for it alone.

    A connection per message, not one kept open: the rate limit spaces messages by a
    minute or more by default, longer than servers keep an idle client (RFC 5321
    §4.5.3.2.7).  A new client too, so that no state crosses from one message to the next,
    nor into a forked child from a send the parent had in progress.  One client is built
    here and thrown away, so that a bad option fails when the handler is configured.
    """

    def __init__(self, options: Mapping[str, Any], target: str) -> None:
        Client(**options)  # checks every option, connects nowhere
        self._options = dict(options)
        self._target = target

    @property
    def target(self) -> str:
        return self._target

    def deliver(self, message: EmailMessage) -> None:
        with Client(**self._options) as client:
            client.send(message)


def worth_retrying(error: BaseException) -> bool:
    """Whether the records of a message that failed with ``error`` may go again.

    Yes after a temporary failure: a server that is down, unreachable, slow, or answered
    4xx.  No when the message may already be in the inbox (a resend would double it), nor
    after a refusal that will repeat (5xx, an untrusted certificate, no TLS, bad input).
    """
    if isinstance(error, PossiblyDelivered):
        return False
    if isinstance(error, SMTPError):
        return error.is_transient or isinstance(error, ConnectError)
    return isinstance(error, OSError)
