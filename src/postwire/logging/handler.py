"""``SMTPHandler``: log records by e-mail, batched and rate-limited, off the logging thread.

The arguments of :class:`logging.handlers.SMTPHandler` keep their meaning (TLS aside, see
:mod:`.destination`), so a configuration written for the stdlib handler works by changing
the class name.  What differs is when and how mail goes: ``emit()`` formats the record and
queues it; a background thread (:mod:`.worker`) gathers a burst into one message
(:mod:`.batching`), respects the rate limit, and sends with a verified-TLS
:class:`~postwire.Client`, or puts it into a durable outbox (``outbox=``; :mod:`.delivery`).
The full reference is ``docs/logging.md``.
"""

from __future__ import annotations

import logging  # the standard library's: imports are absolute, postwire.logging is this package
import math
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from .._core.message import prepare_message
from ..config import from_account
from .batching import Batch, Batcher, BatchSettings
from .compose import build_message, subject_line
from .delivery import ClientDelivery, Delivery, OutboxDelivery, worth_retrying
from .destination import resolve_destination
from .records import DropPolicy
from .worker import Worker

__all__ = ["SMTPHandler"]


def _records(count: int) -> str:
    return f"{count} log record" if count == 1 else f"{count} log records"


class SMTPHandler(logging.Handler):
    """A logging handler that mails records in batches, never blocking the thread that logs.

    Where to send, as for :class:`logging.handlers.SMTPHandler`, or postwire's way:

    Args:
        mailhost: the server, ``"host"`` or ``(host, port)`` (port 25 by default).
        fromaddr: the From address (default: the ``from`` of ``url`` or ``account``).
        toaddrs: the recipients, a string or a list of strings.
        subject: the subject; the number of records (and of records dropped) is added.
        credentials: ``(username, password)`` for AUTH, only ever sent over TLS unless
            ``client_options`` has ``allow_plaintext_auth=True``.
        secure: ``()``, ``(keyfile,)`` or ``(keyfile, certfile)``: a client certificate
            to present.  TLS does not depend on it: STARTTLS is always required and the
            server's certificate verified (``client_options={"tls": ...}`` to change that).
        timeout: seconds for each network step (default 5, or what ``url``/``account`` say).
        url: an SMTP URL instead of ``mailhost`` (``smtps://user:pw@host``, ``?cafile=``...).
        account: a config-file account instead (:func:`postwire.config.from_account`).
        config: the config file to read ``account`` from (default: the usual one).
        client_options: keyword arguments of :class:`~postwire.Client`, applied last
            (``tls``, ``cafile``, ``oauth2_token``, ``tls_fingerprint``, ``proxy``...).
        level: the handler's level.
        batch_delay: seconds a message waits after its first record for more records.
        batch_max_records: the most records in one message; a message goes as soon as this
            or ``batch_max_chars`` is reached.
        batch_max_chars: the most characters of formatted records in one message; a longer
            record is cut.
        rate_limit: at most this many messages in any ``rate_period`` seconds (None: no
            limit); records wait in the queue meanwhile.
        rate_period: the period of ``rate_limit``, in seconds.
        queue_max_records: the most records waiting to be sent.
        queue_max_chars: the most characters of formatted records waiting to be sent.
        drop: which records go when the queue is full: ``"newest"`` (default: keep the
            start of a storm) or ``"oldest"``; the next message says how many were dropped.
        retry_delay: seconds before a retry after a temporary failure, doubled after each
            further failure (ten minutes at most).
        flush_timeout: the longest :meth:`flush` and :meth:`close` wait, in seconds.
        outbox: deliver through postwire's durable outbox instead of connecting: an
            :class:`~postwire.outbox.Outbox`, an outbox URL (``sqlite:///...``,
            ``postgresql://...``) or True (the default outbox).  Each message is then
            ``put`` by the background thread (batching and rate limit unchanged) and a
            worker (``postwire outbox work``) sends it, retrying as the relay allows.
            ``account`` is then the entry's route (the config-file account the worker
            sends through, and ``fromaddr``'s default); ``mailhost``, ``url``,
            ``credentials``, ``secure``, ``timeout`` and ``client_options`` are the
            worker's business and refused here.

    Counters (read-only): :attr:`messages_sent`, :attr:`records_sent`,
    :attr:`records_dropped`, :attr:`send_failures`, :attr:`records_queued`.
    """

    def __init__(
        self,
        mailhost: str | Sequence[Any] | None = None,
        fromaddr: str | None = None,
        toaddrs: str | Sequence[str] = (),
        subject: str = "Log records",
        credentials: Sequence[str] | None = None,
        secure: Sequence[str] | None = None,
        timeout: float | None = None,
        *,
        url: str | None = None,
        account: str | None = None,
        config: str | None = None,
        client_options: Mapping[str, Any] | None = None,
        level: int | str = logging.NOTSET,
        batch_delay: float = 5.0,
        batch_max_records: int = 500,
        batch_max_chars: int = 500_000,
        rate_limit: int | None = 5,
        rate_period: float = 60.0,
        queue_max_records: int = 10_000,
        queue_max_chars: int = 5_000_000,
        drop: DropPolicy = "newest",
        retry_delay: float = 5.0,
        flush_timeout: float = 10.0,
        outbox: Any = None,
    ) -> None:
        super().__init__(level)
        if not 0 < flush_timeout < math.inf:
            raise ValueError(f"flush_timeout must be positive seconds, not {flush_timeout!r}")
        self.flush_timeout = flush_timeout
        self.settings = BatchSettings(
            delay=batch_delay,
            max_records=batch_max_records,
            max_chars=batch_max_chars,
            rate_limit=rate_limit,
            rate_period=rate_period,
            queue_records=queue_max_records,
            queue_chars=queue_max_chars,
            drop=drop,
            retry_delay=retry_delay,
        )
        delivery: Delivery
        if outbox is None or outbox is False:
            destination = resolve_destination(
                mailhost=mailhost,
                credentials=credentials,
                secure=secure,
                timeout=timeout,
                url=url,
                account=account,
                config=config,
                client_options=client_options,
            )
            named = destination.sender
            delivery = ClientDelivery(destination.options, destination.target)
        else:
            unused = {
                "mailhost": mailhost,
                "url": url,
                "credentials": credentials,
                "secure": secure,
                "timeout": timeout,
                "client_options": client_options,
            }
            for name, value in unused.items():
                if value is not None:
                    raise ValueError(
                        f"{name}= has no use with outbox=: the outbox's worker connects "
                        "(its relays; account= names the route)"
                    )
            named = None
            if not fromaddr and account is not None:
                named = from_account(account, config=config).sender
            delivery = OutboxDelivery(outbox, route=account)
        sender = fromaddr or named
        if not sender:
            raise ValueError("fromaddr is required (or a url/account that names a sender)")
        self.fromaddr: str = sender
        self.toaddrs: list[str] = [toaddrs] if isinstance(toaddrs, str) else list(toaddrs)
        if not self.toaddrs:
            raise ValueError("toaddrs names no recipient")
        self.subject = subject
        # Addresses and subject are checked now, as a message would be: a mistake shows at
        # configuration time, not as a failure report once the application runs.
        prepare_message(build_message(Batch(()), **self._addressing(subject_line(subject, 0, 0))))
        # The one seam between batching and the network: a client, or the durable outbox.
        self._delivery = delivery
        self._worker = Worker(
            Batcher(self.settings),
            self._send,
            worth_retrying,
            self.handleSendError,
            name=f"postwire.logging to {delivery.target}",
        )

    # -- what logging calls ----------------------------------------------------------------

    def handle(self, record: logging.LogRecord) -> bool:
        # The sending thread's own records (postwire's loggers, while it sends) are never
        # mailed: a send must not cause a send.  Checked before the handler lock is taken,
        # so the thread never waits for a lock that flush() or close() callers may hold.
        if self._worker.owns_current_thread():
            return False
        return super().handle(record)

    def emit(self, record: logging.LogRecord) -> None:
        """Format ``record`` and queue it; never waits for the network."""
        try:
            self._worker.submit(self.format(record))
        except RecursionError:  # as the stdlib handlers do
            raise
        except Exception:
            self.handleError(record)

    def flush(self) -> None:
        """Send what is queued now (no batch delay), waiting at most ``flush_timeout``."""
        self.send_pending()

    def send_pending(self, timeout: float | None = None) -> bool:
        """:meth:`flush`, saying whether every record queued before the call went.

        Waits at most ``timeout`` seconds (default ``flush_timeout``).  Returns False at
        once when a send fails or the rate limit holds the next message back.
        """
        return self._worker.flush(self.flush_timeout if timeout is None else timeout)

    def close(self) -> None:
        """Send what is left and stop the thread, waiting at most ``flush_timeout``.

        Past the rate limit, one last message goes with what fits.  Records logged after
        close are dropped (counted).  ``logging.shutdown`` (at exit) calls this.
        """
        try:
            left = self._worker.close(self.flush_timeout)
            if left and self._worker.claim_report():
                self._say(
                    f"closed with {_records(left)} not yet sent to {self.target}: no answer "
                    f"within flush_timeout={self.flush_timeout:g}s"
                )
            elif isinstance(self._delivery, OutboxDelivery):
                # Only once the thread is done with it: a put still stuck in the database
                # holds the outbox's lock, and close() must not wait for it.
                self._delivery.close()
        finally:
            super().close()

    # -- hooks -------------------------------------------------------------------------------

    def subject_for(self, records: int, dropped: int) -> str:
        """The Subject of a message with ``records`` records; override to change it."""
        return subject_line(self.subject, records, dropped)

    def handleSendError(self, error: BaseException, records: int, kept: bool) -> None:
        """Report a failed send, the first of a streak of failures: one line on stderr.

        Called in the sending thread; later failures of the streak are only counted
        (:attr:`send_failures`) until a message goes through.  Silent when
        ``logging.raiseExceptions`` is false, as :meth:`logging.Handler.handleError` is.
        Override to report elsewhere (not through this handler's own logger).
        """
        fate = "kept for another try" if kept else "dropped"
        reason = " ".join(f"{type(error).__name__}: {error}".split())
        self._say(
            f"could not send {_records(records)} to {self.target} ({fate}): {reason} "
            "[further failures are counted, not printed, until a message goes through]"
        )

    # -- counters ----------------------------------------------------------------------------

    @property
    def target(self) -> str:
        """Where messages go (``host:port``)."""
        return self._delivery.target

    @property
    def messages_sent(self) -> int:
        """Messages the server accepted."""
        return self._worker.messages_sent

    @property
    def records_sent(self) -> int:
        """Records in the messages the server accepted."""
        return self._worker.records_sent

    @property
    def records_dropped(self) -> int:
        """Records lost: queue full, a send failed for good, past close, or cut at close."""
        return self._worker.records_dropped

    @property
    def send_failures(self) -> int:
        """Sends that failed (each attempt counts once)."""
        return self._worker.send_failures

    @property
    def records_queued(self) -> int:
        """Records waiting to be sent (at most ``queue_max_records``)."""
        return self._worker.records_queued

    @property
    def chars_queued(self) -> int:
        """Characters of the records waiting (at most ``queue_max_chars``)."""
        return self._worker.chars_queued

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.target} ({logging.getLevelName(self.level)})>"

    # -- internals ---------------------------------------------------------------------------

    def _addressing(self, subject: str) -> dict[str, Any]:
        return {"sender": self.fromaddr, "recipients": self.toaddrs, "subject": subject}

    def _send(self, batch: Batch) -> None:
        subject = self.subject_for(len(batch.entries), batch.dropped)
        self._delivery.deliver(build_message(batch, **self._addressing(subject)))

    @staticmethod
    def _say(text: str) -> None:
        if not logging.raiseExceptions or sys.stderr is None:
            return
        try:
            sys.stderr.write(f"postwire.logging.SMTPHandler: {text}\n")
            sys.stderr.flush()
        except (OSError, ValueError):  # a closed or broken stderr: nothing more to do
            pass
