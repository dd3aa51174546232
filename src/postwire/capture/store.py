"""The catcher's message store: ordered, indexed by ID, searchable, optionally on disk.

Messages live in memory, oldest first, each with an ID (URL-safe, random) and a read flag.
With a Maildir, each message is also a Maildir file (bytes as received) and its envelope and
session facts a JSON file beside it (``MAILDIR/postwire/NAME.json``, outside ``new``/``cur``/
``tmp`` so Maildir readers ignore it); :meth:`MessageStore.load` lists them again after a
restart. Listeners (the web UI's event stream) are told of every change. Safe to use from any
thread.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import threading
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from email.parser import BytesHeaderParser
from email.utils import getaddresses
from pathlib import Path
from typing import Any

from .maildir import create_maildir, deliver_to_maildir
from .message import CapturedMessage
from .parsed import ParsedMessage
from .search import parse_query

__all__ = ["Change", "MessageStore", "StoredMessage"]

log = logging.getLogger("postwire.capture")
_META = "postwire"


@dataclass
class StoredMessage:
    """A message in the store: what was captured, its parsed views, and whether it was read."""

    captured: CapturedMessage
    parsed: ParsedMessage
    read: bool = False

    @property
    def id(self) -> str:
        """The message's ID in the store, the web UI and the API."""
        return self.captured.id


@dataclass(frozen=True)
class Change:
    """What happened to the store: ``new`` (``message``), ``delete`` (``ids``), ``read``
    (``ids``, now read or not) or ``truncate`` (everything deleted)."""

    kind: str
    message: StoredMessage | None = None
    ids: tuple[str, ...] = ()
    read: bool = False


