"""Fixtures of the outbox tests: the real databases (SQLite files, a private PostgreSQL 15
started once per session) and the scripted relay (tests/servers/relay.py)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from servers.postgres import PostgresServer
from servers.relay import ScriptedRelay


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A private PostgreSQL on 127.0.0.1 for the session (stopped, and its folder removed)."""
    base = Path(tempfile.mkdtemp(prefix="postwire-pg-"))
    try:
        with PostgresServer(base) as server:
            yield server
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def outbox_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new, empty outbox: a SQLite file, or a new database on the session's PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/outbox.sqlite3"
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.database()


@pytest.fixture
def relay() -> Iterator[ScriptedRelay]:
    with ScriptedRelay() as server:
        yield server
