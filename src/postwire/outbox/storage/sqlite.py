"""The embedded backend: one SQLite file, any number of processes on one machine.

WAL mode lets readers go on while one writer commits; ``synchronous=FULL`` makes every
commit durable before it returns (a put that returned survives a power cut, not only a
crashed process); every write transaction starts with ``BEGIN IMMEDIATE``, so two workers
never both read the same ready rows before one of them writes (SQLite has no row locks:
the claim takes the database's write lock for the length of one short transaction).
Workers waiting for work are woken through Unix datagram sockets in a folder next to the
database (:mod:`..wakeup`), since SQLite has no LISTEN/NOTIFY.
"""

from __future__ import annotations

import functools
import itertools
import random
import re
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..._core.errors import StorageError
from ..wakeup import nudge_sockets, wake_folder
from .base import Row, SQLStorage
from .entries import EntryOps
from .leases import LeaseOps
from .relays import RelayOps
from .schema import sqlite_schema

__all__ = ["SQLiteStorage"]

#: How long a writer waits for another's transaction (milliseconds).
BUSY_TIMEOUT_MS = 60_000
#: Between two tries for the write lock: short, since transactions here are short.
LOCK_RETRY = (0.00005, 0.0004)


#: Host parameters per statement: under SQLite's limit (32766 since 3.32).
MAX_PARAMETERS = 30_000
_VALUES = re.compile(r"VALUES (\([^()]*\))")


@functools.lru_cache(maxsize=256)
def _many(sql: str, rows: int) -> str:
    """One statement for ``rows`` rows of a per-row UPDATE or INSERT.

    ``UPDATE t SET a = ? ... WHERE k = ?`` becomes ``UPDATE t SET a = v.column1 ...
    FROM (VALUES (?, ...), ...) AS v WHERE k = v.columnN``; ``INSERT ... VALUES (...)``
    repeats its row.  Python's sqlite3 gives up and takes back the GIL around every
    row of an ``executemany``: with a worker's other threads busy, each row could wait
    for it.  One statement does the same work in one step.
    """
    if sql.startswith("UPDATE "):
        counter = itertools.count(1)
        body = re.sub(r"\?", lambda _: f"v.column{next(counter)}", sql)
        width = next(counter) - 1
        head, where = body.split(" WHERE ", 1)
        row = "(" + ", ".join("?" * width) + ")"
        return f"{head} FROM (VALUES {', '.join([row] * rows)}) AS v WHERE {where}"
    found = _VALUES.search(sql)
    assert found is not None, sql
    return sql[: found.start(1)] + ", ".join([found.group(1)] * rows) + sql[found.end(1) :]


class SQLiteStorage(EntryOps, LeaseOps, RelayOps, SQLStorage):
    """The outbox in a SQLite file (created with its folder when missing)."""

    dialect = "sqlite"

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path)
        self.wake_dir = wake_folder(self.path)

    def __repr__(self) -> str:
        return f"<SQLiteStorage {self.path}>"

    def _connect(self) -> Any:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            str(self.path),
            isolation_level=None,  # we say BEGIN and COMMIT ourselves
            check_same_thread=False,  # one thread at a time, under the caller's lock
            timeout=BUSY_TIMEOUT_MS / 1000,
        )
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA journal_mode = WAL")
        # The write lock is waited for in _begin; everything else waits SQLite's way.
        conn.execute("PRAGMA busy_timeout = 0")
        # FULL: the WAL is synced at every commit, so a committed put survives power loss.
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")

        return conn

    def _schema(self) -> list[str]:
        return sqlite_schema()

    def _schema_present(self) -> bool:
        row = self.fetchone(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'outbox_meta'"
        )
        return row is not None

    def _begin_write(self) -> str:
        return "BEGIN IMMEDIATE"

    def _begin(self, statement: str) -> None:
        """BEGIN, and for the write lock, try again every few tens of microseconds.

        SQLite's own busy handler sleeps 1, 2, 5, 10... milliseconds between tries, far
        longer than the transactions of other workers last: with several processes
        on one file, most of the time would go to sleeping.
        """
        if statement != "BEGIN IMMEDIATE":
            self.execute(statement)
            return
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        conn = self.conn
        while True:
            try:
                conn.execute(statement)
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    self._fail(exc)
                if time.monotonic() > deadline:
                    raise StorageError(f"the outbox database stayed locked: {exc}") from exc
            time.sleep(random.uniform(*LOCK_RETRY))

    def _is_db_error(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.Error)

    def executemany(
        self, sql: str, rows: Sequence[Sequence[object]], types: Sequence[str] = ()
    ) -> None:
        if len(rows) < 2 or not sql.startswith(("UPDATE ", "INSERT ")):
            super().executemany(sql, rows)
            return
        per = max(1, MAX_PARAMETERS // max(1, len(rows[0])))
        for start in range(0, len(rows), per):
            chunk = rows[start : start + per]
            params = [value for row in chunk for value in row]
            self.execute(_many(sql, len(chunk)), params)

    def insert_returning(
        self, sql: str, rows: Sequence[Sequence[object]], types: Sequence[str] = ()
    ) -> list[Row]:
        if len(rows) < 2:
            return super().insert_returning(sql, rows)
        found: list[Row] = []
        per = max(1, MAX_PARAMETERS // max(1, len(rows[0])))
        for start in range(0, len(rows), per):
            chunk = rows[start : start + per]
            params = [value for row in chunk for value in row]
            found.extend(self.fetchall(_many(sql, len(chunk)), params))
        return found

    def after_put(self) -> None:
        nudge_sockets(self.wake_dir)
