"""SMTP replies as values (RFC 5321 §4.2) and enhanced status codes (RFC 3463).

:class:`Reply` is what every layer passes around and what errors carry; the
bytes-to-replies parser is :mod:`postwire._core.reply_parser`.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

__all__ = ["EnhancedStatus", "Reply", "parse_enhanced_status"]

# RFC 3463 §2: class "." subject "." detail, class in {2,4,5}, subject and
# detail 1-3 digits.  RFC 2034 §4 puts it first on every line of the reply.
_ENHANCED = re.compile(r"([245])\.(\d{1,3})\.(\d{1,3})(?:\s+|$)")


@dataclass(frozen=True, slots=True)
class EnhancedStatus:
    """An RFC 3463 enhanced status code such as ``5.1.1``."""

    klass: int
    subject: int
    detail: int

    def __str__(self) -> str:
        return f"{self.klass}.{self.subject}.{self.detail}"


@dataclass(frozen=True, slots=True)
class Reply:
    """One complete server reply.

    ``lines`` holds the text of every line after the code and separator,
    exactly as sent (an enhanced status code, if any, stays in the text);
    ``message`` is the same text with the enhanced codes taken off.
    ``command`` names the command this reply answers (``"MAIL"``,
    ``"greeting"``, ``"end of data"``...) once the connection has paired it.
    """

    code: int
    lines: tuple[str, ...] = ("",)
    enhanced_status: EnhancedStatus | None = None
    command: str = field(default="", compare=False)

    @property
    def text(self) -> str:
        """All lines joined with newlines, as the server wrote them."""
        return "\n".join(self.lines)

    @property
    def message(self) -> str:
        """The text without the enhanced status code on each line."""
        if self.enhanced_status is None:
            return self.text
        prefix = str(self.enhanced_status)
        out = []
        for line in self.lines:
            if line.startswith(prefix):
                line = line[len(prefix) :].lstrip()
            out.append(line)
        return "\n".join(out)

    @property
    def is_positive(self) -> bool:
        """2xx: the command succeeded."""
        return 200 <= self.code < 300

    @property
    def is_intermediate(self) -> bool:
        """3xx: the server waits for more (354 after DATA, 334 in AUTH)."""
        return 300 <= self.code < 400

    @property
    def is_transient(self) -> bool:
        """4xx: try again later."""
        return 400 <= self.code < 500

    @property
    def is_permanent(self) -> bool:
        """5xx: do not retry as is."""
        return 500 <= self.code < 600

    def with_command(self, command: str) -> Reply:
        """A copy of this reply paired with ``command``."""
        return Reply(self.code, self.lines, self.enhanced_status, command)

    def __str__(self) -> str:
        return f"{self.code} {self.text}".rstrip()


def parse_enhanced_status(code: int, text: str) -> EnhancedStatus | None:
    """The RFC 3463 code at the start of ``text``, if its class matches ``code``."""
    # Cheap tests first: this runs for every reply on the hot path.
    if len(text) < 5 or text[1] != "." or text[0] != "012345"[code // 100]:
        return None
    return _enhanced(text.split(None, 1)[0])


@functools.lru_cache(maxsize=512)
def _enhanced(word: str) -> EnhancedStatus | None:
    # Servers repeat a handful of codes ("2.1.0", "2.1.5", "2.0.0"): cache them.
    m = _ENHANCED.match(word)
    if m is None or m.end() != len(word):
        return None
    return EnhancedStatus(int(m.group(1)), int(m.group(2)), int(m.group(3)))
