"""The SMTP client for one server connection, over the sans-IO core."""

from __future__ import annotations

import functools
import itertools
import logging
import socket
import ssl
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence

from ..._core import procedures
from ..._core.batch import send_batch
from ..._core.connection import SMTPConnection
from ..._core.dsn import DSN
from ..._core.envelope import SendResult
from ..._core.errors import AuthenticationError, CancelledSend, SMTPError, Timeout, TLSError
from ..._core.message import PreparedMessage
from ..._core.names import ehlo_name
from ..._core.outcomes import not_sent
from ..._core.reply import Reply
from ..._net.aio import open_stream
from ..._net.tls import explain_tls_error
from .._concurrency import AsyncExclusive, acomplete_after_commit, aresolve_token
from ..base import BaseClient, greeting_hint
from ..cancel import CancelHandle
from .driver import AsyncDriver

__all__ = ["AsyncClient"]

logger = logging.getLogger("postwire")

#: Messages pipelined per run by ``send_many``; outcomes are handed out between runs.
RUN_LENGTH = 64

Outcome = SendResult | BaseException


class AsyncClient(BaseClient):
    """An SMTP client for one server connection.

    Use it as a context manager: it connects (greeting, EHLO, STARTTLS,
    AUTH) on entry and sends QUIT on exit::

        async with AsyncClient("mail.example.com", 587, username="me", password=pw) as smtp:
            result = await smtp.send(msg)

    The arguments are described in :class:`~postwire.client.base.BaseClient`.
    """

    _driver: AsyncDriver | None = None
    _busy: AsyncExclusive

    def _new_exclusive(self) -> AsyncExclusive:
        # Each operation (connect, a send, a run of send_many, NOOP, RSET, QUIT) has the
        # connection to itself: two tasks (or threads) sending at once wait their turn
        # instead of interleaving commands on one session.
        return AsyncExclusive()

    # -- connection ------------------------------------------------------------------------

    def tls_info(self) -> dict[str, object] | None:
        """TLS version, cipher and the server certificate (dict and DER), or None."""
        return self._driver.stream.tls_info() if self._driver is not None else None

    async def connect(self) -> Reply:
        """Connect, read the greeting, EHLO, STARTTLS and AUTH as configured.

        Returns the last EHLO (or HELO) reply.
        """
        async with self._busy:
            return await self._connect()

    async def _connect(self) -> Reply:
        if self.connected:
            raise RuntimeError("already connected")
        stream = await open_stream(
            self.host, self.port, self.timeouts.connect, self.source_address, self.proxy
        )
        self._tracer.note(f"connected to {stream.peer}" + (" (proxy)" if self.proxy else ""))
        conn = SMTPConnection(lmtp=self.lmtp)
        driver = AsyncDriver(stream, conn, self.timeouts, self._tracer, self._starttls_upgrade)
        self._driver, self._conn = driver, conn
        try:
            if self.tls == "implicit":
                await self._handshake(self.timeouts.connect, implicit=True)
                conn.implicit_tls()
                self._tracer.note("TLS started")
            # socket.gethostname() reads a kernel value: it never blocks on DNS.
            name = self.local_hostname or ehlo_name(socket.gethostname(), stream.local_address)
            self.local_hostname = name
            try:
                reply = await driver.run(procedures.greet(conn, name))
            except Timeout as exc:
                raise greeting_hint(exc, self) from None
            if self._wants_starttls(conn):
                reply = await driver.run(procedures.starttls(conn, name))
            if self._username is not None:
                await self._login(driver, conn)
        except BaseException:
            stream.close()
            self._driver = self._conn = None
            raise
        self.ehlo_reply = reply
        return reply

    async def _login(self, driver: AsyncDriver, conn: SMTPConnection) -> None:
        # A token provider is called right before AUTH, and once more if the
        # server refuses the token (it may have expired in between).
        provider = self._oauth2_token if callable(self._oauth2_token) else None
        for attempt in (1, 2):
            token = await aresolve_token(provider()) if provider is not None else self._oauth2_token
            mechanism = self._mechanism(conn, self._check_token(token))
            try:
                await driver.run(procedures.authenticate(conn, mechanism))
                return
            except AuthenticationError:
                if attempt == 2 or provider is None or not self.connected:
                    raise

    async def _handshake(self, timeout: float | None, *, implicit: bool) -> None:
        assert self._driver is not None
        try:
            await self._driver.stream.start_tls(
                self._context(), self.server_hostname or self.host, timeout
            )
        except (ssl.SSLError, ssl.CertificateError) as exc:
            raise explain_tls_error(
                exc, self.host, self.port, implicit=implicit, server_hostname=self.server_hostname
            ) from exc
        except OSError as exc:
            raise TLSError(
                f"TLS handshake with {self.host}:{self.port} failed: {exc}", step="TLS"
            ) from exc
        self._check_pin(self.tls_info())

    async def _starttls_upgrade(self) -> None:
        await self._handshake(self.timeouts.command, implicit=False)

    def _require(self) -> AsyncDriver:
        if self._driver is None or not self.connected:
            raise RuntimeError(
                f"not connected: use the {type(self).__name__} as a context manager "
                "or call connect()"
            )
        return self._driver

    # -- sending ---------------------------------------------------------------------------

    async def send(
        self,
        message: object,
        *,
        sender: str | None = None,
        recipients: Sequence[str] | None = None,
        mail_options: Mapping[str, str | None] | None = None,
        rcpt_options: Mapping[str, str | None] | None = None,
        end_of_message: Callable[[], object] | None = None,
        cancel: CancelHandle | None = None,
        deadline: float | None = None,
        dsn: DSN | None = None,
        require_tls: bool = False,
    ) -> SendResult:
        """Send one message; returns the accepted and refused recipients.

        ``message`` is an :class:`email.message.EmailMessage` (its envelope
        comes from its headers and its Bcc fields are not sent), or bytes /
        a binary file / an iterable of bytes with CRLF lines (the asyncio
        client also takes an async iterable), and then ``sender`` and
        ``recipients`` are required.  Raises
        :class:`~postwire.RecipientsRefused` when no recipient is accepted,
        and ``ValueError`` for bad input before anything is sent.

        ``end_of_message`` runs after the content and before the final
        ``.`` (for the asyncio client it may be a coroutine function).
        Until it has run, ``cancel`` (a :class:`CancelHandle`) lets another
        thread cancel the send, and so does cancelling the asyncio task that
        awaits it; after it, the send completes.  ``deadline`` bounds the
        whole send in seconds.

        ``dsn`` asks for Delivery Status Notifications (:class:`~postwire.DSN`,
        RFC 3461); ``require_tls`` sends REQUIRETLS (RFC 8689): only over TLS, to a
        server that offers it, which must then keep TLS on every later hop.  Both
        are refused before MAIL when the server cannot honour them.
        """
        prepared = self._prepare(
            message, sender, recipients, mail_options, rcpt_options, dsn, require_tls
        )
        async with self._busy:
            return await self._send(prepared, end_of_message, cancel, deadline)

    async def _send(
        self,
        prepared: PreparedMessage,
        end_of_message: Callable[[], object] | None,
        cancel: CancelHandle | None,
        deadline: float | None,
    ) -> SendResult:
        driver = self._require()
        if cancel is not None:
            cancel._attach(driver.stream)
        driver.start_deadline(deadline if deadline is not None else self.timeouts.total)
        try:
            return await acomplete_after_commit(
                driver.run(
                    self._transaction(driver.conn, prepared),
                    size=prepared.envelope.size or 0,
                    hook=end_of_message,
                    cancel=cancel,
                ),
                driver,
            )
        except (OSError, SMTPError) as exc:
            if cancel is not None and cancel.cancelled:
                raise CancelledSend(
                    "send cancelled before the end of the message: nothing was delivered",
                    step="DATA",
                ) from exc
            raise
        finally:
            driver.deadline = None

    async def send_many(
        self,
        messages: Iterable[object],
        *,
        window: int = 8,
        end_of_message: Callable[[int], object] | None = None,
    ) -> list[Outcome]:
        """Send several messages over this connection; one outcome per message, in order.

        Each item is an ``EmailMessage`` or a ``(message, sender,
        recipients)`` tuple.  With PIPELINING the messages are pipelined
        (one round trip per message; with CHUNKING too, up to ``window``
        messages in flight).  An outcome is a :class:`SendResult` or the
        error for that message: a refused message does not stop the others;
        a broken connection does, and the messages not sent get its error.

        ``end_of_message``, when given, is called with a message's index in
        ``messages`` after its content and right before its final ``.`` (or
        ``BDAT ... LAST``), as ``send``'s hook is (for the asyncio client it
        may be a coroutine function): a queue records there that the message
        may be delivered from now on.  An exception from it cancels that
        message and closes the connection; raise
        :class:`~postwire.errors.CancelledSend` to have it reported as that
        message's outcome, the earlier messages keeping theirs and the later
        ones reported not sent.
        """
        return [
            outcome
            async for outcome in self.send_many_iter(
                messages, window=window, end_of_message=end_of_message
            )
        ]

    async def send_many_iter(
        self,
        messages: Iterable[object],
        *,
        window: int = 8,
        end_of_message: Callable[[int], object] | None = None,
    ) -> AsyncIterator[Outcome]:
        """:meth:`send_many`, handing out each outcome as soon as it is known.

        Messages are pipelined in runs of :data:`RUN_LENGTH`, so outcomes come
        out while later messages are still being read from ``messages``.
        """
        self._require()
        items = self._prepared_items(enumerate(messages))
        broken: BaseException | None = None
        while run := list(itertools.islice(items, RUN_LENGTH)):
            outcomes: dict[int, Outcome] = {}
            if broken is not None:
                outcomes.update((i, not_sent(broken)) for i, _ in run)
            else:
                # The connection is held for one run, not across the yields below: the
                # consumer may use the client between runs, or stop iterating at any time.
                async with self._busy:
                    broken = await self._run_once(run, outcomes, window, end_of_message)
            for index, _ in run:
                yield outcomes[index]

    async def _run_once(
        self,
        run: list[tuple[int, PreparedMessage | BaseException]],
        outcomes: dict[int, Outcome],
        window: int,
        end_of_message: Callable[[int], object] | None,
    ) -> BaseException | None:
        """One run, resent in lock-step on a new connection if pipelining broke it."""
        self._require()
        pipelined = self._pipelines()
        broken = await self._send_run(run, outcomes, window, end_of_message)
        redo = self._pipelining_fallback(broken, pipelined, run, outcomes)
        if redo is None:
            return broken
        try:
            self.close()
            await self._connect()
        except (SMTPError, OSError) as exc:
            return exc
        return await self._send_run(redo, outcomes, window, end_of_message)

    async def _send_run(
        self,
        run: list[tuple[int, PreparedMessage | BaseException]],
        outcomes: dict[int, Outcome],
        window: int,
        end_of_message: Callable[[int], object] | None = None,
    ) -> BaseException | None:
        """Send one run of messages; returns the error that broke the connection, if any."""
        driver = self._require()
        try:
            if self._pipelines():
                await driver.run(
                    send_batch(
                        driver.conn, iter(run), outcomes.__setitem__,
                        chunking=self.chunking, window=window,
                    ),
                    message_hook=end_of_message,
                )  # fmt: skip
            else:
                for index, item in run:
                    if isinstance(item, BaseException):
                        outcomes[index] = item
                        continue
                    hook = None
                    if end_of_message is not None:
                        hook = functools.partial(end_of_message, index)
                    try:
                        outcomes[index] = await self._send_one(driver, item, hook)
                    except (SMTPError, OSError) as exc:
                        # The message whose own transaction broke the connection keeps its
                        # error (PossiblyDelivered after the final "."); the rest were not sent.
                        outcomes[index] = exc
                        raise
        except (SMTPError, OSError) as exc:
            for index, _ in run:
                outcomes.setdefault(index, not_sent(exc))
            return exc
        return None

    async def _send_one(
        self,
        driver: AsyncDriver,
        prepared: PreparedMessage,
        hook: Callable[[], object] | None = None,
    ) -> SendResult | SMTPError:
        """One transaction; a refusal is returned, a broken connection raised."""
        try:
            return await driver.run(
                self._transaction(driver.conn, prepared),
                size=prepared.envelope.size or 0,
                hook=hook,
            )
        except SMTPError as exc:
            if not self.connected:
                raise
            return exc

    # -- other commands --------------------------------------------------------------------

    async def noop(self) -> Reply:
        """NOOP: checks that the session is alive."""
        async with self._busy:
            driver = self._require()
            return await driver.run(procedures.noop(driver.conn))

    async def rset(self) -> Reply | None:
        """RSET: abandon the current transaction, if the session allows it."""
        async with self._busy:
            driver = self._require()
            return await driver.run(procedures.reset(driver.conn))

    async def quit(self) -> Reply | None:
        """Send QUIT (errors ignored) and close the connection."""
        async with self._busy:
            driver = self._driver
            if driver is None:
                return None
            reply = None
            try:
                if self.connected:
                    reply = await driver.run(procedures.quit(driver.conn))
            except (SMTPError, OSError) as exc:
                logger.debug("QUIT failed (ignored): %s", exc)
            finally:
                self.close()
            return reply

    def close(self) -> None:
        """Close the connection without QUIT."""
        if self._driver is not None:
            self._driver.stream.close()
            self._driver = self._conn = None

    async def __aenter__(self) -> AsyncClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        # After success or a refusal the session is sound: QUIT.  After anything
        # else (a local error, a cancellation) close at once.
        if exc_info[1] is None or isinstance(exc_info[1], SMTPError):
            await self.quit()
        else:
            self.close()
