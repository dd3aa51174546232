"""The outbox: durable delivery that never loses mail (SQLite embedded, PostgreSQL shared).

An application puts messages in (`Outbox.put`, durable once it returns) and moves on;
workers (`Outbox.work`, ``postwire outbox work``) deliver them through the relays of
the config file, retry what the relay defers, and never lose a message when a process dies,
the database restarts or the relay restarts.  See ARCHITECTURE.md for the states, the
leases and the commit point.
"""

from __future__ import annotations

from .aio import AsyncOutbox
from .limits import RelayLimits
from .outbox import Outbox
from .policy import RetryPolicy
from .records import Attempt, Entry, Recipient
from .states import RecipientState, State
from .storage import RelayStatus, default_url

__all__ = [
    "AsyncOutbox",
    "Attempt",
    "Entry",
    "Outbox",
    "Recipient",
    "RecipientState",
    "RelayLimits",
    "RelayStatus",
    "RetryPolicy",
    "State",
    "default_url",
]
