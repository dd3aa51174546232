"""A mailbox: one more SMTP port on the capture server, whose mail is kept apart.

Each mailbox listens on its own port (same loop, same store); messages that arrive there are
tagged with the mailbox's name, and the mailbox sees only those. This is how the pytest plugin
gives every test its own mailbox (mail that a background task sends late still lands in the
right test's mailbox, because it went to that test's port), and how a project can give each
app or team its own address on one catcher. Each mailbox has its own fault script.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from .faults import FaultScript, RecipientRule
from .message import CapturedMessage
from .parsed import ParsedMessage
from .store import MessageStore, StoredMessage

if TYPE_CHECKING:
    from .server import CaptureServer

__all__ = ["Mailbox", "find_codes", "find_links"]

DEFAULT_WAIT = 10.0
_LINK = re.compile(r"""https?://[^\s<>"')\]]+""", re.IGNORECASE)
_HREF = re.compile(r"""href\s*=\s*["']?(https?://[^"'\s>]+)""", re.IGNORECASE)


def find_links(message: CapturedMessage) -> list[str]:
    """Every http(s) link in the text and HTML parts, in order, without repeats."""
    parsed = ParsedMessage(message)
    found = [m.group(0).rstrip(".,;:!?") for m in _LINK.finditer(parsed.text)]
    found += [_unescape(m.group(1)) for m in _HREF.finditer(parsed.html)]
    return list(dict.fromkeys(found))


def _unescape(url: str) -> str:
    import html

    return html.unescape(url)


def find_codes(
    message: CapturedMessage, length: int | Sequence[int] = (4, 5, 6, 7, 8)
) -> list[str]:
    """Runs of digits of the given length(s) in the subject and text: one-time codes."""
    lengths = (length,) if isinstance(length, int) else tuple(length)
    parsed = ParsedMessage(message)
    text = f"{parsed.subject}\n{parsed.text or parsed.snippet}"
    found = [
        m.group(0) for m in re.finditer(r"(?<!\d)\d+(?!\d)", text) if len(m.group(0)) in lengths
    ]
    return list(dict.fromkeys(found))


