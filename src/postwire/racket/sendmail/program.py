"""Where the sendmail program is: the :data:`sendmail_program` parameter, else a search.

Unlike Racket, the search is done on every call (a failed one is not cached)
and ends with ``PATH``.
"""

from __future__ import annotations

import errno
import os
import shutil
import sys
from collections.abc import Iterable

from ..parameters import Parameter

__all__ = ["checked_program", "find_sendmail", "sendmail_program", "sendmail_search_path"]

#: The directories searched, in order, before ``PATH`` (Racket's ``sendmail-search-path``).
#: :func:`find_sendmail` reads it from this module: rebind it here, not on the
#: ``postwire.sendmail`` face (the :data:`sendmail_program` parameter is the way to choose).
sendmail_search_path: tuple[str, ...] = ("/usr/sbin", "/sbin", "/usr/local/sbin", "/usr/lib")


def checked_program(value: object) -> str | os.PathLike[str] | None:
    """The guard of :data:`sendmail_program`: a usable str path, or None."""
    if value is None:
        return None
    if isinstance(value, (str, os.PathLike)):
        path = os.fspath(value)
        if not isinstance(path, str):
            raise TypeError("sendmail_program: expected a str path, got a bytes path")
        if not path or "\0" in path:
            raise ValueError(f"sendmail_program: not a usable path: {path!r}")
        return path
    raise TypeError(
        "sendmail_program: expected a path (str or os.PathLike) or None, "
        f"got {type(value).__name__}"
    )


#: The sendmail program to run, or ``None`` (the default) to search for it.
sendmail_program: Parameter[str | os.PathLike[str] | None] = Parameter(
    "sendmail_program", None, checked_program
)


def _racket_list(items: Iterable[str]) -> str:
    # Racket's ``~s`` of a list of strings: ("a" "b").
    quoted = ('"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"' for s in items)
    return "(" + " ".join(quoted) + ")"


def find_sendmail() -> str:
    """Return the sendmail program to run.

    The value of :data:`sendmail_program` when it is set; otherwise the first
    executable ``sendmail`` in :data:`sendmail_search_path`, then on ``PATH``.
    The search is done on every call (a failed one is not cached, unlike
    Racket's).  Raises :class:`FileNotFoundError` when nothing is found.
    """
    program = sendmail_program()
    if program is not None:
        return os.fspath(program)
    name = "sendmail.exe" if sys.platform == "win32" else "sendmail"
    for directory in sendmail_search_path:
        candidate = os.path.join(directory, name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("sendmail")
    if found is not None:
        return found
    err = FileNotFoundError(
        f"unable to find a sendmail executable in {_racket_list(sendmail_search_path)} or on PATH"
    )
    err.errno = errno.ENOENT
    raise err
