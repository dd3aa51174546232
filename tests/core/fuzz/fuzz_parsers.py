"""atheris harness: the reply parser and the EHLO extension parser on arbitrary bytes.

Run: python tests/fuzz/fuzz_parsers.py -max_total_time=20
Only ReplySyntaxError may come out of the parser; the extension parser must
accept any reply the parser produced.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from postwire._core.errors import ReplySyntaxError
    from postwire._core.extensions import Extensions
from postwire._core.reply_parser import ReplyParser


def test_one(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    step = fdp.ConsumeIntInRange(1, 64)
    raw = fdp.ConsumeBytes(fdp.remaining_bytes())
    parser = ReplyParser(max_line_length=512, max_reply_size=4096)
    try:
        for i in range(0, len(raw), step):
            parser.feed(raw[i : i + step])
            while (reply := parser.next_reply()) is not None:
                ext = Extensions.from_reply(reply)
                _ = (ext.max_size, ext.auth_mechanisms, ext.pipelining, reply.message)
                assert 200 <= reply.code <= 599
    except ReplySyntaxError:
        pass


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one)
    atheris.Fuzz()
