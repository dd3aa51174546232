"""Every exception postwire raises, at the bottom of the layers.

This module imports nothing from postwire but the :class:`Reply` value type,
so every layer (the pure core included) can raise these errors without an
import cycle.  ``postwire.errors`` is its public face.

The tree is split by *what failed* (connecting, TLS, authentication, the
sender, the recipients, the data, the protocol itself), and each error that
comes from a server reply carries that :class:`~postwire.Reply`.  Errors mix in
the builtin they really are (``ConnectionError``, ``TimeoutError``) so that
code which catches builtins keeps working.  Bad arguments are ``ValueError`` or
``TypeError`` and are raised before any byte is sent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

from .reply import Reply

__all__ = [
    "AuthenticationError",
    "CancelledSend",
    "CertificateError",
    "ConfigError",
    "ConnectError",
    "ConnectTimeout",
    "DataError",
    "EntryNotFound",
    "ExtensionNotSupported",
    "GreetingError",
    "HeloError",
    "LocalProtocolError",
    "MessageTooLarge",
    "NoCommonMechanism",
    "NoPasswordSource",
    "OutboxError",
    "PlaintextAuthRefused",
    "PossiblyDelivered",
    "ProtocolError",
    "RecipientsRefused",
    "ReplyError",
    "ReplySyntaxError",
    "SASLError",
    "SMTPError",
    "SenderRefused",
    "SendmailError",
    "ServerDisconnected",
    "StartTLSError",
    "StateConflict",
    "StorageError",
    "TLSError",
    "TLSRequired",
    "Timeout",
]


class SMTPError(Exception):
    """Root of postwire's errors.

    ``reply`` is the server reply that caused the error, when there is one;
    ``step`` names the protocol step (``"greeting"``, ``"EHLO"``, ``"MAIL"``...).
    """

    reply: Reply | None
    step: str

    def __init__(self, message: str, *, reply: Reply | None = None, step: str = "") -> None:
        super().__init__(message)
        self.reply = reply
        self.step = step

    @property
    def code(self) -> int | None:
        """The reply code, if a reply caused this error."""
        return self.reply.code if self.reply is not None else None

    @property
    def is_transient(self) -> bool:
        """True when trying again later may succeed (4xx, dropped connections, timeouts)."""
        if self.reply is not None:
            return self.reply.is_transient
        return isinstance(self, (ServerDisconnected, Timeout))

    @property
    def is_permanent(self) -> bool:
        """True for a 5xx reply: the same request will fail again."""
        return self.reply is not None and self.reply.is_permanent

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (type(self), str(self), self.__dict__))


def _rebuild(cls: type[SMTPError], message: str, state: dict[str, object]) -> SMTPError:
    err = cls.__new__(cls)
    Exception.__init__(err, message)
    err.__dict__.update(state)
    return err


def describe(step: str, reply: Reply) -> str:
    """The standard error text: which step failed and the server's whole reply."""
    text = reply.text.replace("\n", " / ")
    return f"{step} failed: server replied {reply.code} {text}".rstrip()


class ReplyError(SMTPError):
    """The server answered a command with an error reply."""

    reply: Reply

    def __init__(self, step: str, reply: Reply, message: str | None = None) -> None:
        super().__init__(message or describe(step, reply), reply=reply, step=step)


class ProtocolError(SMTPError):
    """The server broke the SMTP protocol (garbage, unsolicited lines, bad framing)."""


class ConnectError(SMTPError, ConnectionError):
    """The TCP connection could not be made."""


class ServerDisconnected(SMTPError, ConnectionError):
    """The server closed the connection (or it broke) while a reply was awaited."""


class PossiblyDelivered(ServerDisconnected):
    """The connection broke after the final ``.`` was sent and before its reply.

    The server may have accepted the message: do not resend blindly.

    Over LMTP, where each recipient has its own reply after the data (RFC 2033
    §4.2), what was learned before the break is kept: ``delivered`` lists the
    recipients whose reply was 2xx, ``refused`` those refused (at RCPT or after
    the data), and ``unknown`` those whose fate was lost with the connection.
    Over SMTP the one reply covers everyone: all three are empty.
    """

    delivered: tuple[str, ...] = ()
    refused: Mapping[str, Reply] = MappingProxyType({})
    unknown: tuple[str, ...] = ()


class Timeout(SMTPError, TimeoutError):
    """A network step took longer than its timeout; the connection was closed."""


class ConnectTimeout(Timeout, ConnectError):
    """Connecting took longer than the connect timeout."""


