"""One connection of a worker: claim entries, send them pipelined, write what happened.

A :class:`Delivery` thread holds one connection slot of its relay.  It claims a batch of
ready entries, connects if it has no connection, sends the batch with
``Client.send_many`` (pipelined, RFC 2920), and hands each outcome to the policy
(:func:`~.policy.decide`), whose decisions the committer writes, fenced by the leases.

Right before each final "." (``send_many``'s ``end_of_message`` hook, which runs exactly
there) it marks the entry "about to be sent" and waits for that mark to be committed: from
then on a crash leaves the entry *uncertain* rather than queued (design: the commit point).
When the mark cannot be written (the lease or the slot is gone, the database is down), the
hook raises :class:`~postwire.errors.CancelledSend`: the client closes the connection
without the ".", so the relay discards the transaction, and the entry is released.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .._core.errors import (
    CancelledSend,
    PossiblyDelivered,
    ServerDisconnected,
    SMTPError,
    StorageError,
)
from .._core.outcomes import never_started
from ..client import Client
from .committer import MarkRequest, Request
from .policy import OpenRecipient, choose_recipients, decide
from .routes import Relay
from .storage import Claimed, FinishItem, MarkItem, Storage
from .storage.leases import MarkResult

if TYPE_CHECKING:
    from .worker import Worker

__all__ = ["Delivery", "withdrawn"]

log = logging.getLogger("postwire.outbox")


class _Stop(Exception):
    """This connection is done (it failed, or its relay is dead): give the slot back."""


def withdrawn(outcome: object) -> bool:
    """Whether this message never reached the relay's verdict through no fault of its own.

    The worker stopped it before its "." (its lease, its slot or the database was
    gone), or the connection broke before its transaction began: either way nothing
    was delivered, and it goes back to work as it was, no attempt charged.
    """
    if isinstance(outcome, CancelledSend) or never_started(outcome):
        return True
    return (
        isinstance(outcome, ServerDisconnected)
        and not isinstance(outcome, PossiblyDelivered)
        and isinstance(outcome.__cause__, CancelledSend)
    )


class Delivery(threading.Thread):
    """A connection to ``relay``, working off entries of ``route`` (None: any route)."""

    def __init__(self, worker: Worker, relay: Relay, route: str | None, holder: str) -> None:
        super().__init__(name=f"outbox-{holder}", daemon=True)
        self.worker = worker
        self.relay = relay
        self.route = route
        self.holder = holder
        #: Set by the lease keeper when this connection's slot is gone.
        self.slot_lost = threading.Event()
        self._client: Client | None = None
        #: Claimed entries whose results are not yet handed to the committer.
        self._claimed: set[int] = set()

    # -- the thread --------------------------------------------------------------------------

    def run(self) -> None:
        try:
            self._work()
        except _Stop:
            pass
        except Exception:
            log.exception("outbox: connection to %s failed unexpectedly", self.relay.name)
        finally:
            self._close()
            if self._claimed:  # never finished (an unexpected error): left to the reaper
                self.worker.drop(list(self._claimed))
                self._claimed.clear()
            try:
                self.worker.committer.call(lambda s: s.release_slot(self.relay.name, self.holder))
            except StorageError:
                pass  # its lease runs out by itself
            self.worker.delivery_done(self)

    def _close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        if client.connected and not self.slot_lost.is_set():
            client.quit()
        else:
            client.close()

    def _claim(self, storage: Storage) -> list[Claimed]:
        """Lease the next batch (in the committer's thread: held from the moment it is)."""
        worker = self.worker
        claims = storage.claim(self.route, worker.owner, worker.lease, worker.batch)
        ids = [c.id for c in claims]
        self._claimed.update(ids)
        worker.hold(ids)
        return claims

    def _work(self) -> None:
        """Claim and send batch after batch; the next claim is asked for while one is sent.

        So a connection does not wait for its next batch's transaction.  Not for a
        rate-limited relay: its batches are slow, and their leases would run meanwhile.
        """
        worker = self.worker
        committer = worker.committer
        prefetch = worker.limits.rate is None
        ahead: Request[list[Claimed]] | None = None
        try:
            while not worker.stopping and not self.slot_lost.is_set():
                if not worker.keeper.lease_ok():
                    return
                request, ahead = ahead or committer.call_soon(self._claim), None
                try:
                    claims = committer.result(request)
                except StorageError as exc:
                    log.warning("outbox: claim failed: %s", exc)
                    return
                if not claims:
                    # Keep a live connection a little while: the next put is then fast.
                    connected = self._client is not None and self._client.connected
                    linger = 0.0 if worker.until_empty else worker.keepalive
                    if connected and linger and worker.wait_for_work(linger):
                        continue
                    return
                if prefetch:
                    ahead = committer.call_soon(self._claim)
                self._send(claims)
        finally:
            if ahead is not None:
                self._give_back(ahead)

    def _give_back(self, request: Request[list[Claimed]]) -> None:
        """Release a batch claimed ahead and never sent (no attempt charged)."""
        worker = self.worker
        try:
            claims = worker.committer.result(request)
        except StorageError:
            return  # the claim failed, or its leases run out by themselves
        now = worker.committer.now()
        worker.committer.finish(
            [FinishItem(c.id, c.token, None, worker.owner, self.relay.name, now, "claim",
                        "the connection ended before this batch") for c in claims]
        )  # fmt: skip
        self._claimed.difference_update(c.id for c in claims)

    # -- one batch ---------------------------------------------------------------------------

    def _connect(self, claims: Sequence[Claimed], started: float) -> Client:
        client = self._client
        if client is not None and client.connected:
            return client
        self._client = None
        worker = self.worker
        client = Client(**self.relay.options)
        try:
            client.connect()
        except (SMTPError, OSError) as exc:
            phase = exc.step if isinstance(exc, SMTPError) and exc.step else "connect"
            worker.hit("connect_failed")
            self._finish(claims, [exc] * len(claims), started, phase, [[] for _ in claims])
            worker.feedback(self.relay, ok=False)
            raise _Stop from exc
        self._client = client
        return client

    def _send(self, claims: Sequence[Claimed]) -> None:
        worker = self.worker
        started = worker.committer.now()
        worker.hit("claimed")
        client = self._connect(claims, started)
        cap = worker.recipient_cap(self.relay)
        plan = [(c, choose_recipients(c.open, started, cap)) for c in claims]
        idle = [c for c, chosen in plan if not chosen]
        if idle:  # nothing due in them after all: give them back untouched
            worker.committer.finish(
                [FinishItem(c.id, c.token, None, worker.owner, self.relay.name, started,
                            "claim", "no recipient due") for c in idle]
            )  # fmt: skip
            self._claimed.difference_update(c.id for c in idle)
            plan = [(c, chosen) for c, chosen in plan if chosen]
        items = [(c.content, c.sender, [r.address for r in chosen]) for c, chosen in plan]

        ahead = 1 if worker.limits.rate is not None else worker.mark_ahead
        marks = _Marks(self, plan, ahead)

        def end_of_message(index: int) -> None:
            self._mark(marks, index)

        outcomes = client.send_many(items, end_of_message=end_of_message)
        worker.hit("replied")
        sent_recipients = [list(chosen) for _, chosen in plan]
        self._finish([c for c, _ in plan], outcomes, started, "", sent_recipients)
        if not client.connected:
            self._client = None
            if not any(_cancelled_by_us(o) for o in outcomes):
                worker.feedback(self.relay, ok=False)  # the relay dropped us
            raise _Stop
        if any(not isinstance(o, BaseException) for o in outcomes):
            worker.feedback(self.relay, ok=True)

    def _item(self, claim: Claimed, chosen: Sequence[OpenRecipient]) -> MarkItem:
        positions = tuple(r.position for r in chosen)
        return MarkItem(claim.id, claim.token, positions, self.relay.name, self.holder)

    def _mark(self, marks: _Marks, index: int) -> None:
        """The commit point: record "about to send the final '.'" before it goes out.

        The marks of a pipelined run are asked for ahead of the messages, in chunks
        of ``mark_ahead``, while the messages before them are being sent: a message
        rarely waits for its mark, and one disk sync records several (the design's
        "batch these writes").  A crash then leaves the ones marked but not yet sent
        uncertain: they are sent again, counted, never lost.  A rate-limited relay's
        marks go one at a time, right before each ".", since each takes a stamp.
        """
        worker = self.worker
        worker.hit("before_mark")
        claim = marks.plan[index][0]
        while True:
            if self.slot_lost.is_set() or not worker.keeper.lease_ok():
                raise _withdraw(claim, "the worker's lease is not known to be live")
            try:
                result = marks.result(index)
            except StorageError as exc:
                raise _withdraw(claim, f"cannot record the commit point ({exc})") from exc
            if result.ok:
                late = 0.0 if result.stamp is None else worker.committer.now() - result.stamp
                if late > result.guard * 0.8:
                    # The commit took longer than the rate's guard allows: the "." would
                    # reach the relay too long after its stamp, where it may not fit.
                    raise _withdraw(claim, f"the commit point took {late:.3f} s, longer "
                                    "than the relay's rate guard allows")  # fmt: skip
                break
            if result.lost or worker.stopping:
                raise _withdraw(claim, "lease lost")
            marks.again(index)  # the relay's rate: wait for room, then mark again
            time.sleep(min(result.wait, 1.0))
        worker.hit("after_mark")

    def _finish(
        self,
        claims: Sequence[Claimed],
        outcomes: Sequence[object],
        started: float,
        phase: str,
        sent: Sequence[Sequence[OpenRecipient]],
    ) -> None:
        worker = self.worker
        now = worker.committer.now()
        items: list[FinishItem] = []
        for claim, outcome, recipients in zip(claims, outcomes, sent, strict=True):
            step = phase or _phase(outcome)
            if withdrawn(outcome):
                items.append(
                    FinishItem(claim.id, claim.token, None, worker.owner, self.relay.name,
                               started, step, str(outcome))
                )  # fmt: skip
                continue
            chosen = list(recipients) or choose_recipients(
                claim.open, now, worker.recipient_cap(self.relay)
            )
            decision = decide(
                worker.policy,
                open_recipients=claim.open,
                sent=chosen,
                closed=claim.closed,
                outcome=outcome,
                lifetime_from=claim.lifetime_from,
                now=now,
            )
            worker.observe(decision)
            if decision.learned_limit is not None:
                worker.learn_limit(self.relay, decision.learned_limit)
            items.append(
                FinishItem(claim.id, claim.token, decision, worker.owner, self.relay.name,
                           started, step)
            )  # fmt: skip
        worker.hit("before_finish")
        worker.committer.finish(items)
        self._claimed.difference_update(item.id for item in items)


class _Marks:
    """The commit points of one pipelined run, asked for ahead in chunks (see _mark)."""

    def __init__(
        self,
        delivery: Delivery,
        plan: Sequence[tuple[Claimed, Sequence[OpenRecipient]]],
        ahead: int,
    ) -> None:
        self.delivery = delivery
        self.plan = plan
        self.ahead = ahead
        #: Messages before this one have their marks asked for.
        self.asked = 0
        self.pending: list[tuple[range, MarkRequest]] = []
        self.results: dict[int, MarkResult] = {}

    def _ask(self, chunk: range) -> None:
        committer = self.delivery.worker.committer
        items = [self.delivery._item(*self.plan[j]) for j in chunk]
        self.pending.append((chunk, committer.mark_soon(items)))

    def result(self, index: int) -> MarkResult:
        # Keep at least half a chunk asked for beyond this message.
        while self.asked < len(self.plan) and self.asked <= index + self.ahead // 2:
            chunk = range(self.asked, min(self.asked + self.ahead, len(self.plan)))
            self._ask(chunk)
            self.asked = chunk.stop
        if index not in self.results:
            for chunk, request in list(self.pending):
                if index in chunk:
                    self.pending.remove((chunk, request))
                    results = self.delivery.worker.committer.marked(request)
                    self.results.update(zip(chunk, results, strict=True))
                    break
        return self.results[index]

    def again(self, index: int) -> None:
        """Mark this message again (its mark was refused for the rate)."""
        del self.results[index]
        self._ask(range(index, index + 1))


def _withdraw(claim: Claimed, why: str) -> CancelledSend:
    return CancelledSend(f"outbox entry {claim.id}: {why}; the final '.' was not sent", step="DATA")


def _cancelled_by_us(outcome: object) -> bool:
    return isinstance(outcome, CancelledSend) or (
        isinstance(outcome, BaseException) and isinstance(outcome.__cause__, CancelledSend)
    )


def _phase(outcome: object) -> str:
    if isinstance(outcome, PossiblyDelivered):
        return "end of data"
    if isinstance(outcome, SMTPError):
        return outcome.step or "send"
    if isinstance(outcome, BaseException):
        return "send"
    return "end of data"
