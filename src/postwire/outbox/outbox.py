"""The public face of the outbox: put messages in, look at them, work them off.

::

    from postwire.outbox import Outbox

    with Outbox("sqlite:////var/lib/myapp/outbox.sqlite3") as outbox:
        entry = outbox.put(msg)                 # durable once this returns
        print(outbox.get(entry.id).state)        # queued, sending, sent, deferred...
        outbox.work(until_empty=True)            # deliver through the default account

An :class:`Outbox` is one database connection behind a lock: any thread may use it.
Asyncio code uses :class:`~postwire.outbox.aio.AsyncOutbox`, which runs the same calls in
a thread of its own.
"""

from __future__ import annotations

import builtins
import datetime as dt
import socket
import threading
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import TypeVar

from .limits import RelayLimits
from .messages import new_entry, unpack
from .policy import RetryPolicy
from .records import Entry, Recipient, from_epoch
from .states import RecipientState, State
from .storage import NewEntry, RelayStatus, Storage, default_url, open_storage

__all__ = ["Outbox"]

T = TypeVar("T")


def _seconds(value: float | dt.timedelta) -> float:
    return value.total_seconds() if isinstance(value, dt.timedelta) else float(value)


class Outbox:
    """A durable queue of outgoing mail in SQLite (default) or PostgreSQL.

    ``url`` is ``sqlite:///relative/path``, ``sqlite:////absolute/path``, a plain
    file path, or ``postgresql://...``; without one, ``$POSTWIRE_OUTBOX``, else
    ``~/.local/share/postwire/outbox.sqlite3``.  The tables are created when
    missing.  ``domain`` is the right-hand side of the Message-IDs made for
    messages whose sender has no domain (default: this host's name).
    """

    def __init__(self, url: str | None = None, *, domain: str | None = None) -> None:
        self.url = url or default_url()
        self._domain = domain or socket.gethostname()
        self._lock = threading.Lock()
        self._storage: Storage = open_storage(self.url)

    def __repr__(self) -> str:
        return f"<Outbox {self._storage!r}>"

    def _call(self, fn: Callable[[Storage], T]) -> T:
        with self._lock:
            return fn(self._storage)

    # -- putting -----------------------------------------------------------------------------

    def put(
        self,
        message: object,
        *,
        sender: str | None = None,
        recipients: Sequence[str] | None = None,
        key: str | None = None,
        priority: int = 0,
        not_before: dt.datetime | float | None = None,
        route: str | None = None,
    ) -> Entry:
        """Queue one message; returns its entry once it is stored durably.

        ``message`` is an ``EmailMessage`` (envelope from its headers, Bcc not
        stored), or bytes / a binary file / an iterable of bytes with ``sender``
        and ``recipients``.  A Date and a Message-ID are added when missing.
        ``key`` (default: the Message-ID) makes the put idempotent: putting the
        same key again returns the existing entry, for as long as it exists.
        Higher ``priority`` goes first; ``not_before`` (a datetime or epoch
        seconds) delays the first attempt; ``route`` names the config-file
        account to send through (default: the default account).  Raises
        ``ValueError``/``TypeError`` for a bad message and
        `postwire.errors.StorageError` when the database fails (then put
        again: the key makes that safe).
        """
        now = self._storage.now()
        item = new_entry(
            message,
            sender=sender,
            recipients=recipients,
            key=key,
            priority=priority,
            not_before=not_before,
            route=route,
            domain=self._domain,
            now=now,
        )
        return self._store([item], now)[0]

    def put_many(
        self,
        items: Iterable[object],
        *,
        priority: int = 0,
        not_before: dt.datetime | float | None = None,
        route: str | None = None,
    ) -> list[Entry]:
        """Queue many messages in one transaction; one entry per item, in order.

        Items are what ``send_many`` takes: messages, or ``(message, sender,
        recipients)`` tuples; each is keyed by its Message-ID.  Every item is
        checked before anything is stored: one bad item raises and stores none.
        """
        now = self._storage.now()
        rows = []
        for item in items:
            message, sender, recipients = unpack(item)
            rows.append(
                new_entry(
                    message,
                    sender=sender,
                    recipients=recipients,
                    key=None,
                    priority=priority,
                    not_before=not_before,
                    route=route,
                    domain=self._domain,
                    now=now,
                )
            )
        return self._store(rows, now)

    def _store(self, rows: Sequence[NewEntry], now: float) -> list[Entry]:
        results = self._call(lambda s: s.put(rows))
        entries: list[Entry] = []
        stamp = from_epoch(now)
        assert stamp is not None
        for row, (entry_id, created) in zip(rows, results, strict=True):
            entries.append(_fresh(entry_id, row, now, stamp) if created else self.get(entry_id))
        return entries

    # -- looking -----------------------------------------------------------------------------

    def get(self, entry_id: int) -> Entry:
        """An entry with its state, recipients (each with its own state and reply) and
        attempts; raises `postwire.errors.EntryNotFound`."""
        return self._call(lambda s: s.get(entry_id))

    def message(self, entry_id: int) -> bytes:
        """The message an entry sends, as stored (Date and Message-ID included)."""
        return self._call(lambda s: s.content(entry_id))

    def counts(self) -> dict[State, int]:
        """How many entries are in each state (every state listed)."""
        return self._call(lambda s: s.counts())

    def list(
        self, state: State | str | None = None, *, limit: int = 100, offset: int = 0
    ) -> list[Entry]:
        """Entries, newest first (with recipients, without attempts)."""
        wanted = None if state is None else State(state)
        return self._call(lambda s: s.entries(wanted, limit=limit, offset=offset))

    def oldest_age(self) -> float | None:
        """Seconds since the oldest entry not yet delivered was put, or None.

        Counts queued, deferred, uncertain and sending entries, including those
        put with a `not_before` still to come; not held ones.
        """

        def age(storage: Storage) -> float | None:
            oldest = storage.oldest_waiting()
            return None if oldest is None else max(0.0, storage.now() - oldest)

        return self._call(age)

    def relays(self) -> builtins.list[RelayStatus]:
        """The relays workers have used, with their limits and open connections."""
        return self._call(lambda s: s.relays())

    # -- operator actions --------------------------------------------------------------------

    def retry(self, entry_id: int) -> Entry:
        """Try again now: an entry that waits, is held, bounced or expired.

        Every recipient not delivered (bounced and expired ones too) is due at
        once, and the lifetime starts again.  A sent entry cannot be retried;
        one being sent raises `StateConflict`.
        """
        return self._call(lambda s: s.operate(entry_id, "retry"))

    def hold(self, entry_id: int) -> Entry:
        """Set a waiting entry (queued, deferred, uncertain) aside until `release`."""
        return self._call(lambda s: s.operate(entry_id, "hold"))

    def release(self, entry_id: int) -> Entry:
        """Put a held entry back to work, as it was; or an uncertain one left for an
        operator (the `hold` policy), which is then sent again."""
        return self._call(lambda s: s.operate(entry_id, "release"))

    def cancel(self, entry_id: int) -> Entry:
        """Withdraw an entry that is not final and not being sent (raises
        `StateConflict` if it is)."""
        return self._call(lambda s: s.operate(entry_id, "cancel"))

    def purge(
        self, older_than: float | dt.timedelta, *, states: Iterable[State | str] | None = None
    ) -> int:
        """Delete final entries (sent, bounced, expired, cancelled) unchanged for
        ``older_than`` (seconds or a timedelta); returns how many.  Their keys can
        then be put again."""
        chosen = tuple(State(s) for s in states) if states is not None else None

        def purge(storage: Storage) -> int:
            before = storage.now() - _seconds(older_than)
            return storage.purge(before) if chosen is None else storage.purge(before, chosen)

        return self._call(purge)

    # -- working -----------------------------------------------------------------------------

    def work(
        self,
        *,
        relay: str | None = None,
        config: str | None = None,
        concurrency: int = 4,
        until_empty: bool = False,
        policy: RetryPolicy | None = None,
        limits: RelayLimits | None = None,
        lease: float = 30.0,
        poll_interval: float = 1.0,
        batch: int = 64,
        mark_ahead: int = 32,
        metrics_port: int | None = None,
        stop: threading.Event | None = None,
        client_options: dict[str, object] | None = None,
        default_relay: dict[str, object] | None = None,
    ) -> dict[str, int]:
        """Run a worker in this thread until ``stop`` is set (or the queue is empty).

        The worker opens connections of its own to the database; this outbox's
        connection stays free for other calls.

        Args:
            relay: an SMTP URL every entry goes through, whatever its route.
                Without it, an entry's route names an account of the config
                file, and no route means the default account.
            config: the config file (default: the usual search, as the CLI).
            default_relay: `Client` options for entries without a route, in place
                of the config file's default account (the Django command passes
                the project's `EMAIL_*` settings here).
            concurrency: this worker's number of connections, over all relays.
            until_empty: return when nothing is ready and nothing is being sent
                (deferred entries are left to wait).
            policy: when to retry and give up, and the uncertain policy.
            limits: the relays' limits, shared by every worker through the
                database.
            lease: seconds a claimed entry stays this worker's without a
                heartbeat (heartbeats come every third of it); a worker that
                vanished gives its entries back after this long.
            poll_interval: seconds between looks for work when no wake-up came.
            batch: entries claimed at once per connection.
            mark_ahead: commit points recorded per commit in a pipelined run (a
                crash then leaves up to that many entries per connection
                uncertain: resent, counted, never lost).
            metrics_port: serve Prometheus metrics on 127.0.0.1 at this port
                (needs `prometheus_client`).
            stop: set it (from any thread) to stop; the batches being sent
                finish first.
            client_options: `Client` options applied on top of every relay's
                (a `cafile`, a `timeout`, a `dkim` signer...).

        Returns:
            Recipients by outcome: `delivered`, `deferred`, `bounced`,
            `uncertain`, `expired`, and `lease_lost` (results not written).
        """
        from .worker import Worker

        worker = Worker(
            self.url,
            relay=relay,
            config=config,
            concurrency=concurrency,
            until_empty=until_empty,
            policy=policy,
            limits=limits,
            lease=lease,
            poll_interval=poll_interval,
            batch=batch,
            mark_ahead=mark_ahead,
            metrics_port=metrics_port,
            stop=stop,
            client_options=client_options,
            default_relay=default_relay,
        )
        return worker.run()

    # -- life cycle --------------------------------------------------------------------------

    def close(self) -> None:
        """Close the database connection."""
        self._call(lambda s: s.close())

    def __enter__(self) -> Outbox:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _fresh(entry_id: int, row: NewEntry, now: float, stamp: dt.datetime) -> Entry:
    """The entry just stored, without reading it back (``stamp`` is ``now`` as a datetime)."""
    ready = stamp if row.ready_at == now else from_epoch(row.ready_at)
    return Entry(
        id=entry_id,
        key=row.key,
        message_id=row.message_id,
        state=State.QUEUED,
        sender=row.sender,
        route=row.route or None,
        priority=row.priority,
        size=len(row.content),
        created_at=stamp,
        updated_at=stamp,
        next_attempt_at=ready,
        attempts=0,
        uncertain=0,
        recipients=tuple(
            Recipient(a, RecipientState.PENDING, next_attempt_at=ready) for a in row.recipients
        ),
    )
