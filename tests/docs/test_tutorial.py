"""The tutorial's code is run as written, block after block, in one namespace (issue 13, item 3).

docs/tutorial.md promises that its blocks work when pasted in order; this holds it to that.
Its server is a capture server on 127.0.0.1, started and stopped by the blocks themselves.
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

TUTORIAL = Path(__file__).resolve().parents[2] / "docs" / "tutorial.md"
BLOCK = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def test_every_block_of_the_tutorial_runs_in_order() -> None:
    blocks = BLOCK.findall(TUTORIAL.read_text(encoding="utf-8"))
    assert len(blocks) >= 8
    namespace: dict[str, object] = {"__name__": "tutorial"}
    out = io.StringIO()
    try:
        for number, code in enumerate(blocks, 1):
            with contextlib.redirect_stdout(out):
                exec(compile(code, f"{TUTORIAL.name}, block {number}", "exec"), namespace)
    finally:
        server = namespace.get("server")
        stop = getattr(server, "stop", None)
        if callable(stop):
            stop()
    printed = out.getvalue()
    # What the tutorial says each step prints.
    assert "['charles@example.org', 'archive@example.org']" in printed
    assert "['bob@example.org'] 550" in printed
    assert "RCPT 550" in printed
    assert "[['r0@example.org'], ['r1@example.org'], ['r2@example.org']]" in printed
    assert "maybe delivered:" in printed
