"""Fixtures shared by several test files.

One section per server or resource; the servers themselves live in ``tests/servers/`` (imported
as ``servers``: pytest puts ``tests/`` on ``sys.path`` because it has no ``__init__.py``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from postwire.capture import CaptureServer
from servers.lmtp import LmtpServer
from servers.opendkim import DkimVerifier
from servers.postfix import PostfixServer
from servers.postgres import PostgresServer
from servers.proxies import HttpProxy, SocksProxy

# pytester runs pytest inside a test: tests/capture/test_pytest_plugin.py tests the plugin so.
pytest_plugins = ["pytester"]

# -- Hypothesis ------------------------------------------------------------------------------

# In CI every run tries the same examples, so a landing is never decided by the luck of the
# draw; on a developer's machine each run explores new ones (and remembers the failures).
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

# -- Postfix + Dovecot (real server, one per session) ----------------------------------------


@pytest.fixture(scope="session")
def postfix() -> Iterator[PostfixServer]:
    """A private Postfix (Dovecot SASL) on 127.0.0.1, started once for the session.

    Its base directory is made with ``tempfile`` rather than ``tmp_path_factory``: pytest keeps
    its own temporary tree at mode 0700 (and resets it at every session start), but Postfix's
    daemons run as ``postfix`` and ``nobody`` and must be able to enter the queue and Maildir.
    """
    base = Path(tempfile.mkdtemp(prefix="postwire-postfix-"))
    try:
        with PostfixServer(base) as server:
            yield server
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def postfix_inbox(postfix: PostfixServer) -> PostfixServer:
    """The session's Postfix with its Maildir emptied before the test."""
    postfix.clear()
    return postfix


@pytest.fixture(scope="session")
def dkim_oracle(postfix: PostfixServer) -> Iterator[DkimVerifier]:
    """OpenDKIM verifying what reaches ``postfix.dkim_port`` (see servers/opendkim.py)."""
    with DkimVerifier(postfix.milter_port) as verifier:
        yield verifier


# -- Dovecot's LMTP server, Dante (SOCKS5) and tinyproxy (HTTP CONNECT), one each per session ----


@pytest.fixture(scope="session")
def lmtp() -> Iterator[LmtpServer]:
    """A private Dovecot LMTP server on 127.0.0.1 and a Unix socket (see servers/lmtp.py)."""
    with LmtpServer() as server:
        yield server


@pytest.fixture
def lmtp_boxes(lmtp: LmtpServer) -> LmtpServer:
    """The session's LMTP server with every Maildir emptied before the test."""
    lmtp.clear()
    return lmtp


@pytest.fixture(scope="session")
def socks_proxy() -> Iterator[SocksProxy]:
    with SocksProxy() as proxy:
        yield proxy


@pytest.fixture(scope="session")
def http_proxy() -> Iterator[HttpProxy]:
    with HttpProxy() as proxy:
        yield proxy


# -- capture servers (postwire's own, per test) ------------------------------------------------


@pytest.fixture
def start_capture() -> Iterator[Callable[..., CaptureServer]]:
    """Start capture servers on 127.0.0.1 (any number); all are stopped after the test."""
    servers: list[CaptureServer] = []

    def start(**kwargs: Any) -> CaptureServer:
        server = CaptureServer("127.0.0.1", 0, **kwargs)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


# -- the outbox's databases: SQLite files, a private PostgreSQL 15 (one per session) ----------


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
