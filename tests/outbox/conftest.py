"""Fixtures of the outbox tests: the scripted relay (tests/servers/relay.py).

The real databases (``postgres``, ``outbox_url``) are in tests/conftest.py: the Django
and logging tests put into the outbox too."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from servers.relay import ScriptedRelay


@pytest.fixture
def relay() -> Iterator[ScriptedRelay]:
    with ScriptedRelay() as server:
        yield server
