"""Where a composed message goes: the one seam between the handler and the network.

The sending thread hands each message to a :class:`Delivery` and learns from the exception
it raises (if any) whether the records may go again (:func:`worth_retrying`).
:class:`ClientDelivery` sends through a postwire :class:`~postwire.Client` that connects
for each message; :class:`OutboxDelivery` (the handler's ``outbox=``) puts the message into
a durable :class:`~postwire.outbox.Outbox` instead, for a worker to deliver.  The handler
chooses one where it is built; batching, rate limit and the thread do not change.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any, Protocol

from .._core.errors import ConnectError, PossiblyDelivered, SMTPError, StorageError
from ..client import Client

if TYPE_CHECKING:
    from ..outbox import Outbox

__all__ = ["ClientDelivery", "Delivery", "OutboxDelivery", "worth_retrying"]


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


class OutboxDelivery:
    """Each message into an :class:`~postwire.outbox.Outbox` (``put``); a worker sends it.

    ``outbox`` is an :class:`~postwire.outbox.Outbox` (shared with the application, never
    closed here), an outbox URL, or True for the default outbox (``$POSTWIRE_OUTBOX``,
    else the user's data folder).  A URL is checked now, but the database is opened by
    the sending thread at the first message: a database that is down when logging is
    configured must not stop the application, and an outbox opened before ``fork`` is
    not used by the child (it opens its own).  ``route`` is the config-file account a
    worker sends through (None: the worker's default).
    """

    def __init__(self, outbox: Outbox | str | bool, *, route: str | None = None) -> None:
        from ..outbox import Outbox
        from ..outbox.storage import default_url, open_storage

        self._route = route
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._given: Outbox | None = None
        self._url: str | None = None
        self._opened: Outbox | None = None
        if isinstance(outbox, Outbox):
            self._given = outbox
            url = outbox.url
        elif outbox is True:
            url = self._url = default_url()
        elif isinstance(outbox, str) and outbox:
            url = self._url = outbox
        else:
            raise TypeError("outbox must be an Outbox, an outbox URL, or True (the default)")
        open_storage(url, create=False).close()  # the URL's form (ConfigError); no connection
        self._target = f"the outbox {_display(url)}"

    @property
    def target(self) -> str:
        return self._target

    def deliver(self, message: EmailMessage) -> None:
        """``put`` the message (durable when this returns); raises StorageError."""
        self._outbox().put(message, route=self._route)

    def close(self) -> None:
        """Close the outbox this delivery opened (not one it was given)."""
        with self._lock:
            opened, self._opened = self._opened, None
        if opened is not None and self._pid == os.getpid():
            opened.close()

    def _outbox(self) -> Outbox:
        if self._given is not None:
            return self._given
        from ..outbox import Outbox

        with self._lock:
            if self._pid != os.getpid():
                # A forked child: the parent's connection is the parent's (closing it here
                # would end the parent's session too); open another.
                self._pid, self._opened = os.getpid(), None
            if self._opened is None:
                self._opened = Outbox(self._url)
            return self._opened


def _display(url: str) -> str:
    """An outbox URL for reports, without a password."""
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest.split("/", 1)[0]:
        credentials, _, host = rest.partition("@")
        return f"{scheme}://{credentials.split(':', 1)[0]}@{host}"
    return url


def worth_retrying(error: BaseException) -> bool:
    """Whether the records of a message that failed with ``error`` may go again.

    Yes after a temporary failure: a server that is down, unreachable, slow, or answered
    4xx; an outbox whose database failed (a put is one transaction: in all likelihood
    nothing was stored).  No when the message may already be in the inbox (a resend
    would double it), nor after a refusal that will repeat (5xx, an untrusted
    certificate, no TLS, bad input).
    """
    if isinstance(error, PossiblyDelivered):
        return False
    if isinstance(error, StorageError):
        return True
    if isinstance(error, SMTPError):
        return error.is_transient or isinstance(error, ConnectError)
    return isinstance(error, OSError)
