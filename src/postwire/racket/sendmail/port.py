"""The text stream onto sendmail's standard input (Racket's output port)."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from .job import SendmailJob

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

__all__ = ["SendmailPort"]


class _PipeWriter(io.RawIOBase):
    """The raw layer under :class:`SendmailPort`: bytes go to sendmail's stdin."""

    def __init__(self, job: SendmailJob) -> None:
        super().__init__()
        self._job = job

    def writable(self) -> bool:
        return True

    def write(self, b: ReadableBuffer, /) -> int:
        if self.closed:
            raise ValueError("write to a closed sendmail port")
        return self._job.write_some(b)


class SendmailPort(io.TextIOWrapper):
    """A text stream onto sendmail's standard input (Racket's output port).

    Write the body to it (UTF-8, ``"\\n"`` written as is) and close it: closing
    waits for sendmail to exit and raises :class:`~postwire.errors.SendmailError`
    when it failed.  Used as a context manager it closes at the end of the
    block, unless the block raised: then it calls :meth:`abort`, so a message
    cut short is not sent.
    """

    def __init__(self, job: SendmailJob) -> None:
        self._job = job
        super().__init__(
            io.BufferedWriter(_PipeWriter(job)), encoding="utf-8", errors="strict", newline="\n"
        )

    def close(self) -> None:
        """Finish the message: flush, close sendmail's input and wait for it."""
        if self.closed:
            return
        try:
            super().close()
        finally:
            self._job.finish()

    def abort(self) -> None:
        """Throw the message away: sendmail is killed before it reaches the end.

        Postfix's sendmail then queues nothing (the tests check this).
        """
        self._job.abort()
        if not self.closed:
            super().close()

    def __exit__(self, *exc_info: object) -> None:
        # A failure while writing abandons the message (sendmail is killed).
        if exc_info[0] is None:
            self.close()
        else:
            self.abort()
