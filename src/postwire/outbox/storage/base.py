"""What every storage backend shares: the SQL plumbing and the values that cross it.

A backend (:mod:`.sqlite`, :mod:`.postgresql`) gives a DB-API connection, its schema,
how a write transaction begins, how rows are locked and how an ``IN`` list is written;
the operations themselves (:mod:`.entries`, :mod:`.leases`, :mod:`.relays`) are written
once, in SQL both databases understand, with ``?`` placeholders.

A :class:`SQLStorage` is one database connection, used by one thread at a time (the
callers hold a lock or own it).  Every database error comes out as
:class:`~postwire.errors.StorageError`, with the driver's error chained, and a broken
connection is opened again on the next call: a transaction is never retried here, since
only the caller knows whether it may be (a put may: its key makes it idempotent).
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from ..._core.errors import StorageError
from ..policy import OpenRecipient
from ..states import RecipientState

__all__ = [
    "Claimed",
    "FinishItem",
    "MarkItem",
    "NewEntry",
    "Row",
    "SQLStorage",
]

Row = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class NewEntry:
    """A message ready to be stored by ``put``."""

    key: str
    message_id: str | None
    sender: str
    recipients: tuple[str, ...]
    content: bytes
    route: str
    priority: int
    ready_at: float


@dataclass(frozen=True, slots=True)
class Claimed:
    """An entry a worker has just leased, with what it needs to send it."""

    id: int
    #: The fencing token: every later write about this attempt must present it.
    token: int
    key: str
    message_id: str | None
    sender: str
    content: bytes
    route: str
    lifetime_from: float
    open: tuple[OpenRecipient, ...]
    closed: tuple[RecipientState, ...]


@dataclass(frozen=True, slots=True)
class MarkItem:
    """ "The final "." of this attempt is about to be sent", for one entry."""

    id: int
    token: int
    #: Positions of the recipients in the transaction.
    positions: tuple[int, ...]
    relay: str
    #: The connection's slot (see :mod:`..limits`): it must still be live.
    holder: str


@dataclass(frozen=True, slots=True)
class FinishItem:
    """The result of one attempt, to be written if the lease still holds.

    ``decision`` None releases the entry without a verdict (the worker withdrew
    the send itself, so nothing was delivered and no attempt is charged).
    """

    id: int
    token: int
    decision: object  # a policy.Decision, or None
    worker: str
    relay: str
    started_at: float
    phase: str
    detail: str = ""


class SQLStorage:
    """One connection to the outbox's database; the dialect hooks are overridden."""

    #: "sqlite" or "postgresql".
    dialect = ""
    #: Appended to a SELECT that must lock its rows for the rest of the transaction.
    lock_rows = ""
    #: Appended to the claim's inner SELECT (PostgreSQL: FOR UPDATE SKIP LOCKED).
    claim_lock = ""

    def __init__(self) -> None:
        self._conn: Any = None
        self._in_transaction = False

    # -- the dialect -------------------------------------------------------------------------

    def _connect(self) -> Any:
        raise NotImplementedError

    def _schema(self) -> list[str]:
        raise NotImplementedError

    def _begin_write(self) -> str:
        return "BEGIN"

    def _sql(self, text: str) -> str:
        """The statement in this driver's placeholder style (written with ``?``)."""
        return text

    def _is_db_error(self, exc: BaseException) -> bool:
        raise NotImplementedError

    def _before_transaction(self) -> None:
        """Called before each outermost transaction begins."""

    def _begin(self, statement: str) -> None:
        """Start a transaction (SQLite retries its write lock its own way)."""
        self.execute(statement)

    def _broken(self) -> bool:
        """Whether the connection is unusable and must be opened again."""
        return False

    def in_list(self, column: str, values: Sequence[object]) -> tuple[str, list[object]]:
        """``column IN (...)`` for these values, and its parameters."""
        marks = ",".join("?" * len(values))
        return f"{column} IN ({marks})", list(values)

    def now(self) -> float:
        """The database's clock, in seconds since the epoch."""
        return time.time()

    def after_put(self) -> None:
        """Called after a put committed: wake idle workers (SQLite's way)."""

    def notify_sql(self) -> str | None:
        """A statement run inside a put's transaction to wake workers (PostgreSQL's way)."""
        return None

    # -- the connection ----------------------------------------------------------------------

    @property
    def conn(self) -> Any:
        if self._conn is None or self._broken():
            self.close()
            try:
                self._conn = self._connect()
            except Exception as exc:
                if self._is_db_error(exc):
                    raise StorageError(f"cannot open the outbox database: {exc}") from exc
                raise
        return self._conn

    def close(self) -> None:
        """Close the connection (the next call opens a new one)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def _schema_present(self) -> bool:
        """Whether the tables exist (then no DDL runs: it would lock them against workers)."""
        raise NotImplementedError

    def retryable(self, exc: BaseException) -> bool:
        """Whether a failed transaction may simply run again (a deadlock it lost)."""
        return False

    def create(self) -> None:
        """Create the tables if they do not exist."""
        if self._schema_present():
            return
        with self.write():
            for statement in self._schema():
                self.execute(statement)
            self.execute(
                "INSERT INTO outbox_meta (name, value) VALUES ('schema', '1') "
                "ON CONFLICT (name) DO NOTHING"
            )

    # -- statements --------------------------------------------------------------------------

    def _fail(self, exc: BaseException) -> NoReturn:
        """Raise ``exc``, a driver's error as :class:`StorageError` (chained)."""
        if isinstance(exc, StorageError) or not self._is_db_error(exc):
            raise exc
        if self._broken() or not self._in_transaction:
            self.close()
        raise StorageError(f"outbox database error: {type(exc).__name__}: {exc}") from exc

    def execute(self, sql: str, params: Sequence[object] = ()) -> Any:
        try:
            return self.conn.execute(self._sql(sql), params)
        except Exception as exc:
            self._fail(exc)

    def fetchall(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        try:
            return list(self.conn.execute(self._sql(sql), params).fetchall())
        except Exception as exc:
            self._fail(exc)

    def fetchone(self, sql: str, params: Sequence[object] = ()) -> Row | None:
        try:
            row = self.conn.execute(self._sql(sql), params).fetchone()
        except Exception as exc:
            self._fail(exc)
        return None if row is None else tuple(row)

    def executemany(
        self, sql: str, rows: Sequence[Sequence[object]], types: Sequence[str] = ()
    ) -> None:
        """Run a per-row statement for every row.

        ``types`` (PostgreSQL type names, one per ``?``) let a backend run it as one
        statement for all the rows instead (see the backends).
        """
        if not rows:
            return
        try:
            self.conn.cursor().executemany(self._sql(sql), rows)
        except Exception as exc:
            self._fail(exc)

    def insert_returning(
        self, sql: str, rows: Sequence[Sequence[object]], types: Sequence[str] = ()
    ) -> list[Row]:
        """A per-row ``INSERT ... RETURNING`` for every row; the rows it returned.

        The backends run it as one statement for all the rows (see ``executemany``).
        """
        found: list[Row] = []
        for row in rows:
            found.extend(self.fetchall(sql, row))
        return found

    @contextlib.contextmanager
    def write(self) -> Iterator[None]:
        """A write transaction: committed at the end, rolled back on any error.

        Inside another transaction of this connection, it joins that one: a
        worker commits many small operations at once (group commit).
        """
        yield from self._transaction(self._begin_write())

    @contextlib.contextmanager
    def read(self) -> Iterator[None]:
        """A read transaction: several SELECTs that see one snapshot."""
        yield from self._transaction("BEGIN")

    def _transaction(self, begin: str) -> Iterator[None]:
        if self._in_transaction:
            # Inside a transaction already (a worker's group commit): join it.
            yield
            return
        self._before_transaction()
        self._begin(begin)
        self._in_transaction = True
        try:
            yield
        except BaseException as exc:
            self._in_transaction = False
            with contextlib.suppress(Exception):
                self._conn.execute("ROLLBACK")
            if self._is_db_error(exc) and self._broken():
                self.close()
            self._fail(exc)
        self._in_transaction = False
        try:
            self.conn.execute("COMMIT")
        except Exception as exc:
            with contextlib.suppress(Exception):
                self._conn.execute("ROLLBACK")
            self._fail(exc)


@functools.lru_cache(maxsize=256)
def question_to_format(sql: str) -> str:
    """``?`` placeholders as ``%s`` (psycopg), with literal ``%`` escaped."""
    return sql.replace("%", "%%").replace("?", "%s")
