"""The live event stream of the web UI and API: server-sent events (HTML §9.2).

The store tells the :class:`EventHub` of every change, from whichever thread made it; the hub
gathers changes for a short moment and sends them, as ``text/event-stream`` frames, to every
subscriber on the web server's event loop. A burst larger than :data:`BURST` in one moment is
sent as one ``reload`` event instead of one ``new`` per message, so a fast sender cannot make
the browser (or the server) fall behind. When nobody listens, a change costs one lock.

Events: ``new`` (a Mailpit ``MessageSummary``), ``delete`` (``{"IDs": [...]}``), ``read``
(``{"IDs": [...], "Read": bool}``), ``truncate`` (everything deleted), ``reload`` (too many
changes: list again), and ``stats`` (``{"Total": n, "Unread": n}``) after each batch.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator

from .store import Change, MessageStore

__all__ = ["BURST", "EventHub"]

#: More new messages than this in one moment become a single ``reload`` event.
BURST = 50
#: How long changes are gathered before they are sent (seconds).
TICK = 0.1
#: A subscriber this many batches behind is sent ``reload`` and its backlog dropped.
_BACKLOG = 100


def frame(event: str, data: object) -> bytes:
    """One server-sent event (``event:`` and ``data:`` lines and a blank line)."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


class EventHub:
    """Fans store changes out to the event stream's subscribers (see the module doc)."""

    def __init__(self, store: MessageStore, loop: asyncio.AbstractEventLoop) -> None:
        self._store = store
        self._loop = loop
        self._lock = threading.Lock()
        self._pending: list[Change] = []
        self._scheduled = False
        self._queues: set[asyncio.Queue[bytes | None]] = set()
        self._unsubscribe = store.subscribe(self._on_change)

    def close(self) -> None:
        """Stop listening to the store and end every subscriber's stream."""
        self._unsubscribe()
        for queue in list(self._queues):
            queue.put_nowait(None)

    def _on_change(self, change: Change) -> None:
        with self._lock:
            if not self._queues:
                return
            self._pending.append(change)
            if self._scheduled:
                return
            self._scheduled = True
        self._loop.call_soon_threadsafe(self._loop.call_later, TICK, self._flush)

    def _flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
            self._scheduled = False
        data = self._render(pending)
        for queue in list(self._queues):
            if queue.qsize() > _BACKLOG:
                while not queue.empty():
                    queue.get_nowait()
                queue.put_nowait(frame("reload", {}))
            queue.put_nowait(data)

    def _render(self, pending: list[Change]) -> bytes:
        new = [c for c in pending if c.kind == "new" and c.message is not None]
        parts: list[bytes] = []
        if len(new) > BURST or any(c.kind == "truncate" for c in pending):
            parts.append(frame("truncate" if len(new) <= BURST else "reload", {}))
        else:
            for change in pending:
                if change.kind == "new" and change.message is not None:
                    m = change.message
                    parts.append(frame("new", m.parsed.summary_json(m.read)))
                elif change.kind == "delete":
                    parts.append(frame("delete", {"IDs": list(change.ids)}))
                elif change.kind == "read":
                    parts.append(frame("read", {"IDs": list(change.ids), "Read": change.read}))
        total, unread = self._store.counts()
        parts.append(frame("stats", {"Total": total, "Unread": unread}))
        return b"".join(parts)

    async def stream(self) -> AsyncIterator[bytes]:
        """The frames for one subscriber, until :meth:`close` (run on the hub's loop)."""
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        with self._lock:
            self._queues.add(queue)
        try:
            total, unread = self._store.counts()
            yield frame("stats", {"Total": total, "Unread": unread})
            while True:
                try:
                    data = await asyncio.wait_for(queue.get(), timeout=15.0)
                except asyncio.TimeoutError:
                    yield b": keep-alive\n\n"  # a comment line keeps proxies from timing out
                    continue
                if data is None:
                    return
                yield data
        finally:
            with self._lock:
                self._queues.discard(queue)
