"""Racket's ``net/sendmail``; the code lives in :mod:`postwire.racket.sendmail`.

This module keeps the import path ``postwire.sendmail`` working.
"""

from .racket.sendmail import *  # noqa: F403 - re-exports that package's __all__
from .racket.sendmail import __all__ as __all__