class MessageStore:
    """Captured messages, oldest first; see the module's description."""

    def __init__(self, maildir: str | os.PathLike[str] | None = None) -> None:
        self._maildir = Path(maildir) if maildir is not None else None
        self._order: list[StoredMessage] = []
        self._by_id: dict[str, StoredMessage] = {}
        self._cond = threading.Condition()
        self._listeners: list[Callable[[Change], None]] = []

    @property
    def maildir(self) -> Path | None:
        """The Maildir the store writes to, if any."""
        return self._maildir

    # -- changes -----------------------------------------------------------------------------

    def subscribe(self, listener: Callable[[Change], None]) -> Callable[[], None]:
        """Call ``listener`` with each :class:`Change`; returns a function that unsubscribes."""
        with self._cond:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._cond:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def _tell(self, change: Change) -> None:
        for listener in list(self._listeners):
            try:
                listener(change)
            except Exception:  # a broken listener must not lose a message
                log.exception("store listener failed")

    def add(self, message: CapturedMessage) -> StoredMessage:
        """Keep ``message`` (written to the Maildir first, when there is one)."""
        message_id = message.id or secrets.token_urlsafe(12)
        if self._maildir is not None:
            path = deliver_to_maildir(self._maildir, message.data)
            message = replace(message, id=message_id, path=path)
            self._write_meta(message)
        elif not message.id:
            message = replace(message, id=message_id)
        stored = StoredMessage(message, ParsedMessage(message))
        with self._cond:
            self._order.append(stored)
            self._by_id[message.id] = stored
            self._cond.notify_all()
        self._tell(Change("new", stored))
        return stored

    def delete(self, ids: Iterable[str] | None = None) -> list[str]:
        """Delete these messages (all with None), files included; returns the IDs deleted."""
        with self._cond:
            if ids is None:
                gone = self._order
                self._order = []
                self._by_id = {}
            else:
                wanted = set(ids)
                gone = [m for m in self._order if m.id in wanted]
                self._order = [m for m in self._order if m.id not in wanted]
                for m in gone:
                    del self._by_id[m.id]
        for m in gone:
            self._remove_files(m.captured)
        if ids is None:
            self._tell(Change("truncate"))
        elif gone:
            self._tell(Change("delete", ids=tuple(m.id for m in gone)))
        return [m.id for m in gone]

    def forget(self) -> None:
        """Empty the store in memory only (Maildir files stay)."""
        with self._cond:
            self._order = []
            self._by_id = {}
        self._tell(Change("truncate"))

    def mark_read(self, ids: Iterable[str] | None, read: bool = True) -> list[str]:
        """Mark these messages (all with None) read or unread; returns the IDs changed."""
        with self._cond:
            targets = (
                self._order if ids is None else [self._by_id[i] for i in ids if i in self._by_id]
            )
            changed = [m for m in targets if m.read != read]
            for m in changed:
                m.read = read
        if self._maildir is not None:
            for m in changed:  # kept across restarts too
                if m.captured.path is not None:
                    self._write_meta(m.captured, read=read)
        if changed:
            self._tell(Change("read", ids=tuple(m.id for m in changed), read=read))
        return [m.id for m in changed]

    # -- reading -----------------------------------------------------------------------------

    def get(self, message_id: str) -> StoredMessage | None:
        """The message with this ID (``latest``: the newest), or None."""
        with self._cond:
            if message_id == "latest":
                return self._order[-1] if self._order else None
            return self._by_id.get(message_id)

    def all(self) -> list[StoredMessage]:
        """Every message, oldest first (a copy)."""
        with self._cond:
            return list(self._order)

    def __len__(self) -> int:
        with self._cond:
            return len(self._order)

    def counts(self) -> tuple[int, int]:
        """(total, unread)."""
        with self._cond:
            return len(self._order), sum(1 for m in self._order if not m.read)

    def page(
        self, start: int = 0, limit: int = 50, query: str = ""
    ) -> tuple[int, list[StoredMessage]]:
        """Newest first: (how many match, the ``limit`` of them from ``start``)."""
        everything = self.all()
        everything.reverse()
        if query.strip():
            q = parse_query(query)
            everything = [m for m in everything if q.matches(m.parsed, m.read)]
        return len(everything), everything[start : start + limit]

    def wait_for(
        self,
        count: int,
        timeout: float,
        where: Callable[[StoredMessage], bool] | None = None,
    ) -> list[StoredMessage]:
        """Wait until at least ``count`` messages (satisfying ``where``) are kept.

        Returns them oldest first; raises :class:`TimeoutError` after ``timeout`` seconds.
        """

        def matching() -> list[StoredMessage]:
            return [m for m in self._order if where is None or where(m)]

        with self._cond:
            if not self._cond.wait_for(lambda: len(matching()) >= count, timeout):
                raise TimeoutError(
                    f"{len(matching())} of {count} messages arrived within {timeout:g} s"
                )
            return matching()

    # -- the Maildir -------------------------------------------------------------------------

    def _meta_path(self, path: Path) -> Path:
        assert self._maildir is not None
        return self._maildir / _META / f"{path.name}.json"

    def _write_meta(self, message: CapturedMessage, *, read: bool = False) -> None:
        assert message.path is not None
        meta = asdict(message)
        for key in ("data", "path"):
            meta.pop(key)
        meta["read"] = read
        meta["received_at"] = message.received_at.isoformat()
        meta["transcript"] = list(message.transcript)
        target = self._meta_path(message.path)
        target.parent.mkdir(mode=0o700, exist_ok=True)
        # Written in place (no rename): a half-written file after a crash is read as missing,
        # and the envelope is then taken from the message's headers.
        target.write_text(json.dumps(meta), encoding="utf-8")

    def _remove_files(self, message: CapturedMessage) -> None:
        if message.path is None or self._maildir is None:
            return
        for path in (message.path, self._meta_path(message.path)):
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            except OSError:
                log.exception("could not delete %s", path)

    def load(self) -> int:
        """Read the Maildir's messages into the store (oldest first); returns how many.

        A file without its JSON (put there by another program) gets its envelope from its
        From and To headers and its time from the file.
        """
        if self._maildir is None:
            return 0
        create_maildir(self._maildir)
        found: list[tuple[CapturedMessage, bool]] = []
        for sub in ("new", "cur"):
            for path in (self._maildir / sub).iterdir():
                if path.is_file() and not path.name.startswith("."):
                    try:
                        found.append(self._read(path))
                    except (OSError, ValueError):
                        log.exception("cannot read %s", path)
        found.sort(key=lambda item: (item[0].received_at, item[0].path or Path()))
        with self._cond:
            for message, read in found:
                stored = StoredMessage(message, ParsedMessage(message), read)
                self._order.append(stored)
                self._by_id[message.id] = stored
            self._cond.notify_all()
        return len(found)

    def _read(self, path: Path) -> tuple[CapturedMessage, bool]:
        data = path.read_bytes()
        meta_path = self._meta_path(path)
        meta: dict[str, Any] = {}
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):  # none, or cut short by a crash
            meta = {}
        if isinstance(meta, dict) and "mail_from" in meta:
            peer = meta.get("peer")
            message = CapturedMessage(
                mail_from=meta["mail_from"],
                rcpt_tos=list(meta["rcpt_tos"]),
                data=data,
                peer=(str(peer[0]), int(peer[1])) if peer else None,
                tls=bool(meta["tls"]),
                auth_user=meta.get("auth_user"),
                received_at=datetime.fromisoformat(meta["received_at"]),
                mail_options=list(meta.get("mail_options", [])),
                rcpt_options=list(meta.get("rcpt_options", [])),
                path=path,
                helo=meta.get("helo"),
                tls_version=meta.get("tls_version"),
                tls_cipher=meta.get("tls_cipher"),
                transcript=tuple(meta.get("transcript", ())),
                mailbox=meta.get("mailbox"),
                id=str(meta.get("id") or secrets.token_urlsafe(12)),
            )
            return message, bool(meta.get("read", False))
        head = BytesHeaderParser().parsebytes(data)
        senders = getaddresses([str(v) for v in head.get_all("From") or []])
        named = (head.get_all("To") or []) + (head.get_all("Cc") or [])
        rcpts = getaddresses([str(v) for v in named])
        message = CapturedMessage(
            mail_from=senders[0][1] if senders else "",
            rcpt_tos=[a for _, a in rcpts if a],
            data=data,
            peer=None,
            tls=False,
            auth_user=None,
            received_at=datetime.fromtimestamp(path.stat().st_mtime, timezone.utc),
            path=path,
            id=secrets.token_urlsafe(12),
        )
        self._write_meta(message)  # the same ID after the next restart
        return message, False
