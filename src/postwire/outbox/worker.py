"""The worker: a process's scheduler, its connections, its writer and its lease keeper.

Any number of workers, in any number of processes on any number of machines (PostgreSQL),
work one outbox at once; they share nothing but the database.  In one worker:

- the **scheduler** (the thread that calls :meth:`Worker.run`) looks for ready entries,
  resolves each route to its relay, takes connection slots of that relay (the relay's
  limits are in the database) and starts a :class:`~.delivery.Delivery` thread per slot,
  up to ``concurrency``; it sleeps until a put wakes it (:mod:`.wakeup`), a connection
  ends, the next deferred entry is due, or ``poll_interval`` passes;
- the **committer** (:mod:`.committer`) runs every write in group commits;
- the **lease keeper** (:mod:`.leases`) beats and reaps;
- each **delivery** sends over one connection with the synchronous client: one thread per
  connection costs less CPU per message than the asyncio client here, and the database
  drivers are synchronous anyway.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import secrets
import socket
import threading
from collections.abc import Callable, Sequence
from typing import Any

from .._core.errors import ConfigError, StorageError
from .committer import Committer
from .delivery import Delivery
from .leases import LeaseKeeper
from .limits import RelayLimits
from .metrics import Metrics
from .policy import Decision, RetryPolicy
from .routes import Relay, Routes
from .storage import (
    CHANNEL,
    FinishItem,
    PostgreSQLStorage,
    SQLiteStorage,
    Storage,
    open_storage,
)
from .wakeup import NotifyListener, SocketWaker

__all__ = ["Worker"]

log = logging.getLogger("postwire.outbox")


def worker_id() -> str:
    """``host:pid:random``: unique among every worker of an outbox."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class Worker:
    """Delivers an outbox's entries until stopped (see :meth:`postwire.outbox.Outbox.work`)."""

    def __init__(
        self,
        url: str,
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
        keepalive: float = 2.0,
        mark_ahead: int = 32,
        metrics_port: int | None = None,
        stop: threading.Event | None = None,
        client_options: dict[str, Any] | None = None,
        default_relay: dict[str, Any] | None = None,
    ) -> None:
        if concurrency < 1 or batch < 1:
            raise ValueError("concurrency and batch must be at least 1")
        if lease <= 0 or poll_interval <= 0:
            raise ValueError("lease and poll_interval must be positive")
        self.url = url
        self.routes = Routes(
            url=relay, config=config, overrides=client_options, default=default_relay
        )
        self.concurrency = concurrency
        self.until_empty = until_empty
        self.policy = policy or RetryPolicy()
        self.limits = limits or RelayLimits()
        self.lease = lease
        self.poll_interval = poll_interval
        self.batch = batch
        self.keepalive = keepalive
        #: Commit points recorded per commit in a pipelined run (see Delivery._mark).
        self.mark_ahead = max(1, mark_ahead)
        self.metrics_port = metrics_port
        self.owner = worker_id()
        self._stop = stop or threading.Event()
        self._wake = threading.Event()
        self._work_ready = threading.Condition()
        self._work_generation = 0
        self._lock = threading.Lock()
        self._deliveries: dict[str, Delivery] = {}
        self._holders = itertools.count(1)
        self._limits_set: set[str] = set()
        self._recipient_caps: dict[str, int | None] = {}
        self._bad_routes: set[str] = set()
        #: Entries this worker holds (claimed, result not yet written): the heartbeat's list.
        self._held: set[int] = set()
        self.stats: dict[str, int] = {
            "delivered": 0,
            "deferred": 0,
            "bounced": 0,
            "uncertain": 0,
            "expired": 0,
            "lease_lost": 0,
        }
        self.metrics: Metrics | None = None
        self.metrics_address: int | None = None
        #: Test hook: called with a step's name (claimed, before_mark, after_mark, replied,
        #: before_finish, connect_failed) as each delivery passes it.
        self.on_step: Callable[[str], None] | None = None
        self.committer: Committer
        self.keeper: LeaseKeeper

    # -- what deliveries use ------------------------------------------------------------------

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def stop(self) -> None:
        """Stop after the batches being sent (from any thread)."""
        self._stop.set()
        self.poke()

    def poke(self) -> None:
        """Something may be ready: wake the scheduler and idle connections."""
        self._wake.set()
        self._nudge_deliveries()

    def _nudge_deliveries(self) -> None:
        with self._work_ready:
            self._work_generation += 1
            self._work_ready.notify_all()

    def wait_for_work(self, timeout: float) -> bool:
        """An idle connection waits for a put (or the end); True when poked in time."""
        with self._work_ready:
            start = self._work_generation
            self._work_ready.wait_for(
                lambda: self._work_generation != start or self._stop.is_set(), timeout
            )
            return self._work_generation != start and not self._stop.is_set()

    def hit(self, step: str) -> None:
        if self.on_step is not None:
            self.on_step(step)

    def feedback(self, relay: Relay, *, ok: bool) -> None:
        try:
            self.committer.call(lambda s: s.relay_feedback(relay.name, ok=ok))
        except StorageError as exc:
            log.warning("outbox: cannot record the relay's state: %s", exc)
        if ok:
            self._wake.set()  # the window may have grown: the scheduler may add a connection

    def recipient_cap(self, relay: Relay) -> int:
        learned = self._recipient_caps.get(relay.name)
        cap = self.policy.max_recipients
        return cap if learned is None else max(1, min(cap, learned))

    def learn_limit(self, relay: Relay, limit: int) -> None:
        with self._lock:
            known = self._recipient_caps.get(relay.name)
            self._recipient_caps[relay.name] = limit if known is None else min(known, limit)
        try:
            self.committer.call(
                lambda s: s.relay_feedback(relay.name, ok=True, learned_limit=limit)
            )
        except StorageError:
            pass

    def observe(self, decision: Decision) -> None:
        with self._lock:
            self.stats["delivered"] += decision.delivered
            self.stats["deferred"] += decision.deferred
            self.stats["bounced"] += decision.bounced
            self.stats["uncertain"] += decision.uncertain_recipients
            self.stats["expired"] += decision.expired
        if self.metrics is not None:
            self.metrics.observe(decision)

    def hold(self, ids: Sequence[int]) -> None:
        with self._lock:
            self._held.update(ids)

    def drop(self, ids: Sequence[int]) -> None:
        """No longer held: results written (or fenced out), or abandoned to the reaper."""
        with self._lock:
            self._held.difference_update(ids)

    def _holding(self) -> tuple[list[int], list[str]]:
        with self._lock:
            return list(self._held), list(self._deliveries)

    def _finished(self, items: Sequence[FinishItem], written: Sequence[bool]) -> None:
        self.drop([item.id for item in items])
        lost = sum(1 for ok in written if not ok)
        if lost:
            with self._lock:
                self.stats["lease_lost"] += lost
            if self.metrics is not None:
                self.metrics.lease_lost.inc(lost)

    def delivery_done(self, delivery: Delivery) -> None:
        with self._lock:
            self._deliveries.pop(delivery.holder, None)
        self._wake.set()

    def _slots_alive(self, holders: set[str]) -> None:
        with self._lock:
            deliveries = list(self._deliveries.values())
        for delivery in deliveries:
            if delivery.holder not in holders and delivery.is_alive():
                delivery.slot_lost.set()

    # -- running -----------------------------------------------------------------------------

    def run(self) -> dict[str, int]:
        """Work until stopped (or, with ``until_empty``, until there is nothing to do)."""
        scheduler = open_storage(self.url)
        resend = self.policy.uncertain == "resend"
        self.committer = Committer(
            open_storage(self.url, create=False), self.owner, on_finished=self._finished
        )
        self.keeper = LeaseKeeper(
            open_storage(self.url, create=False),
            self.committer,
            self.owner,
            self.lease,
            resend=resend,
            held=self._holding,
            on_slots=self._slots_alive,
        )
        waker = self._waker(scheduler)
        gauges: Storage | None = None
        if self.metrics_port is not None:

            def metrics_storage() -> Storage:
                nonlocal gauges
                if gauges is None:
                    gauges = open_storage(self.url, create=False)
                return gauges

            self.metrics = Metrics(metrics_storage)
            self.metrics_address = self.metrics.serve(self.metrics_port)
        try:
            self._schedule(scheduler)
        finally:
            self._stop.set()
            self.poke()
            with self._lock:
                deliveries = list(self._deliveries.values())
            for delivery in deliveries:
                delivery.join(60)
            if waker is not None:
                waker.close()
            self.keeper.close()
            self.committer.close()
            self.committer.storage.close()
            if self.metrics is not None:
                self.metrics.close()
            if gauges is not None:
                gauges.close()
            scheduler.close()
        return dict(self.stats)

    def _waker(self, storage: Storage) -> SocketWaker | NotifyListener | None:
        if isinstance(storage, SQLiteStorage):
            try:
                return SocketWaker(storage.wake_dir, self.poke)
            except OSError as exc:  # polling still works
                log.warning("outbox: no wake-up socket (%s); polling only", exc)
                return None
        if isinstance(storage, PostgreSQLStorage):
            psycopg = storage._psycopg
            return NotifyListener(
                lambda: psycopg.connect(storage.conninfo, autocommit=True, connect_timeout=5),
                CHANNEL,
                self.poke,
            )
        return None  # pragma: no cover

    def _schedule(self, storage: Storage) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                ready = storage.ready_routes(limit=self.concurrency * self.batch)
                if ready:
                    self._nudge_deliveries()  # idle connections take it first
                self._start(ready)
                with self._lock:
                    active = len(self._deliveries)
                if self.until_empty and not ready and not active and storage.busy() == 0:
                    return
                timeout = self.poll_interval
                if self.until_empty and not ready:
                    timeout = min(timeout, 0.1)  # the others may be finishing: look again soon
                upcoming = storage.next_ready_at() if not ready else None
                now = storage.now()
                if upcoming is not None and upcoming > now:
                    # Wake when the next deferred entry is due.  What is ready now is taken by
                    # the running connections, or by new ones when a slot frees (a wake-up).
                    timeout = min(timeout, upcoming - now + 0.001)
            except StorageError as exc:
                log.warning("outbox: cannot read the outbox: %s", exc)
                timeout = self.poll_interval
            self._wake.wait(timeout)

    def _register(self, relay: str) -> int | None:
        """Store this worker's limits for ``relay``; returns its learned recipient limit."""
        limits = self.limits
        self.committer.call(lambda s: s.set_limits(relay, limits))
        return self.committer.call(lambda s: s.recipient_limit(relay))

    def _acquire(self, relay: str, holder: str) -> bool:
        owner, lease = self.owner, self.lease
        return self.committer.call(lambda s: s.acquire_slot(relay, holder, owner, lease))

    def _start(self, ready: dict[str, int]) -> None:
        """Start connections for the ready entries, as slots and ``concurrency`` allow."""
        groups: dict[str | None, int] = {}
        if self.routes.single:
            if ready:
                groups[None] = sum(ready.values())
        else:
            groups.update(ready)
        for route, count in groups.items():
            try:
                relay = self.routes.relay_for(route or "")
            except ConfigError as exc:
                if route not in self._bad_routes:
                    self._bad_routes.add(route or "")
                    log.error("outbox: route %r: %s (its entries wait)", route or "", exc)
                continue
            name = relay.name
            if name not in self._limits_set:
                self._recipient_caps[name] = self._register(name)
                self._limits_set.add(name)
            with self._lock:
                mine = sum(1 for d in self._deliveries.values() if d.route == route)
                free = self.concurrency - len(self._deliveries)
            wanted = min(math.ceil(count / self.batch), free + mine) - mine
            for _ in range(max(0, wanted)):
                holder = f"{self.owner}/{next(self._holders)}"
                if not self._acquire(name, holder):
                    break
                delivery = Delivery(self, relay, route, holder)
                with self._lock:
                    self._deliveries[holder] = delivery
                delivery.start()
