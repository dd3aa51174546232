"""Helpers of the logging handler's tests: loggers of their own, and reading what arrived."""

from __future__ import annotations

import itertools
import logging
import re

from postwire.capture import CapturedMessage
from postwire.logging import SMTPHandler

HOST = "127.0.0.1"
SENDER = "app@example.org"
OPS = "ops@example.org"

_names = itertools.count()


def logger_for(handler: SMTPHandler, level: int = logging.DEBUG) -> logging.Logger:
    """A logger of its own that sends to ``handler`` only (nothing reaches pytest's)."""
    logger = logging.getLogger(f"test.postwire.logging.{next(_names)}")
    logger.setLevel(level)
    logger.propagate = False
    logger.addHandler(handler)
    return logger


#: The note a message starts with when records were dropped before it.
DROP_NOTE = re.compile(r"^\[postwire\.logging: (\d+) records? dropped before these \((.*)\)\.\]$")


def body_lines(message: CapturedMessage) -> list[str]:
    """The message's body, decoded, as lines."""
    content = message.email().get_content()
    assert isinstance(content, str)
    return content.splitlines()


def records_in(message: CapturedMessage) -> list[str]:
    """The records of one message (the drop note and its blank line left out)."""
    lines = body_lines(message)
    if lines and DROP_NOTE.match(lines[0]):
        return lines[2:]
    return lines


def dropped_in(message: CapturedMessage) -> int:
    """How many dropped records the message reports (0 when it says nothing)."""
    lines = body_lines(message)
    match = DROP_NOTE.match(lines[0]) if lines else None
    return int(match.group(1)) if match else 0


def all_records(messages: list[CapturedMessage]) -> list[str]:
    """Every record of every message, in the order the messages arrived."""
    return [record for message in messages for record in records_in(message)]
