"""``postwire.django.OutboxBackend``: Django's backend contract, putting messages into the outbox.

``send_messages()`` stores each message in :class:`postwire.outbox.Outbox` (durable once
it returns) and returns at once; ``manage.py postwire_outbox_work`` (or ``postwire outbox
work``) delivers them, retrying what the relay defers.  A request that sends mail then
costs one database transaction, whatever the mail server is doing.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.mail.backends.base import BaseEmailBackend

from .._core.errors import ConfigError, OutboxError
from ..outbox import Entry, Outbox
from ..outbox.storage import open_storage
from .backend import EmailBackend, wire_bytes
from .settings import OutboxSettings, outbox_settings

__all__ = ["OutboxBackend"]

#: EmailBackend's connection arguments: Django passes some (``send_mail(auth_user=...)``
#: gives ``username``/``password``), always None unless the caller set them.
_CONNECTION_ARGUMENTS = frozenset(
    {
        "host",
        "port",
        "username",
        "password",
        "use_tls",
        "use_ssl",
        "timeout",
        "ssl_keyfile",
        "ssl_certfile",
    }
)

#: What one put_many call shares: route, priority, not_before.
_Group = tuple[str | None, int, "dt.datetime | float | None"]


class OutboxBackend(BaseEmailBackend):  # type: ignore[misc]  # Django ships no type hints
    """A Django e-mail backend that queues messages in postwire's durable outbox.

    ``EMAIL_BACKEND = "postwire.django.OutboxBackend"``; ``POSTWIRE_OUTBOX`` names the
    outbox: a URL (``"sqlite:////var/lib/site/outbox.sqlite3"``,
    ``"postgresql://..."``) or a dict with ``url``, ``route`` (the config-file account
    a worker sends through), ``priority`` and ``domain`` (for Message-IDs); without it,
    the outbox's default (``$POSTWIRE_OUTBOX``, else the user's data folder).  The
    constructor's ``url``, ``route``, ``priority`` and ``domain`` override the setting.

    Django's contract, as :class:`~postwire.django.EmailBackend` keeps it: ``open()``
    (True when it opened the outbox, False when it was open, None when
    ``fail_silently`` hid a failure), ``close()``, use as a context manager, one
    outbox connection from ``open()`` to ``close()``; ``send_messages()`` returns
    how many messages were queued, skips messages without recipients, takes the
    envelope from ``message.from_email`` and ``message.recipients()`` (Bcc included,
    never in the stored headers) and stores ``message.message()`` as Django's SMTP
    backend would send it.  The messages of one call go in one transaction
    (per route and priority).

    Each message gets ``message.postwire_entry``: the :class:`~postwire.outbox.Entry`
    (its ``id`` for ``postwire outbox show``), the error when ``fail_silently`` hid
    one, or None for a message without recipients.  A put is idempotent on the
    Message-ID: Django makes a new one for each ``message()`` call, so a message
    sent twice is queued twice, unless ``extra_headers`` names its ``Message-ID``
    (then the second put returns the first entry).

    Per message, these attributes override the settings (attributes, not headers:
    nothing of them is sent): ``postwire_route``, ``postwire_priority``,
    ``postwire_not_before`` (a datetime or epoch seconds).

    Errors: the outbox's :class:`~postwire.errors.StorageError` (the database
    failed), hidden by ``fail_silently`` as Django hides SMTP errors; an invalid
    address raises ``ValueError`` before anything is stored, and a bad
    ``POSTWIRE_OUTBOX`` ``ImproperlyConfigured`` when the backend is made, whatever
    ``fail_silently`` says.
    """

    outbox: Outbox | None

    def __init__(
        self,
        fail_silently: bool = False,
        *,
        url: str | None = None,
        route: str | None = None,
        priority: int | None = None,
        domain: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(fail_silently=fail_silently)
        for name, value in kwargs.items():
            if name not in _CONNECTION_ARGUMENTS:
                raise TypeError(f"OutboxBackend got an unexpected keyword argument {name!r}")
            if value is not None:
                # Where to connect is the worker's business (EMAIL_* settings there).
                raise TypeError(
                    f"OutboxBackend does not connect: {name!r} is for the worker's relay "
                    "(the EMAIL_* settings of manage.py postwire_outbox_work)"
                )
        self.settings: OutboxSettings = outbox_settings(
            url=url, route=route, priority=priority, domain=domain
        )
        if self.settings.url is not None:
            # The URL's form is checked now (no connection is made), as a bad setting.
            try:
                open_storage(self.settings.url, create=False).close()
            except ConfigError as exc:
                raise ImproperlyConfigured(f"POSTWIRE_OUTBOX: {exc}") from exc
        self.outbox = None
        self._lock = threading.RLock()

    # -- the connection ---------------------------------------------------------------------

    def open(self) -> bool | None:
        """Open the outbox (its tables are created when missing) unless it is open."""
        if self.outbox is not None:
            return False
        try:
            self.outbox = Outbox(self.settings.url, domain=self.settings.domain)
        except ConfigError as exc:
            raise ImproperlyConfigured(f"POSTWIRE_OUTBOX: {exc}") from exc
        except OutboxError:
            if self.fail_silently:
                return None
            raise
        return True

    def close(self) -> None:
        """Close the outbox's database connection, if open."""
        outbox, self.outbox = self.outbox, None
        if outbox is None:
            return
        try:
            outbox.close()
        except OutboxError:
            if not self.fail_silently:
                raise

    # -- sending ----------------------------------------------------------------------------

    def send_messages(self, email_messages: Iterable[Any]) -> int:
        """Queue Django ``EmailMessage`` objects; returns how many were queued."""
        messages = list(email_messages or ())
        if not messages:
            return 0
        with self._lock:
            # Every message is serialized and its addresses checked before anything is
            # stored: a bad address raises ValueError and queues none of the batch.
            groups: dict[_Group, list[tuple[Any, tuple[bytes, str, list[str]]]]] = {}
            for message in messages:
                item = self._item(message)
                if item is None:
                    message.postwire_entry = None
                    continue
                groups.setdefault(self._group(message), []).append((message, item))
            if not groups:
                return 0
            created = self.open()
            if self.outbox is None or created is None:
                return 0
            try:
                return self._put(self.outbox, groups)
            finally:
                if created:
                    self.close()

    def _put(
        self,
        outbox: Outbox,
        groups: dict[_Group, list[tuple[Any, tuple[bytes, str, list[str]]]]],
    ) -> int:
        queued = 0
        for (route, priority, not_before), batch in groups.items():
            try:
                entries: list[Entry] = outbox.put_many(
                    [item for _, item in batch],
                    route=route,
                    priority=priority,
                    not_before=not_before,
                )
            except OutboxError as exc:
                # Nothing of this group was stored (one transaction).
                for message, _ in batch:
                    message.postwire_entry = exc
                if not self.fail_silently:
                    raise
                continue
            for (message, _), entry in zip(batch, entries, strict=True):
                message.postwire_entry = entry
            queued += len(entries)
        return queued

    def _item(self, message: Any) -> tuple[bytes, str, list[str]] | None:
        """The wire bytes and envelope, as EmailBackend sends them (None: no recipient)."""
        recipients = message.recipients()
        if not recipients:
            return None
        encoding = message.encoding or settings.DEFAULT_CHARSET
        return (
            wire_bytes(message),
            self.prep_address(message.from_email, encoding),
            [self.prep_address(address, encoding) for address in recipients],
        )

    def prep_address(self, address: Any, encoding: str | None = None) -> str:
        """The envelope form of an address, by :meth:`EmailBackend.prep_address`'s rule."""
        # The rule uses nothing of the backend it is called on (Django's own neither).
        return EmailBackend.prep_address(self, address, encoding)

    def _group(self, message: Any) -> _Group:
        """The route, priority and start of a message: its attributes, else the settings."""
        route = getattr(message, "postwire_route", None) or self.settings.route
        priority = getattr(message, "postwire_priority", None)
        return (
            route,
            self.settings.priority if priority is None else priority,
            getattr(message, "postwire_not_before", None),
        )
