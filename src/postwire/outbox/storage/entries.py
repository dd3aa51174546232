"""Storing and reading entries: put, get, list, counts, operator actions, purge.

Written once for both databases (see :mod:`.base`).  A put is one transaction: the
entries whose key is new are inserted with their recipients, the others are found by
key and returned as they are (the key is unique for as long as the entry exists, so
putting again after an error, or twice, never queues a second copy).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..._core.errors import EntryNotFound
from ..policy import OpenRecipient, resume_state
from ..records import Attempt, Entry, Recipient, from_epoch, reply_from
from ..states import FINAL, RecipientState, State, check_operation
from .base import NewEntry, Row, SQLStorage

__all__ = ["EntryOps"]

_ENTRY_COLUMNS = (
    "id, key, message_id, state, sender, route, priority, size, created_at, updated_at, "
    "ready_at, attempts, uncertain, last_code, last_text, last_error, lease_owner, lease_until"
)
_RECIPIENT_COLUMNS = "entry_id, position, address, state, ready_at, code, text, error, uncertain"
_ATTEMPT_COLUMNS = (
    "entry_id, number, worker, relay, started_at, finished_at, phase, outcome, code, text, detail"
)
#: Rows per IN (...) list: well under SQLite's limit on parameters.
CHUNK = 500


def entry_from_row(
    row: Row, recipients: Sequence[Recipient] = (), history: Sequence[Attempt] = ()
) -> Entry:
    (id_, key, message_id, state, sender, route, priority, size, created, updated, ready,
     attempts, uncertain, code, text, error, owner, until) = row  # fmt: skip
    created_at = from_epoch(created)
    updated_at = from_epoch(updated)
    assert created_at is not None and updated_at is not None
    return Entry(
        id=int(id_),
        key=key,
        message_id=message_id,
        state=State(state),
        sender=sender,
        route=route or None,
        priority=int(priority),
        size=int(size),
        created_at=created_at,
        updated_at=updated_at,
        next_attempt_at=from_epoch(ready),
        attempts=int(attempts),
        uncertain=int(uncertain),
        last_reply=reply_from(code, text),
        last_error=error or "",
        lease_owner=owner,
        lease_until=from_epoch(until),
        recipients=tuple(recipients),
        history=tuple(history),
    )


def recipient_from_row(row: Row) -> Recipient:
    _, _, address, state, ready, code, text, error, uncertain = row
    return Recipient(
        address=address,
        state=RecipientState(state),
        reply=reply_from(code, text),
        error=error or "",
        next_attempt_at=from_epoch(ready),
        uncertain=int(uncertain),
    )


def attempt_from_row(row: Row) -> Attempt:
    _, number, worker, relay, started, finished, phase, outcome, code, text, detail = row
    return Attempt(
        number=int(number),
        worker=worker,
        relay=relay,
        started_at=from_epoch(started),
        finished_at=from_epoch(finished),
        phase=phase,
        outcome=outcome,
        reply=reply_from(code, text),
        detail=detail or "",
    )


class EntryOps(SQLStorage):
    """The operations an application and an operator use."""

    # -- put ---------------------------------------------------------------------------------

    def put(self, items: Sequence[NewEntry]) -> list[tuple[int, bool]]:
        """Store new entries; returns (id, created) for each item, in order.

        An item whose key exists already (in the database, or earlier in
        ``items``) is not stored again: its existing id comes back with
        ``created`` False.
        """
        now = self.now()
        out: list[tuple[int, bool]] = []
        with self.write():
            seen: dict[str, int] = {}
            for start in range(0, len(items), CHUNK):
                out.extend(self._put_chunk(items[start : start + CHUNK], now, seen))
            notify = self.notify_sql()
            if notify is not None and any(created for _, created in out):
                self.execute(notify)
        if any(created for _, created in out):
            self.after_put()
        return out

    def _put_chunk(
        self, items: Sequence[NewEntry], now: float, seen: dict[str, int]
    ) -> list[tuple[int, bool]]:
        candidates: dict[str, NewEntry] = {}
        for item in items:
            if item.key not in seen and item.key not in candidates:
                candidates[item.key] = item
        # Insert what is new (ON CONFLICT: the key is unique); find the others after.
        created = self._insert_entries(list(candidates.values()), now)
        fresh = [item for key, item in candidates.items() if key in created]
        existing: dict[str, int] = {}
        others = [key for key in candidates if key not in created]
        if others:
            clause, params = self.in_list("key", others)
            existing = {
                k: int(i)
                for i, k in self.fetchall(
                    f"SELECT id, key FROM outbox_entries WHERE {clause}", params
                )
            }
        recipients = [
            (created[item.key], position, address, "pending", item.ready_at, now)
            for item in fresh
            for position, address in enumerate(item.recipients)
        ]
        self.executemany(
            "INSERT INTO outbox_recipients (entry_id, position, address, state, ready_at, "
            "updated_at) VALUES (?, ?, ?, ?, ?, ?)",
            recipients,
            ("int8", "int4", "text", "text", "float8", "float8"),
        )
        seen.update(created)
        out: list[tuple[int, bool]] = []
        new_keys = set(created)
        for item in items:
            if item.key in existing:
                out.append((existing[item.key], False))
            elif item.key in new_keys:
                out.append((created[item.key], True))
                new_keys.discard(item.key)
            else:  # a key repeated within this put
                out.append((seen[item.key], False))
        return out

    def _insert_entries(self, candidates: Sequence[NewEntry], now: float) -> dict[str, int]:
        """Insert the rows whose keys are new; returns the ids of those inserted, by key."""
        if not candidates:
            return {}
        rows = self.insert_returning(
            "INSERT INTO outbox_entries (key, message_id, sender, size, route, "
            "priority, state, ready_at, created_at, updated_at, lifetime_from) "
            "VALUES (?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?) "
            "ON CONFLICT (key) DO NOTHING RETURNING key, id",
            [
                (i.key, i.message_id, i.sender, len(i.content), i.route, i.priority,
                 i.ready_at, now, now, now)
                for i in candidates
            ],
            ("text", "text", "text", "int4", "text", "int4", "float8", "float8", "float8",
             "float8"),
        )  # fmt: skip
        ids = {k: int(i) for k, i in rows}
        fresh = [i for i in candidates if i.key in ids]
        self.executemany(
            "INSERT INTO outbox_contents (entry_id, content) VALUES (?, ?)",
            [(ids[i.key], i.content) for i in fresh],
            ("int8", "bytea"),
        )
        return ids

    # -- reading -----------------------------------------------------------------------------

    def get(self, entry_id: int, *, history: bool = True) -> Entry:
        """One entry with its recipients (and its attempts, oldest first)."""
        with self.read():
            row = self.fetchone(
                f"SELECT {_ENTRY_COLUMNS} FROM outbox_entries WHERE id = ?", (entry_id,)
            )
            if row is None:
                raise EntryNotFound(f"no outbox entry {entry_id}")
            recipients = [
                recipient_from_row(r)
                for r in self.fetchall(
                    f"SELECT {_RECIPIENT_COLUMNS} FROM outbox_recipients WHERE entry_id = ? "
                    "ORDER BY position",
                    (entry_id,),
                )
            ]
            attempts: list[Attempt] = []
            if history:
                attempts = [
                    attempt_from_row(r)
                    for r in self.fetchall(
                        f"SELECT {_ATTEMPT_COLUMNS} FROM outbox_attempts WHERE entry_id = ? "
                        "ORDER BY number",
                        (entry_id,),
                    )
                ]
        return entry_from_row(row, recipients, attempts)

    def entry_ids(self, keys: Sequence[str]) -> dict[str, int]:
        """The ids of the entries with these keys (those that exist)."""
        found: dict[str, int] = {}
        for start in range(0, len(keys), CHUNK):
            clause, params = self.in_list("key", list(keys[start : start + CHUNK]))
            rows = self.fetchall(f"SELECT key, id FROM outbox_entries WHERE {clause}", params)
            found.update((k, int(i)) for k, i in rows)
        return found

    def content(self, entry_id: int) -> bytes:
        """The message as stored (with the Date and Message-ID added at put)."""
        row = self.fetchone("SELECT content FROM outbox_contents WHERE entry_id = ?", (entry_id,))
        if row is None:
            raise EntryNotFound(f"no outbox entry {entry_id}")
        return bytes(row[0])

    def entries(
        self, state: State | None = None, *, limit: int = 100, offset: int = 0
    ) -> list[Entry]:
        """Entries (newest first), with their recipients, optionally in one state."""
        where, params = ("WHERE state = ?", [state.value]) if state is not None else ("", [])
        with self.read():
            rows = self.fetchall(
                f"SELECT {_ENTRY_COLUMNS} FROM outbox_entries {where} "
                "ORDER BY id DESC LIMIT ? OFFSET ?",
                [*params, limit, offset],
            )
            by_entry: dict[int, list[Recipient]] = {int(r[0]): [] for r in rows}
            if by_entry:
                clause, ids = self.in_list("entry_id", list(by_entry))
                for r in self.fetchall(
                    f"SELECT {_RECIPIENT_COLUMNS} FROM outbox_recipients WHERE {clause} "
                    "ORDER BY entry_id, position",
                    ids,
                ):
                    by_entry[int(r[0])].append(recipient_from_row(r))
        return [entry_from_row(r, by_entry[int(r[0])]) for r in rows]

    def counts(self) -> dict[State, int]:
        """How many entries are in each state (every state is listed, zeros included)."""
        rows = self.fetchall("SELECT state, COUNT(*) FROM outbox_entries GROUP BY state")
        found = {State(state): int(n) for state, n in rows}
        return {state: found.get(state, 0) for state in State}

    def oldest_waiting(self) -> float | None:
        """When the oldest entry still waiting for delivery was put (epoch seconds)."""
        row = self.fetchone(
            "SELECT MIN(created_at) FROM outbox_entries "
            "WHERE state IN ('queued', 'deferred', 'uncertain', 'sending')"
        )
        return None if row is None or row[0] is None else float(row[0])

    # -- operator actions --------------------------------------------------------------------

    def operate(self, entry_id: int, operation: str) -> Entry:
        """hold, release, retry or cancel one entry; returns it as it is now."""
        now = self.now()
        with self.write():
            row = self.fetchone(
                "SELECT state FROM outbox_entries WHERE id = ?" + self.lock_rows, (entry_id,)
            )
            if row is None:
                raise EntryNotFound(f"no outbox entry {entry_id}")
            target = check_operation(operation, State(row[0]))
            if operation in ("hold", "cancel"):
                self.execute(
                    "UPDATE outbox_entries SET state = ?, ready_at = NULL, updated_at = ? "
                    "WHERE id = ?",
                    (target.value, now, entry_id),
                )
            else:
                self._reopen(entry_id, now, retry=operation == "retry")
            notify = self.notify_sql()
            if notify is not None:
                self.execute(notify)
        self.after_put()
        return self.get(entry_id)

    def _reopen(self, entry_id: int, now: float, *, retry: bool) -> None:
        """release: back to work as it was; retry: every recipient not delivered, now."""
        if retry:
            # Bounced and expired recipients get another chance; the lifetime starts again.
            self.execute(
                "UPDATE outbox_recipients SET state = CASE WHEN state = 'uncertain' "
                "THEN 'uncertain' ELSE 'pending' END, ready_at = ?, updated_at = ? "
                "WHERE entry_id = ? AND state <> 'delivered'",
                (now, now, entry_id),
            )
        else:
            self.execute(
                "UPDATE outbox_recipients SET ready_at = ?, updated_at = ? WHERE entry_id = ? "
                "AND state = 'uncertain' AND ready_at IS NULL",
                (now, now, entry_id),
            )
        open_rows = self.fetchall(
            "SELECT position, address, state, ready_at FROM outbox_recipients "
            "WHERE entry_id = ? AND state IN ('pending', 'deferred', 'uncertain')",
            (entry_id,),
        )
        recipients = [OpenRecipient(int(p), a, RecipientState(s), r) for p, a, s, r in open_rows]
        state, ready = resume_state(recipients, now) if recipients else (State.SENT, None)
        extra = ", lifetime_from = ?" if retry else ""
        params: list[object] = [state.value, ready, now]
        if retry:
            params.append(now)
        self.execute(
            f"UPDATE outbox_entries SET state = ?, ready_at = ?, updated_at = ?{extra} "
            "WHERE id = ?",
            [*params, entry_id],
        )

    def purge(self, before: float, states: Sequence[State] = tuple(FINAL)) -> int:
        """Delete entries in ``states`` last changed before ``before``; returns how many."""
        for state in states:
            if state not in FINAL:
                raise ValueError(f"only final states can be purged, not {state.value}")
        clause, params = self.in_list("state", [s.value for s in states])
        with self.write():
            ids = [
                int(r[0])
                for r in self.fetchall(
                    f"SELECT id FROM outbox_entries WHERE {clause} AND updated_at < ?",
                    [*params, before],
                )
            ]
            for start in range(0, len(ids), CHUNK):
                chunk = ids[start : start + CHUNK]
                for table, column in (
                    ("outbox_attempts", "entry_id"),
                    ("outbox_recipients", "entry_id"),
                    ("outbox_contents", "entry_id"),
                    ("outbox_entries", "id"),
                ):
                    where, values = self.in_list(column, chunk)
                    self.execute(f"DELETE FROM {table} WHERE {where}", values)
        return len(ids)