class Mailbox:
    """A named SMTP port of a :class:`~postwire.capture.CaptureServer` and its messages.

    Made by :meth:`CaptureServer.open_mailbox`. ``host`` and ``port`` are where to send;
    :attr:`messages`, :meth:`wait_for` and the helpers see only this mailbox's mail.
    """

    def __init__(self, server: CaptureServer, name: str, store: MessageStore, port: int) -> None:
        self.server = server
        self.name = name
        self._store = store
        self.port = port
        self.faults = FaultScript()
        self._close: Callable[[], None] | None = None

    @property
    def host(self) -> str:
        """The address to send to."""
        return self.server.host

    def _mine(self, stored: StoredMessage) -> bool:
        return stored.captured.mailbox == self.name

    @property
    def messages(self) -> list[CapturedMessage]:
        """This mailbox's messages, oldest first."""
        return [m.captured for m in self._store.all() if self._mine(m)]

    def wait_for(self, count: int = 1, timeout: float = DEFAULT_WAIT) -> list[CapturedMessage]:
        """Wait for ``count`` messages here; :class:`TimeoutError` after ``timeout`` seconds."""
        return [m.captured for m in self._store.wait_for(count, timeout, self._mine)]

    def wait_for_message(
        self,
        *,
        to: str | None = None,
        subject: str | None = None,
        timeout: float = DEFAULT_WAIT,
    ) -> CapturedMessage:
        """The first message to ``to`` (an envelope recipient) whose subject contains
        ``subject``; waits up to ``timeout`` seconds."""

        def wanted(m: StoredMessage) -> bool:
            if not self._mine(m):
                return False
            if to is not None and to.lower() not in (r.lower() for r in m.captured.rcpt_tos):
                return False
            return subject is None or subject in m.parsed.subject

        return self._store.wait_for(1, timeout, wanted)[0].captured

    def latest(self, timeout: float = DEFAULT_WAIT) -> CapturedMessage:
        """The newest message, waiting up to ``timeout`` seconds for the first one."""
        return self.wait_for(1, timeout)[-1]

    def links(self, message: CapturedMessage | None = None) -> list[str]:
        """The links in ``message`` (default: the newest, waited for)."""
        return find_links(message or self.latest())

    def code(
        self, message: CapturedMessage | None = None, length: int | Sequence[int] = (4, 5, 6, 7, 8)
    ) -> str:
        """The one-time code in ``message`` (default: the newest); AssertionError unless one."""
        codes = find_codes(message or self.latest(), length)
        assert len(codes) == 1, f"expected one code, found {codes or 'none'}"
        return codes[0]

    def assert_sent_to(self, *addresses: str, timeout: float = DEFAULT_WAIT) -> None:
        """Assert that mail reached each address (envelope recipients), waiting if needed."""
        wanted = {a.lower() for a in addresses}

        def seen() -> set[str]:
            return {r.lower() for m in self.messages for r in m.rcpt_tos}

        try:
            self._store.wait_for(1, timeout, lambda m: self._mine(m) and wanted <= seen())
        except TimeoutError:
            raise AssertionError(
                f"no mail to {', '.join(sorted(wanted - seen()))} within {timeout:g} s "
                f"(mail went to: {', '.join(sorted(seen())) or 'nobody'})"
            ) from None

    def assert_header(
        self, name: str, expected: str, message: CapturedMessage | None = None
    ) -> None:
        """Assert that a header of ``message`` (default: the newest) equals ``expected``."""
        target = message or self.latest()
        got = ParsedMessage(target).header(name)
        assert got == expected, f"{name}: expected {expected!r}, got {got!r}"

    def clear(self) -> None:
        """Delete this mailbox's messages."""
        self._store.delete([m.id for m in self._store.all() if self._mine(m)])

    @contextmanager
    def faulty(self, script: FaultScript | None = None, **faults: Any) -> Iterator[FaultScript]:
        """Apply a fault script (or its fields as keywords) inside a ``with`` block.

        ``refuse_recipients`` may be given as ``{"*@bad.example": 550}``.
        """
        rules = faults.pop("refuse_recipients", None)
        if isinstance(rules, dict):
            faults["refuse_recipients"] = tuple(RecipientRule(p, c) for p, c in rules.items())
        elif rules is not None:
            faults["refuse_recipients"] = tuple(rules)
        new = script if script is not None else FaultScript(**faults)
        old, self.faults = self.faults, new
        try:
            yield new
        finally:
            self.faults = old

    # -- settings for frameworks -------------------------------------------------------------

    def django_settings(self) -> dict[str, Any]:
        """Django settings that send to this mailbox (for ``override_settings``).

        The backend is postwire's (:class:`postwire.django.EmailBackend`), a drop-in for
        Django's SMTP backend whose errors are ``smtplib``'s too, so a project tested with
        it runs the code it runs in production when it uses postwire, and code that
        catches ``smtplib`` exceptions keeps working when it does not.  The settings that
        could send elsewhere (``POSTWIRE_EMAIL``'s URL or account, a token, a client
        certificate) are cleared.
        """
        return {
            "EMAIL_BACKEND": "postwire.django.EmailBackend",
            "EMAIL_HOST": self.host,
            "EMAIL_PORT": self.port,
            "EMAIL_HOST_USER": "",
            "EMAIL_HOST_PASSWORD": "",
            "EMAIL_USE_TLS": False,
            "EMAIL_USE_SSL": False,
            "EMAIL_TIMEOUT": 10,
            "EMAIL_SSL_CERTFILE": None,
            "EMAIL_SSL_KEYFILE": None,
            "EMAIL_OAUTH2_TOKEN": None,
            "POSTWIRE_EMAIL": {},
        }

    def flask_config(self) -> dict[str, Any]:
        """Flask-Mail / Flask-Mailman settings that send to this mailbox (``app.config``)."""
        return {
            "MAIL_SERVER": self.host,
            "MAIL_PORT": self.port,
            "MAIL_USE_TLS": False,
            "MAIL_USE_SSL": False,
            "MAIL_USERNAME": None,
            "MAIL_PASSWORD": None,
            "MAIL_SUPPRESS_SEND": False,
        }

    def close(self) -> None:
        """Stop listening (the messages stay in the store)."""
        close, self._close = self._close, None
        if close is not None:
            close()

    def __enter__(self) -> Mailbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Mailbox {self.name!r} on {self.host}:{self.port}, {len(self.messages)} messages>"
