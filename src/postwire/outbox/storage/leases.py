"""Leases on the row: claim, the commit-point mark, fenced results, heartbeats, the reaper.

Every transaction here is short and none is held open during SMTP I/O (design: claim in one
short transaction).  A worker *claims* ready entries (their ``attempts`` counter goes up by
one and becomes the fencing token, ``lease_owner``/``lease_until`` the lease), *marks* each
one right before its final "." (the token must still match, the lease be live, the
connection's slot too, and the relay's rate allow it), and *finishes* it with the decision
of :func:`~postwire.outbox.policy.decide`, again only if the token matches: a worker that
lost its lease cannot overwrite the result of the one that took the entry over.  One late
write is accepted: the result of the attempt whose mark made the reaper call it uncertain,
while nobody has claimed it since (its reply did come, after all).

The *reaper* returns the entries whose lease ran out to work: queued again (or deferred,
as their recipients say) when their final "." was never marked, *uncertain* when it was
(the relay may have the message: RFC 1047).  Each reaped attempt is recorded.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..limits import rate_capacity
from ..policy import Decision, OpenRecipient, resume_state
from ..states import RecipientState, State
from .base import Claimed, FinishItem, MarkItem, Row, SQLStorage
from .entries import CHUNK

__all__ = ["LeaseOps", "MarkResult"]


@dataclass(frozen=True, slots=True)
class MarkResult:
    """Whether a mark was recorded; if not, whether the lease is lost or the rate says wait."""

    ok: bool
    #: Seconds until the relay's rate allows one more message (0 when not rate-limited).
    wait: float = 0.0
    #: When the rate stamp of this mark was taken (database clock), and the relay's guard:
    #: the "." must leave within ``guard`` of it.  None when the relay has no rate.
    stamp: float | None = None
    guard: float = 0.0

    @property
    def lost(self) -> bool:
        return not self.ok and self.wait == 0.0


class _Room:
    """A relay's rate window during one mark transaction: the stamps in it, oldest first."""

    def __init__(
        self,
        capacity: int | None,
        window: float,
        times: list[float],
        now: float,
        guard: float = 0.0,
    ) -> None:
        self.capacity = capacity
        self.window = window
        self.times = times
        self.now = now
        self.guard = guard

    @property
    def limited(self) -> bool:
        return self.capacity is not None

    def take(self) -> float:
        """Take room for one message now: 0.0 if taken, else the seconds until there is."""
        if self.capacity is None:
            return 0.0
        excess = len(self.times) - self.capacity
        if excess < 0:
            self.times.append(self.now)
            return 0.0
        # Room comes back when the oldest (excess + 1) stamps have left the window.
        return max(self.times[excess] + self.window - self.now, 0.001)


MARKED = MarkResult(True)
LOST = MarkResult(False)


def _chunks(values: Sequence[int]) -> Iterable[list[int]]:
    for start in range(0, len(values), CHUNK):
        yield list(values[start : start + CHUNK])


