"""A real outbox worker process for the chaos tests, which can stop itself at a chosen step.

``python chaos_worker.py --db URL --relay URL [--stop-at STEP:N] ...`` runs
:class:`postwire.outbox.worker.Worker` (the code ``postwire outbox work`` runs).  With
``--stop-at before_mark:2`` it prints ``STOPPED before_mark 2`` and sends itself SIGSTOP the
second time a delivery passes that step; the test then SIGKILLs it there (a crash at that
exact step) or lets it sleep past its lease and SIGCONTs it.  Steps: ``claimed`` (leased,
nothing sent), ``before_mark`` (content sent, no final "."), ``after_mark`` (the "about to
send" mark committed, the "." not yet written), ``replied`` (replies in, results not
decided), ``before_finish`` (results decided, not yet written).  On SIGTERM it stops
cleanly and prints its counts as JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading

from postwire.outbox import RelayLimits, RetryPolicy
from postwire.outbox.worker import Worker


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--relay", required=True)
    parser.add_argument("--stop-at", default="")
    parser.add_argument("--lease", type=float, default=1.5)
    parser.add_argument("--concurrency", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--max-connections", type=int, default=4)
    parser.add_argument("--rate", type=float, default=None)
    parser.add_argument("--guard", type=float, default=0.25)
    parser.add_argument("--timeout", type=float, default=3.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    worker = Worker(
        args.db,
        relay=args.relay,
        concurrency=args.concurrency,
        policy=RetryPolicy(min_backoff=0.1, max_backoff=0.5, lifetime=600, jitter=0.2),
        limits=RelayLimits(
            max_connections=args.max_connections,
            initial=2,
            rate=args.rate,
            guard=args.guard,
            dead_time=0.5,
        ),
        lease=args.lease,
        poll_interval=0.2,
        batch=args.batch,
        keepalive=0.5,
        client_options={"timeout": args.timeout},
    )
    if args.stop_at:
        step, _, nth = args.stop_at.partition(":")
        target = int(nth or 1)
        seen = 0
        lock = threading.Lock()

        def on_step(name: str) -> None:
            nonlocal seen
            if name != step:
                return
            with lock:
                seen += 1
                hit = seen == target
            if hit:
                print(f"STOPPED {step} {target}", flush=True)
                os.kill(os.getpid(), signal.SIGSTOP)

        worker.on_step = on_step
    signal.signal(signal.SIGTERM, lambda *_: worker.stop())
    print("READY", flush=True)
    stats = worker.run()
    print(json.dumps(stats), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
