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

import sqlite3
from pathlib import Path
from typing import Any

from ..wakeup import nudge_sockets, wake_folder
from .base import SQLStorage
from .entries import EntryOps
from .leases import LeaseOps
from .relays import RelayOps
from .schema import sqlite_schema

__all__ = ["SQLiteStorage"]

#: How long a writer waits for another's transaction (milliseconds).
BUSY_TIMEOUT_MS = 60_000


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

    def _is_db_error(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.Error)

    def after_put(self) -> None:
        nudge_sockets(self.wake_dir)