class CancelledSend(SMTPError):
    """The send was cancelled before the end of the message: nothing was delivered."""


class GreetingError(ReplyError):
    """The server's greeting was not 220 (for example 421 or 554)."""


class HeloError(ReplyError):
    """EHLO and HELO were both refused."""


class TLSError(SMTPError):
    """TLS could not be set up."""


class TLSRequired(TLSError):
    """TLS was required, but the server does not offer STARTTLS (possible stripping)."""


class PlaintextAuthRefused(TLSRequired):
    """Credentials would have gone out in clear text, so they were not sent.

    Raised on every path (clients, pools, the Racket layer) before AUTH on a
    connection without TLS, unless ``allow_plaintext_auth=True`` was given.
    """


class StartTLSError(TLSError, ReplyError):
    """The server refused the STARTTLS command."""


class CertificateError(TLSError):
    """The server's certificate did not verify."""


class AuthenticationError(ReplyError):
    """The server refused the credentials (or the SASL exchange broke down)."""


class ExtensionNotSupported(SMTPError):
    """The message or options need an SMTP extension the server does not offer."""


class MessageTooLarge(ExtensionNotSupported):
    """The message is larger than the server's advertised SIZE limit."""


class SenderRefused(ReplyError):
    """MAIL FROM was refused."""


class RecipientsRefused(SMTPError):
    """Every recipient was refused (or the policy refused a partial acceptance).

    ``refused`` maps each refused address to the server's reply.
    """

    def __init__(
        self, refused: Mapping[str, Reply], message: str | None = None, *, step: str = "RCPT"
    ) -> None:
        if message is None:
            parts = [f"{addr}: {r.code} {r.text}".rstrip() for addr, r in refused.items()]
            message = f"{step} failed: recipients refused: " + "; ".join(parts)
        first = next(iter(refused.values()), None)
        super().__init__(message, reply=first, step=step)
        self.refused: dict[str, Reply] = dict(refused)


class DataError(ReplyError):
    """DATA, BDAT or the end of the data was refused."""


class SendmailError(SMTPError, OSError):
    """The sendmail program failed (exit status and stderr in the text)."""

    def __init__(self, message: str, *, returncode: int | None = None, stderr: str = "") -> None:
        super().__init__(message, step="sendmail")
        self.returncode = returncode
        self.stderr = stderr


# --- errors that are not about a server's reply -------------------------------


class SASLError(ValueError):
    """The SASL exchange cannot go on (bad challenge, failed server proof...).

    The SMTP core answers it by cancelling the exchange with ``*``.
    """


class NoCommonMechanism(ValueError):
    """The server offers no mechanism that postwire can use with these credentials.

    ``offered`` holds the mechanisms the server advertised (upper case).
    """

    def __init__(self, offered: Iterable[str], usable: Iterable[str], detail: str = "") -> None:
        self.offered: tuple[str, ...] = tuple(offered)
        self.usable: tuple[str, ...] = tuple(usable)
        server = ", ".join(self.offered) if self.offered else "no mechanisms"
        message = (
            f"no SASL mechanism in common: the server offers {server}; "
            f"postwire could use {', '.join(self.usable)}"
        )
        super().__init__(f"{detail}: {message}" if detail else message)


class ReplySyntaxError(ValueError):
    """Bytes from the server that are not an SMTP reply (internal to the core).

    The connection turns it into a :class:`ProtocolError`.
    """


class LocalProtocolError(RuntimeError):
    """postwire itself tried something the protocol state does not allow (a bug)."""


class ConfigError(ValueError):
    """A configuration (a config file, an account, a URL, an environment variable) is unusable.

    The message names where the bad setting was found; it never shows a password.
    """


class NoPasswordSource(ConfigError):
    """A user name is configured, but nothing says where its password comes from."""


# --- the outbox (postwire.outbox): the queue, not the SMTP session ----------


class OutboxError(Exception):
    """Root of the outbox's errors: something about the queue failed, not an SMTP step.

    What the relay answered is never one of these: it is recorded on the entry
    (its state, each recipient's reply, the attempts).
    """


class EntryNotFound(OutboxError, LookupError):
    """No entry has that id (never put, or purged)."""


class StateConflict(OutboxError):
    """The entry's state does not allow that (hold a sent entry, cancel one being sent...).

    ``state`` is the state the entry was found in.
    """

    def __init__(self, message: str, *, state: str = "") -> None:
        super().__init__(message)
        self.state = state


class StorageError(OutboxError):
    """The outbox's database failed or cannot be reached (the cause is chained)."""
