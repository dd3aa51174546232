"""The bounded queue of formatted records between ``emit()`` and the sending thread.

Pure: no thread, socket or clock of its own (times are passed in), so the drop policy is
tested on values.  The queue is bounded twice, in records and in characters, so that neither
a storm of small records nor a few huge ones can grow memory without limit; a record longer
than one message may hold is cut (:func:`truncate`) before it is queued.

Every record gets a sequence number when it arrives.  The queue stays sorted by it (records
given back after a failed send go to the front, and they are the oldest), which is how
``flush()`` knows when everything logged before it has left.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, get_args

__all__ = ["DROP_POLICIES", "DropPolicy", "Entry", "RecordQueue", "truncate"]

#: Which records go when the queue is full: ``"newest"`` keeps the oldest (the start of a
#: storm, usually its cause), ``"oldest"`` keeps the most recent ones.
DropPolicy = Literal["newest", "oldest"]
DROP_POLICIES: tuple[str, ...] = get_args(DropPolicy)


@dataclass(frozen=True, slots=True)
class Entry:
    """One formatted record: its sequence number, its text, and when it was queued."""

    seq: int
    text: str
    arrived: float


def truncate(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, saying how long it was."""
    if len(text) <= limit:
        return text
    marker = f"\n[... cut by postwire.logging: {len(text)} characters in all]"
    if len(marker) >= limit:
        return text[:limit]
    return text[: limit - len(marker)] + marker


class RecordQueue:
    """A FIFO of :class:`Entry` with at most ``max_records`` entries and ``max_chars`` text.

    A record longer than ``record_chars`` (default ``max_chars``) is cut before it is queued,
    so one record alone always fits.  When a push (or a give-back) goes over a bound,
    entries are dropped from the end the policy names until it fits again, and counted:
    :attr:`unreported` until the next message takes the count (:meth:`take_unreported`),
    :attr:`dropped_total` for ever.
    """

    __slots__ = (
        "_chars",
        "_entries",
        "_next_seq",
        "drop",
        "dropped_total",
        "max_chars",
        "max_records",
        "record_chars",
        "unreported",
    )

    def __init__(
        self,
        max_records: int,
        max_chars: int,
        drop: DropPolicy = "newest",
        record_chars: int | None = None,
    ) -> None:
        if max_records < 1 or max_chars < 1:
            raise ValueError("a queue holds at least one record of one character")
        if record_chars is not None and not 1 <= record_chars <= max_chars:
            raise ValueError("record_chars must be from 1 to max_chars")
        if drop not in DROP_POLICIES:
            raise ValueError(f"drop must be one of {', '.join(DROP_POLICIES)}, not {drop!r}")
        self.max_records = max_records
        self.max_chars = max_chars
        self.drop: DropPolicy = drop
        #: A longer record is cut to this before it is queued.
        self.record_chars = record_chars if record_chars is not None else max_chars
        self._entries: deque[Entry] = deque()
        self._chars = 0
        self._next_seq = 0
        self.unreported = 0
        self.dropped_total = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def chars(self) -> int:
        """The characters of text queued."""
        return self._chars

    @property
    def next_seq(self) -> int:
        """The sequence number the next record will get."""
        return self._next_seq

    @property
    def first(self) -> Entry | None:
        """The oldest entry, or None when empty."""
        return self._entries[0] if self._entries else None

    def push(self, text: str, now: float) -> bool:
        """Queue ``text`` (cut to ``record_chars`` first); returns whether it was kept."""
        entry = Entry(self._next_seq, truncate(text, self.record_chars), now)
        self._next_seq += 1
        self._entries.append(entry)
        self._chars += len(entry.text)
        self._shed()
        return bool(self._entries) and self._entries[-1] is entry

    def give_back(self, entries: Iterable[Entry]) -> None:
        """Put entries taken for a send that failed back at the front, oldest first."""
        for entry in reversed(tuple(entries)):
            self._entries.appendleft(entry)
            self._chars += len(entry.text)
        self._shed()

    def pop_batch(self, max_records: int, max_chars: int) -> list[Entry]:
        """The oldest entries, as many as fit ``max_records`` and ``max_chars`` (at least one)."""
        batch: list[Entry] = []
        size = 0
        while self._entries and len(batch) < max_records:
            length = len(self._entries[0].text)
            if batch and size + length > max_chars:
                break
            entry = self._entries.popleft()
            self._chars -= length
            size += length
            batch.append(entry)
        return batch

    def discard(self) -> int:
        """Drop every queued entry (counted); returns how many there were."""
        count = len(self._entries)
        self.clear()
        self.count_dropped(count)
        return count

    def clear(self) -> None:
        """Forget every queued entry without counting it (records that were never ours)."""
        self._entries.clear()
        self._chars = 0

    def count_dropped(self, count: int) -> None:
        """Count ``count`` records lost elsewhere (a send that failed for good, after close)."""
        self.unreported += count
        self.dropped_total += count

    def take_unreported(self) -> int:
        """The drops not yet told in a message; the count starts again from zero."""
        count, self.unreported = self.unreported, 0
        return count

    def settled_below(self, seq: int) -> bool:
        """Whether no queued entry is older than ``seq``."""
        return not self._entries or self._entries[0].seq >= seq

    def _shed(self) -> None:
        # "newest": the back of the queue goes (the record just pushed, or the newest ones
        # when records come back after a failure); "oldest": the front goes.
        newest = self.drop == "newest"
        while len(self._entries) > self.max_records or self._chars > self.max_chars:
            entry = self._entries.pop() if newest else self._entries.popleft()
            self._chars -= len(entry.text)
            self.count_dropped(1)
