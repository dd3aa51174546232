"""Racket-style parameters; the code lives in :mod:`postwire.racket.parameters`.

This module keeps the import path ``postwire.parameters`` working.
"""

from .racket.parameters import *  # noqa: F403 - re-exports that module's __all__
from .racket.parameters import __all__ as __all__
