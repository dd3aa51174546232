"""Every exception postwire raises (defined in :mod:`postwire._core.errors`).

The classes live at the bottom of the layers, in the pure core, so that
every layer can raise them without an import cycle; this is their public
import path, and the module they name in tracebacks.
"""

from __future__ import annotations

from ._core import errors as _core_errors
from ._core.errors import *  # noqa: F403 (the whole tree)

__all__ = [*_core_errors.__all__]

# Tracebacks and reprs name the public module, not the core one.
for _name in __all__:
    getattr(_core_errors, _name).__module__ = __name__
del _name
