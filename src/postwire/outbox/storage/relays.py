"""Per-relay limits in the database: slots (concurrency), slow start, dead relays, status.

The rules are in :mod:`..limits`; the rate's stamps are taken with each mark
(:meth:`.leases.LeaseOps.mark`).  Each operation is one short transaction that locks the
relay's row (PostgreSQL) or the database (SQLite), so two workers never both take the
last slot.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..limits import RelayLimits, grow, shrink
from ..records import from_epoch
from .base import SQLStorage

__all__ = ["RelayOps", "RelayStatus"]


@dataclass(frozen=True, slots=True)
class RelayStatus:
    """One relay's limits and use, for `postwire outbox status` and the metrics.

    Attributes:
        relay: `host:port` (the limits are kept per server, so two accounts on
            one server share them).
        max_connections: the limit the workers were started with.
        window: the current concurrency window (slow start).
        connections: open connections now, over every worker (live slots).
        rate: messages per second, or None.
        recipient_limit: recipients per transaction the relay was found to take
            ("too many recipients"), or None.
        dead_until: while the relay is left alone after failures, until when
            (an aware datetime), else None.
    """

    relay: str
    max_connections: int
    window: int
    connections: int
    rate: float | None
    recipient_limit: int | None
    dead_until: object  # datetime | None


class RelayOps(SQLStorage):
    """The operations on relays (a relay is ``host:port``)."""

    def set_limits(self, relay: str, limits: RelayLimits) -> None:
        """Store the limits a worker was started with (the current window is kept)."""
        now = self.now()
        with self.write():
            self.execute(
                "INSERT INTO outbox_relays (relay, max_connections, initial, conn_window, rate, "
                "guard, dead_time, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (relay) DO UPDATE SET max_connections = excluded.max_connections, "
                "initial = excluded.initial, rate = excluded.rate, guard = excluded.guard, "
                "dead_time = excluded.dead_time, updated_at = excluded.updated_at, "
                "conn_window = CASE WHEN outbox_relays.conn_window > excluded.max_connections "
                "THEN excluded.max_connections ELSE outbox_relays.conn_window END",
                (relay, limits.max_connections, limits.start_window, limits.start_window,
                 limits.rate, limits.guard, limits.dead_time, now),
            )  # fmt: skip

    def acquire_slot(self, relay: str, holder: str, owner: str, lease: float) -> bool:
        """Take one connection slot of ``relay`` if its window has room and it is not dead."""
        now = self.now()
        with self.write():
            row = self.fetchone(
                "SELECT conn_window, dead_until FROM outbox_relays WHERE relay = ?"
                + self.lock_rows,
                (relay,),
            )
            if row is None:
                raise RuntimeError(f"relay {relay} has no limits: call set_limits first")
            window, dead_until = int(row[0]), row[1]
            if dead_until is not None and float(dead_until) > now:
                return False
            # Count live leases, not a counter: a crashed worker's slots run out by themselves.
            self.execute("DELETE FROM outbox_slots WHERE relay = ? AND until <= ?", (relay, now))
            live = self.fetchone("SELECT COUNT(*) FROM outbox_slots WHERE relay = ?", (relay,))
            if live is not None and int(live[0]) >= window:
                return False
            self.execute(
                "INSERT INTO outbox_slots (relay, holder, owner, until) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (relay, holder) DO UPDATE SET until = excluded.until",
                (relay, holder, owner, now + lease),
            )
        return True

    def release_slot(self, relay: str, holder: str) -> None:
        with self.write():
            self.execute("DELETE FROM outbox_slots WHERE relay = ? AND holder = ?", (relay, holder))

    def relay_feedback(self, relay: str, *, ok: bool, learned_limit: int | None = None) -> None:
        """After a connection: grow the window (it delivered) or shrink it (it failed).

        A failure at a window of one makes the relay dead for its ``dead_time``.
        ``learned_limit`` is the number of recipients the relay took in one
        transaction before "too many recipients" (RFC 5321 §4.5.3.1.10).
        """
        now = self.now()
        with self.write():
            row = self.fetchone(
                "SELECT conn_window, max_connections, dead_time, recipient_limit "
                f"FROM outbox_relays WHERE relay = ?{self.lock_rows}",
                (relay,),
            )
            if row is None:
                return
            window, maximum, dead_time, limit = int(row[0]), int(row[1]), float(row[2]), row[3]
            dead_until = None
            if ok:
                window = grow(window, maximum)
            else:
                window, dead = shrink(window)
                dead_until = now + dead_time if dead else None
            if learned_limit is not None:
                limit = learned_limit if limit is None else min(int(limit), learned_limit)
            self.execute(
                "UPDATE outbox_relays SET conn_window = ?, dead_until = ?, recipient_limit = ?, "
                "updated_at = ? WHERE relay = ?",
                (window, dead_until, limit, now, relay),
            )

    def recipient_limit(self, relay: str) -> int | None:
        row = self.fetchone("SELECT recipient_limit FROM outbox_relays WHERE relay = ?", (relay,))
        return None if row is None or row[0] is None else int(row[0])

    def relays(self) -> list[RelayStatus]:
        """Every relay known to the outbox, with its live connections."""
        now = self.now()
        with self.read():
            rows = self.fetchall(
                "SELECT relay, max_connections, conn_window, rate, recipient_limit, dead_until "
                "FROM outbox_relays ORDER BY relay"
            )
            live: dict[str, int] = dict(
                self.fetchall(
                    "SELECT relay, COUNT(*) FROM outbox_slots WHERE until > ? GROUP BY relay",
                    (now,),
                )
            )
        return [
            RelayStatus(
                relay=r[0],
                max_connections=int(r[1]),
                window=int(r[2]),
                connections=int(live.get(r[0], 0)),
                rate=None if r[3] is None else float(r[3]),
                recipient_limit=None if r[4] is None else int(r[4]),
                dead_until=from_epoch(r[5]) if r[5] is not None and float(r[5]) > now else None,
            )
            for r in rows
        ]