class LeaseOps(SQLStorage):
    """The operations a worker uses on entries."""

    def _recipients_of(self, ids: Sequence[int]) -> dict[int, list[Row]]:
        found: dict[int, list[Row]] = {i: [] for i in ids}
        for chunk in _chunks(ids):
            clause, params = self.in_list("entry_id", chunk)
            for row in self.fetchall(
                "SELECT entry_id, position, address, state, ready_at FROM outbox_recipients "
                f"WHERE {clause} ORDER BY entry_id, position",
                params,
            ):
                found[int(row[0])].append(row)
        return found

    @staticmethod
    def _open(rows: Sequence[Row]) -> list[OpenRecipient]:
        return [
            OpenRecipient(int(p), a, RecipientState(s), r)
            for _, p, a, s, r in rows
            if s in ("pending", "deferred", "uncertain")
        ]

    # -- claim -------------------------------------------------------------------------------

    def claim(self, route: str | None, owner: str, lease: float, limit: int) -> list[Claimed]:
        """Lease up to ``limit`` ready entries (of ``route``, or of any route if None)."""
        now = self.now()
        where = "ready_at <= ?"
        params: list[object] = [now]
        if route is not None:
            where += " AND route = ?"
            params.append(route)
        with self.write():
            rows = self.fetchall(
                "UPDATE outbox_entries SET state = 'sending', ready_at = NULL, lease_owner = ?, "
                "lease_until = ?, attempts = attempts + 1, dot_token = NULL, inflight = NULL, "
                "updated_at = ? WHERE id IN (SELECT id FROM outbox_entries WHERE "
                f"{where} ORDER BY priority DESC, ready_at, id LIMIT ?{self.claim_lock}) "
                "RETURNING id, attempts, key, message_id, sender, route, lifetime_from",
                [owner, now + lease, now, *params, limit],
            )
            ids = [int(r[0]) for r in rows]
            recipients = self._recipients_of(ids)
            contents: dict[int, bytes] = {}
            for chunk in _chunks(ids):
                clause, values = self.in_list("entry_id", chunk)
                contents.update(
                    (int(i), bytes(c))
                    for i, c in self.fetchall(
                        f"SELECT entry_id, content FROM outbox_contents WHERE {clause}", values
                    )
                )
        claimed = []
        for id_, token, key, message_id, sender, route_, since in rows:
            mine = recipients[int(id_)]
            claimed.append(
                Claimed(
                    id=int(id_),
                    token=int(token),
                    key=key,
                    message_id=message_id,
                    sender=sender,
                    content=contents[int(id_)],
                    route=route_,
                    lifetime_from=float(since),
                    open=tuple(self._open(mine)),
                    closed=tuple(
                        RecipientState(r[3])
                        for r in mine
                        if r[3] not in ("pending", "deferred", "uncertain")
                    ),
                )
            )
        claimed.sort(key=lambda c: c.id)
        return claimed

    # -- the commit point --------------------------------------------------------------------

    def mark(self, items: Sequence[MarkItem], owner: str) -> list[MarkResult]:
        """Record for each item that its final "." is about to be sent.

        Recorded only while the lease is live (token, owner, time), the slot is
        live, and the relay's rate has room; the rate's stamp is written in the
        same transaction, so a refused mark takes no room.
        """
        if not items:
            return []
        now = self.now()
        with self.write():
            clause, params = self.in_list("id", [i.id for i in items])
            leases = {
                int(r[0]): r[1:]
                for r in self.fetchall(
                    "SELECT id, attempts, state, lease_owner, lease_until FROM outbox_entries "
                    f"WHERE {clause}{self.lock_rows}",
                    params,
                )
            }
            slots = self._live_slots({(i.relay, i.holder) for i in items}, now)
            room: dict[str, _Room] = {}
            results: list[MarkResult] = []
            marks: list[tuple[object, ...]] = []
            stamps: list[tuple[object, ...]] = []
            for item in items:
                lease = leases.get(item.id)
                if (
                    lease is None
                    or int(lease[0]) != item.token
                    or lease[1] != "sending"
                    or lease[2] != owner
                    or float(lease[3]) <= now
                    or (item.relay, item.holder) not in slots
                ):
                    results.append(LOST)
                    continue
                if item.relay not in room:
                    room[item.relay] = self._rate_room(item.relay)
                relay_room = room[item.relay]
                wait = relay_room.take()
                if wait > 0:
                    results.append(MarkResult(False, wait))
                    continue
                if relay_room.limited:
                    stamps.append((item.relay, relay_room.now, 1))
                    results.append(MarkResult(True, 0.0, relay_room.now, relay_room.guard))
                else:
                    results.append(MARKED)
                marks.append((item.token, ",".join(map(str, item.positions)), item.id))
            self.executemany(
                "UPDATE outbox_entries SET dot_token = ?, inflight = ? WHERE id = ?",
                marks,
                ("int4", "text", "int8"),
            )
            self.executemany("INSERT INTO outbox_rate (relay, at, n) VALUES (?, ?, ?)", stamps)
        return results

    def _live_slots(self, wanted: set[tuple[str, str]], now: float) -> set[tuple[str, str]]:
        holders = sorted({holder for _, holder in wanted})
        clause, params = self.in_list("holder", holders)
        rows = self.fetchall(
            f"SELECT relay, holder FROM outbox_slots WHERE {clause} AND until > ?",
            [*params, now],
        )
        return {(r[0], r[1]) for r in rows}

    def _rate_room(self, relay: str) -> _Room:
        """The relay's rate window as it stands (its stamps), locked for this transaction."""
        row = self.fetchone(
            f"SELECT rate, guard FROM outbox_relays WHERE relay = ?{self.lock_rows}", (relay,)
        )
        # The clock is read once the relay's row is ours: a stamp is never older than the
        # moment it was allowed (the lock may have been waited for).
        now = self.now()
        if row is None or row[0] is None:
            return _Room(None, 0.0, [], now)
        capacity, window = rate_capacity(float(row[0]), float(row[1]))
        guard = float(row[1])
        self.execute("DELETE FROM outbox_rate WHERE relay = ? AND at <= ?", (relay, now - window))
        stamps = self.fetchall(
            "SELECT at, n FROM outbox_rate WHERE relay = ? ORDER BY at", (relay,)
        )
        times = [float(at) for at, n in stamps for _ in range(int(n))]
        return _Room(capacity, window, times, now, guard)

    # -- results -----------------------------------------------------------------------------

    def finish(self, items: Sequence[FinishItem], owner: str) -> list[bool]:
        """Write each attempt's result if its lease still holds; returns which were written."""
        if not items:
            return []
        now = self.now()
        written: list[bool] = []
        with self.write():
            clause, params = self.in_list("id", [i.id for i in items])
            current = {
                int(r[0]): r[1:]
                for r in self.fetchall(
                    "SELECT id, attempts, state, lease_owner, dot_token FROM outbox_entries "
                    f"WHERE {clause}{self.lock_rows}",
                    params,
                )
            }
            fenced: list[FinishItem] = []
            for item in items:
                row = current.get(item.id)
                ok = (
                    row is not None
                    and int(row[0]) == item.token
                    and (
                        (row[1] == "sending" and row[2] == owner)
                        # The late result of the attempt the reaper left uncertain.
                        or (
                            row[1] == "uncertain"
                            and row[3] is not None
                            and int(row[3]) == item.token
                        )
                    )
                )
                written.append(ok)
                if ok:
                    fenced.append(item)
            released = [i.id for i in fenced if i.decision is None]
            recipients = self._recipients_of(released) if released else {}
            entry_rows: list[tuple[object, ...]] = []
            recipient_rows: list[tuple[object, ...]] = []
            attempt_rows: list[tuple[object, ...]] = []
            for item in fenced:
                decision = item.decision
                if decision is None:
                    state, ready = resume_state(self._open(recipients[item.id]), now)
                    entry_rows.append(
                        (state.value, ready, 0, None, None, item.detail, now, item.id)
                    )
                    outcome, code, text = "released", None, None
                else:
                    assert isinstance(decision, Decision)
                    entry_rows.append(
                        (decision.state.value, decision.ready_at, decision.uncertain,
                         decision.code, decision.text, decision.error, now, item.id)
                    )  # fmt: skip
                    recipient_rows.extend(
                        (u.state.value, u.ready_at, u.code, u.text, u.error, u.uncertain, now,
                         item.id, u.position)
                        for u in decision.updates
                    )  # fmt: skip
                    outcome, code, text = decision.outcome, decision.code, decision.text
                attempt_rows.append(
                    (item.id, item.token, item.worker, item.relay, item.started_at, now,
                     item.phase, outcome, code, text, item.detail or (
                         decision.error if isinstance(decision, Decision) else ""))
                )  # fmt: skip
            self.executemany(
                "UPDATE outbox_recipients SET state = ?, ready_at = ?, code = ?, text = ?, "
                "error = ?, uncertain = uncertain + ?, updated_at = ? "
                "WHERE entry_id = ? AND position = ?",
                recipient_rows,
                ("text", "float8", "int4", "text", "text", "int4", "float8", "int8", "int4"),
            )
            self.executemany(
                "UPDATE outbox_entries SET state = ?, ready_at = ?, uncertain = uncertain + ?, "
                "last_code = ?, last_text = ?, last_error = ?, updated_at = ?, "
                "lease_owner = NULL, lease_until = NULL WHERE id = ?",
                entry_rows,
                ("text", "float8", "int4", "int4", "text", "text", "float8", "int8"),
            )
            self._record_attempts(attempt_rows)
        return written

    def _record_attempts(self, rows: Sequence[tuple[object, ...]]) -> None:
        # A late result replaces the reaper's record of the same attempt.
        self.executemany(
            "INSERT INTO outbox_attempts (entry_id, number, worker, relay, started_at, "
            "finished_at, phase, outcome, code, text, detail) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (entry_id, number) DO UPDATE "
            "SET worker = excluded.worker, relay = excluded.relay, "
            "started_at = excluded.started_at, finished_at = excluded.finished_at, "
            "phase = excluded.phase, outcome = excluded.outcome, code = excluded.code, "
            "text = excluded.text, detail = excluded.detail",
            rows,
            ("int8", "int4", "text", "text", "float8", "float8", "text", "text", "int4", "text",
             "text"),
        )  # fmt: skip

    # -- heartbeats and the reaper ----------------------------------------------------------

    def heartbeat(
        self, owner: str, lease: float, entries: Sequence[int], holders: Sequence[str]
    ) -> set[str]:
        """Extend the leases ``owner`` holds on ``entries`` and ``holders`` (its slots).

        Only what the worker says it still holds: a lease or slot it lost track
        of (a connection thread that died, a claim whose answer never came back
        because the database went down) runs out and is reaped.  What has run
        out already is not brought back: the reaper, or another worker, may
        have acted on it.  Returns the holders whose slots are still live.
        """
        now = self.now()
        until = now + lease
        with self.write():
            for chunk in _chunks(list(entries)):
                clause, params = self.in_list("id", chunk)
                self.execute(
                    f"UPDATE outbox_entries SET lease_until = ? WHERE {clause} "
                    "AND lease_owner = ? AND state = 'sending' AND lease_until > ?",
                    [until, *params, owner, now],
                )
            live: set[str] = set()
            if holders:
                clause, params = self.in_list("holder", list(holders))
                self.execute(
                    f"UPDATE outbox_slots SET until = ? WHERE {clause} AND owner = ? AND until > ?",
                    [until, *params, owner, now],
                )
                rows = self.fetchall(
                    f"SELECT holder FROM outbox_slots WHERE {clause} AND until > ?",
                    [*params, now],
                )
                live = {r[0] for r in rows}
        return live

    def reap(self, *, resend: bool, limit: int = 500) -> int:
        """Return expired leases to work (or to uncertain); returns how many were reaped."""
        now = self.now()
        with self.write():
            self.execute("DELETE FROM outbox_slots WHERE until < ?", (now,))
            rows = self.fetchall(
                "SELECT id, attempts, dot_token, inflight, lease_owner FROM outbox_entries "
                "WHERE lease_owner IS NOT NULL AND lease_until < ? AND state = 'sending' "
                f"LIMIT ?{self.claim_lock}",
                (now, limit),
            )
            if not rows:
                return 0
            recipients = self._recipients_of([int(r[0]) for r in rows])
            entry_rows: list[tuple[object, ...]] = []
            recipient_rows: list[tuple[object, ...]] = []
            attempt_rows: list[tuple[object, ...]] = []
            for id_, token, dot, inflight, owner in rows:
                open_recipients = self._open(recipients[int(id_)])
                marked = dot is not None and int(dot) == int(token)
                if marked:
                    positions = {int(p) for p in (inflight or "").split(",") if p}
                    ready = now if resend else None
                    open_recipients = [
                        OpenRecipient(r.position, r.address, RecipientState.UNCERTAIN, ready)
                        if r.position in positions
                        else r
                        for r in open_recipients
                    ]
                    recipient_rows.extend(
                        ("uncertain", ready, "the worker's lease ran out after the final '.'",
                         now, int(id_), p)
                        for p in sorted(positions)
                    )  # fmt: skip
                    detail = (
                        f"lease of {owner} ran out after the final '.' was sent: possibly delivered"
                    )
                else:
                    detail = f"lease of {owner} ran out before the final '.': not delivered"
                if open_recipients:
                    state, ready_at = resume_state(open_recipients, now)
                else:  # pragma: no cover - a claimed entry always has open recipients
                    state, ready_at = State.QUEUED, now
                entry_rows.append(
                    (state.value, ready_at, 1 if marked else 0, detail, now, int(id_), int(token))
                )
                attempt_rows.append(
                    (int(id_), int(token), owner or "", "", None, now, "lease",
                     "uncertain" if marked else "released", None, None, detail)
                )  # fmt: skip
            self.executemany(
                "UPDATE outbox_recipients SET state = ?, ready_at = ?, error = ?, "
                "uncertain = uncertain + 1, updated_at = ? WHERE entry_id = ? AND position = ?",
                recipient_rows,
            )
            self.executemany(
                "UPDATE outbox_entries SET state = ?, ready_at = ?, uncertain = uncertain + ?, "
                "last_error = ?, updated_at = ?, lease_owner = NULL, lease_until = NULL "
                "WHERE id = ? AND attempts = ? AND state = 'sending'",
                entry_rows,
            )
            self._record_attempts(attempt_rows)
        return len(rows)

    # -- what is ready -----------------------------------------------------------------------

    def ready_routes(self, limit: int = 10_000) -> dict[str, int]:
        """How many entries are ready now, by route ('' is the default route).

        At most ``limit`` rows are looked at: enough to know how many
        connections are worth starting, and a claim-sized scan at most.
        """
        rows = self.fetchall(
            "SELECT route, COUNT(*) FROM (SELECT route FROM outbox_entries "
            "WHERE ready_at <= ? LIMIT ?) AS ready GROUP BY route",
            (self.now(), limit),
        )
        return {route: int(n) for route, n in rows}

    def next_ready_at(self) -> float | None:
        """When the next entry becomes ready (epoch seconds), if any will."""
        row = self.fetchone("SELECT MIN(ready_at) FROM outbox_entries WHERE ready_at IS NOT NULL")
        return None if row is None or row[0] is None else float(row[0])

    def busy(self) -> int:
        """How many entries are being sent (leased), by any worker."""
        row = self.fetchone("SELECT COUNT(*) FROM outbox_entries WHERE lease_owner IS NOT NULL")
        return 0 if row is None else int(row[0])
