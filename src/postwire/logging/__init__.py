"""Logging by e-mail (in progress): the pure parts of batching.

:mod:`.records` (the bounded queue and its drop policy), :mod:`.pacing` (rate window,
back-off), :mod:`.batching` (what goes when) and :mod:`.compose` (the message).

This package is ``postwire.logging``; inside postwire, ``import logging`` is still the
standard library's (imports are absolute).
"""

from .batching import BatchSettings
from .records import DropPolicy

__all__ = ["BatchSettings", "DropPolicy"]
