"""A worker's heartbeats and its share of the reaper, in a thread of their own.

Every ``lease / 3`` seconds the keeper extends the leases of the entries the worker holds and
of its connection slots, as far as the worker knows it still holds them
(:meth:`~.storage.leases.LeaseOps.heartbeat`), and every ``lease / 2`` seconds it reaps the
leases of workers that stopped beating (any worker may reap any lease: a crashed worker
needs nobody's help to give its entries back).

Heartbeats go through the worker's committer (:mod:`.committer`), in the same transactions
as its other writes: on PostgreSQL a heartbeat on a connection of its own would lock the
worker's rows in another order than its results do, and deadlock with them.  Reaping has
its own connection; it takes only expired leases, and skips rows someone holds.

The worker also keeps a local view of its own leases: they are known good until
``lease * 0.9`` seconds after the start of the last heartbeat that succeeded.  A worker whose
heartbeats fail (the database is down, or the process was stopped past its lease) takes no
new work and marks no final "." until a heartbeat succeeds again; its marks are fenced in
the database anyway, this only saves doomed attempts.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from .._core.errors import StorageError
from .committer import Committer
from .storage import Storage

__all__ = ["LeaseKeeper"]

log = logging.getLogger("postwire.outbox")

#: The part of a lease the worker counts on after a heartbeat.
SAFE_PART = 0.9


class LeaseKeeper:
    """Heartbeats and reaping for one worker (``owner``)."""

    def __init__(
        self,
        storage: Storage,
        committer: Committer,
        owner: str,
        lease: float,
        *,
        resend: bool,
        held: Callable[[], tuple[list[int], list[str]]],
        on_slots: Callable[[set[str]], None],
        on_reaped: Callable[[int], None] | None = None,
    ) -> None:
        self.storage = storage
        self.committer = committer
        self.owner = owner
        self.lease = lease
        self.resend = resend
        self._held = held
        self._on_slots = on_slots
        self._on_reaped = on_reaped
        self._valid_until = time.monotonic() + lease * SAFE_PART
        self._stop = threading.Event()
        self.reaped = 0
        self._thread = threading.Thread(target=self._run, name="outbox-leases", daemon=True)
        self._thread.start()

    def lease_ok(self) -> bool:
        """Whether this worker's leases are known to be live (see the module text)."""
        return time.monotonic() < self._valid_until

    def _beat(self) -> set[str]:
        entries, holders = self._held()
        owner, lease = self.owner, self.lease
        return self.committer.call(lambda s: s.heartbeat(owner, lease, entries, holders))

    def _run(self) -> None:
        beat = self.lease / 3
        reap_every = self.lease / 2
        next_reap = time.monotonic()
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                live = self._beat()
                self._valid_until = started + self.lease * SAFE_PART
                self._on_slots(live)
                if started >= next_reap:
                    next_reap = started + reap_every
                    reaped = self.storage.reap(resend=self.resend)
                    if reaped:
                        self.reaped += reaped
                        log.info("outbox: reaped %d expired leases", reaped)
                        if self._on_reaped is not None:
                            self._on_reaped(reaped)
            except StorageError as exc:
                log.warning("outbox: heartbeat failed: %s", exc)
                self._stop.wait(min(beat, 0.5))
                continue
            self._stop.wait(max(0.0, beat - (time.monotonic() - started)))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.storage.close()
