"""The shared backend: PostgreSQL (psycopg 3), for many workers on many machines.

Claims take rows with ``FOR UPDATE SKIP LOCKED`` (workers never wait on each other's rows),
other writes lock the rows they fence; a put sends ``NOTIFY postwire_outbox`` in its
transaction, so listening workers wake when it commits (:mod:`..wakeup` listens, and
listens again after the database restarted).  Leases are timed by the database's clock,
read once per connection (and again every minute), so that workers on machines whose
clocks disagree still agree on when a lease runs out.
"""

from __future__ import annotations

import functools
import itertools
import re
import time
from collections.abc import Sequence
from typing import Any

from ..._core.errors import ConfigError
from .base import Row, SQLStorage, question_to_format
from .entries import EntryOps
from .leases import LeaseOps
from .relays import RelayOps
from .schema import postgresql_schema

__all__ = ["CHANNEL", "PostgreSQLStorage", "psycopg_module"]

#: The LISTEN/NOTIFY channel that wakes workers.
CHANNEL = "postwire_outbox"
#: Seconds between two readings of the database's clock.
CLOCK_EVERY = 60.0


def psycopg_module() -> Any:
    """psycopg 3, or a ConfigError that says how to install it."""
    try:
        import psycopg
    except ImportError:  # pragma: no cover - the outbox extra installs it
        raise ConfigError(
            "a postgresql:// outbox needs psycopg 3: pip install 'postwire[outbox]'"
        ) from None
    return psycopg


_VALUES = re.compile(r"VALUES \(([^()]*)\)")


@functools.lru_cache(maxsize=64)
def _unnest(sql: str, types: tuple[str, ...]) -> str:
    """A per-row UPDATE or INSERT as one statement over ``unnest`` of one array per column.

    ``UPDATE t SET a = ? ... WHERE k = ?`` becomes ``UPDATE t SET a = v.c1 ... FROM
    unnest(?::type[], ...) AS v (c1, ...) WHERE k = v.cN``; an ``INSERT ... VALUES (...)``
    selects its row from the arrays.  One round trip and one statement for any number of
    rows, where ``executemany`` costs the driver a result per row.
    """
    counter = itertools.count(1)
    arrays = ", ".join(f"?::{t}[]" for t in types)
    names = ", ".join(f"c{i}" for i in range(1, len(types) + 1))
    source = f"unnest({arrays}) AS v ({names})"
    if sql.startswith("UPDATE "):
        body = re.sub(r"\?", lambda _: f"v.c{next(counter)}", sql)
        head, where = body.split(" WHERE ", 1)
        return f"{head} FROM {source} WHERE {where}"
    found = _VALUES.search(sql)
    assert found is not None, sql
    row = re.sub(r"\?", lambda _: f"v.c{next(counter)}", found.group(1))
    return sql[: found.start()] + f"SELECT {row} FROM {source}" + sql[found.end() :]


class PostgreSQLStorage(EntryOps, LeaseOps, RelayOps, SQLStorage):
    """The outbox in a PostgreSQL database (tables created when missing)."""

    dialect = "postgresql"
    lock_rows = " FOR UPDATE"
    claim_lock = " FOR UPDATE SKIP LOCKED"

    def __init__(self, conninfo: str, *, connect_timeout: float = 10.0) -> None:
        super().__init__()
        self.conninfo = conninfo
        self.connect_timeout = connect_timeout
        self._psycopg = psycopg_module()
        self._offset = 0.0
        self._clock_read = 0.0

    def __repr__(self) -> str:
        return "<PostgreSQLStorage>"

    def _connect(self) -> Any:
        conn = self._psycopg.connect(
            self.conninfo,
            autocommit=True,  # we say BEGIN and COMMIT ourselves
            connect_timeout=max(1, int(self.connect_timeout)),
            application_name="postwire-outbox",
        )
        self._read_clock(conn)
        return conn

    def _read_clock(self, conn: Any) -> None:
        before = time.time()
        row = conn.execute("SELECT extract(epoch FROM clock_timestamp())").fetchone()
        after = time.time()
        self._offset = float(row[0]) - (before + after) / 2
        self._clock_read = after

    def _before_transaction(self) -> None:
        stale = time.time() - self._clock_read > CLOCK_EVERY
        if self._conn is not None and stale and not self._broken():
            try:
                self._read_clock(self._conn)
            except Exception as exc:
                if not self._is_db_error(exc):
                    raise
                self.close()

    def now(self) -> float:
        # Safe from any thread: the offset is read once per connection (and per minute).
        return time.time() + self._offset

    def _schema(self) -> list[str]:
        return postgresql_schema()

    def _sql(self, text: str) -> str:
        return question_to_format(text)

    def executemany(
        self, sql: str, rows: Sequence[Sequence[object]], types: Sequence[str] = ()
    ) -> None:
        if len(rows) < 2 or not types:
            super().executemany(sql, rows)
            return
        columns = [list(column) for column in zip(*rows, strict=True)]
        self.execute(_unnest(sql, tuple(types)), columns)

    def insert_returning(
        self, sql: str, rows: Sequence[Sequence[object]], types: Sequence[str] = ()
    ) -> list[Row]:
        if len(rows) < 2 or not types:
            return super().insert_returning(sql, rows)
        columns = [list(column) for column in zip(*rows, strict=True)]
        return self.fetchall(_unnest(sql, tuple(types)), columns)

    def in_list(self, column: str, values: Sequence[object]) -> tuple[str, list[object]]:
        return f"{column} = ANY(?)", [list(values)]

    def _is_db_error(self, exc: BaseException) -> bool:
        return isinstance(exc, self._psycopg.Error)

    def _broken(self) -> bool:
        conn = self._conn
        return conn is not None and bool(conn.closed or conn.broken)

    def notify_sql(self) -> str | None:
        return f"NOTIFY {CHANNEL}"

    def _schema_present(self) -> bool:
        row = self.fetchone("SELECT to_regclass('outbox_meta') IS NOT NULL")
        return bool(row and row[0])

    def retryable(self, exc: BaseException) -> bool:
        errors = self._psycopg.errors
        cause = exc.__cause__ if exc.__cause__ is not None else exc
        return isinstance(cause, (errors.DeadlockDetected, errors.SerializationFailure))

    def create(self) -> None:
        # CREATE ... IF NOT EXISTS still takes table locks that can deadlock with workers'
        # writes: run it only on a database without the tables.
        if self._schema_present():
            return
        # Two processes creating the tables at once would race on the catalog: take a lock.
        with self.write():
            self.execute("SELECT pg_advisory_xact_lock(7268790315)")
            for statement in self._schema():
                self.execute(statement)
            self.execute(
                "INSERT INTO outbox_meta (name, value) VALUES ('schema', '1') "
                "ON CONFLICT (name) DO NOTHING"
            )
