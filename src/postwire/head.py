"""Racket's ``net/head``; the code lives in :mod:`postwire.racket.head`.

This module keeps the import path ``postwire.head`` working.
"""

from .racket.head import *  # noqa: F403 - re-exports that package's __all__
from .racket.head import __all__ as __all__
