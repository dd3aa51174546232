"""Maildir storage for captured messages (https://cr.yp.to/proto/maildir.html)."""

from __future__ import annotations

import itertools
import os
import socket
import time
from pathlib import Path

__all__ = ["create_maildir", "deliver_to_maildir"]

_maildir_counter = itertools.count()


def create_maildir(maildir: Path) -> None:
    """Create ``maildir`` and its ``new``, ``cur`` and ``tmp`` folders (mode 0700) if missing."""
    for sub in ("new", "cur", "tmp"):
        (maildir / sub).mkdir(mode=0o700, parents=True, exist_ok=True)


def deliver_to_maildir(maildir: Path, data: bytes) -> Path:
    """Write ``data`` into ``maildir/tmp`` and rename it into ``maildir/new``.

    The rename makes delivery atomic: readers never see a partial file (Maildir format,
    https://cr.yp.to/proto/maildir.html). The bytes are written unchanged (CRLF kept).
    """
    now = time.time()
    host = socket.gethostname().replace("/", "\\057").replace(":", "\\072")
    name = f"{int(now)}.M{int(now % 1 * 1e6)}P{os.getpid()}Q{next(_maildir_counter)}.{host}"
    tmp_path = maildir / "tmp" / name
    with open(tmp_path, "xb") as f:
        f.write(data)
    final = maildir / "new" / name
    os.replace(tmp_path, final)
    return final
