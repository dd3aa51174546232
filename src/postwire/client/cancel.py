"""Cancelling a send from elsewhere, up to its commit point."""

from __future__ import annotations

import threading
from typing import Protocol

from .._core.errors import CancelledSend

__all__ = ["CancelHandle"]


class _Abortable(Protocol):
    def abort(self) -> None: ...


class CancelHandle:
    """Cancels a send from another thread (or task), as Racket's ``break-thread`` does.

    Pass it to ``send(..., cancel=handle)``.  ``cancel()`` aborts the
    connection at once if the message's end-of-message hook has not run yet:
    the server never sees the final ``.`` and keeps nothing.  Once the hook
    has run, ``cancel()`` returns ``False`` and the send completes.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stream: _Abortable | None = None
        self._cancelled = False
        self._committed = False

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def cancel(self) -> bool:
        """Cancel if still possible; returns whether the send was cancelled."""
        with self._lock:
            if self._committed:
                return False
            self._cancelled = True
            stream = self._stream
        if stream is not None:
            stream.abort()
        return True

    def _attach(self, stream: _Abortable) -> None:
        """Called by the client when the send starts on ``stream``."""
        with self._lock:
            self._stream = stream
            cancelled = self._cancelled
        if cancelled:
            stream.abort()

    def _commit(self) -> None:
        """Called by the driver right after the end-of-message hook returned."""
        with self._lock:
            self._check()
            self._committed = True

    def _check(self) -> None:
        if self._cancelled:
            raise CancelledSend("send cancelled before the end of the message", step="DATA")
