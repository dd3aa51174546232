"""Racket's ``net/smtp``; the code lives in :mod:`postwire.racket.smtp`.

This module keeps the import path ``postwire.smtp`` working.
"""

from .racket.smtp import *  # noqa: F403 - re-exports that package's __all__
from .racket.smtp import __all__ as __all__
