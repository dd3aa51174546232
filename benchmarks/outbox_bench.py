"""postwire's side of the outbox benchmark: one action per fresh interpreter, one JSON line.

    python outbox_bench.py put --db URL --n 2000          # one put (one transaction) each
    python outbox_bench.py put-bulk --db URL --n 10000    # put_many, 1000 per call
    python outbox_bench.py pool --port P --n 10000        # Pool(20).send_many, no queue
    python outbox_bench.py put-timed --db URL --n 100 --interval 0.05   # latency puts

The messages are benchmarks/_common.py's: 1 KiB body shaped like smtp-source's.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RECIPIENT, SENDER, message


def items(n: int, start: int = 0) -> list[tuple[bytes, str, list[str]]]:
    return [(message(start + i), SENDER, [RECIPIENT]) for i in range(n)]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("action", choices=("put", "put-bulk", "pool", "put-timed"))
    parser.add_argument("--db")
    parser.add_argument("--port", type=int)
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--interval", type=float, default=0.05)
    args = parser.parse_args()
    out: dict[str, object] = {}
    work = items(args.n, args.start)
    before = resource.getrusage(resource.RUSAGE_SELF)
    if args.action == "pool":
        from postwire import Pool

        began = time.perf_counter()
        with Pool("127.0.0.1", args.port, tls="none", max_connections=20) as pool:
            outcomes = pool.send_many(work)
        out["seconds"] = time.perf_counter() - began
        out["failed"] = sum(isinstance(o, BaseException) for o in outcomes)
    else:
        from postwire.outbox import Outbox

        with Outbox(args.db) as outbox:
            if args.action == "put":
                began = time.perf_counter()
                for msg, sender, rcpts in work:
                    outbox.put(msg, sender=sender, recipients=rcpts)
                out["seconds"] = time.perf_counter() - began
            elif args.action == "put-bulk":
                began = time.perf_counter()
                for start in range(0, len(work), 1000):
                    outbox.put_many(work[start : start + 1000])
                out["seconds"] = time.perf_counter() - began
            else:
                stamps = []
                for i, (msg, sender, rcpts) in enumerate(work):
                    subject = f"Subject: latency {args.start + i}\r\n".encode()
                    stamps.append(time.monotonic())
                    outbox.put(subject + msg, sender=sender, recipients=rcpts)
                    time.sleep(args.interval)
                out["stamps"] = stamps
    after = resource.getrusage(resource.RUSAGE_SELF)
    out["cpu"] = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
