"""Where the outbox keeps its entries: SQLite (embedded, the default) or PostgreSQL.

:func:`open_storage` turns an outbox URL into a backend:

- ``sqlite:///relative/path.sqlite3`` or ``sqlite:////absolute/path.sqlite3`` (the
  SQLAlchemy and dj-database-url convention), or a plain file path;
- ``postgresql://user@host:port/dbname?...`` (or ``postgres://``), given to psycopg 3 as is;
- no URL: ``$POSTWIRE_OUTBOX``, else ``$XDG_DATA_HOME/postwire/outbox.sqlite3``
  (``~/.local/share/postwire/outbox.sqlite3``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from ..._core.errors import ConfigError
from .base import Claimed, FinishItem, MarkItem, NewEntry, SQLStorage
from .postgresql import CHANNEL, PostgreSQLStorage
from .relays import RelayStatus
from .sqlite import SQLiteStorage

__all__ = [
    "CHANNEL",
    "Claimed",
    "FinishItem",
    "MarkItem",
    "NewEntry",
    "PostgreSQLStorage",
    "RelayStatus",
    "SQLStorage",
    "SQLiteStorage",
    "Storage",
    "default_url",
    "open_storage",
]

Storage = SQLiteStorage | PostgreSQLStorage


def default_url(environ: Mapping[str, str] | None = None) -> str:
    """``$POSTWIRE_OUTBOX``, else a SQLite file in the user's data folder (XDG)."""
    env = os.environ if environ is None else environ
    if env.get("POSTWIRE_OUTBOX"):
        return env["POSTWIRE_OUTBOX"]
    base = env.get("XDG_DATA_HOME") or ""
    # XDG Base Directory spec: a relative XDG_DATA_HOME is invalid and ignored.
    root = Path(base) if os.path.isabs(base) else Path.home() / ".local" / "share"
    return "sqlite:///" + str(root / "postwire" / "outbox.sqlite3")


def open_storage(url: str | None = None, *, create: bool = True) -> Storage:
    """The backend for an outbox URL (see the module text); tables created unless asked not."""
    url = url or default_url()
    storage: Storage
    if url.startswith(("postgresql://", "postgres://")):
        storage = PostgreSQLStorage(url)
    elif url.startswith("sqlite:"):
        rest = url[len("sqlite:") :]
        if not rest.startswith("///") or len(rest) == 3:
            raise ConfigError(
                f"bad SQLite outbox URL {url!r}: use sqlite:///relative/path or "
                "sqlite:////absolute/path"
            )
        path = rest[3:]
        if "?" in path:
            raise ConfigError(f"SQLite outbox URLs take no options: {url!r}")
        storage = SQLiteStorage(Path(path))
    elif "://" in url:
        scheme = url.split("://", 1)[0]
        raise ConfigError(
            f"unknown outbox URL scheme {scheme!r}: use sqlite:///PATH or postgresql://..."
        )
    else:
        storage = SQLiteStorage(Path(url).expanduser())
    if create:
        try:
            storage.create()
        except BaseException:
            storage.close()
            raise
    return storage
