"""postwire benchmarks: one entry point for every run; results go to benchmarks/RESULTS.md.

    python benchmarks/run.py                      # everything (about 5 minutes)
    python benchmarks/run.py --quick              # a smoke run: small numbers, RESULTS.md untouched
    python benchmarks/run.py --only throughput    # or latency, memory, profile (repeatable)
    python benchmarks/run.py --only catcher       # the mail catcher (needs Chromium)
    python benchmarks/run.py --only outbox        # the outbox beside django-mailer, post_office

Servers (smtp-sink, a private Postfix) and the delaying proxy are started on 127.0.0.1 by the
run that needs them and stopped at its end.  See benchmarks/README.md for what each run measures.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import catcher
import latency
import memory
import outbox_run
import profiling
import throughput
from _common import machine, machine_line
from results import RESULTS_MD, Section, save

RUNS = ("throughput", "latency", "memory", "profile", "catcher", "outbox")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="small numbers: a smoke run (RESULTS.md untouched)"
    )
    parser.add_argument("--save", action="store_true", help="with --quick: write RESULTS.md too")
    parser.add_argument(
        "--only",
        action="append",
        choices=RUNS,
        help="run only this (repeatable); default: all",
    )
    parser.add_argument("--n", type=int, help="messages per throughput run (default 2000)")
    parser.add_argument("--runs", type=int, help="interleaved throughput runs (default 5)")
    parser.add_argument(
        "--postfix-n", type=int, help="messages per Postfix run (default 1000; 0: skip Postfix)"
    )
    parser.add_argument("--latency-n", type=int, help="messages per latency run (default 100)")
    parser.add_argument("--latency-runs", type=int, help="latency runs (default 3)")
    parser.add_argument(
        "--memory-sizes", type=int, nargs="+", help="message sizes in MiB (default 20 100)"
    )
    parser.add_argument("--memory-runs", type=int, help="memory runs (default 3)")
    parser.add_argument("--profile-n", type=int, help="messages for the profile (default 10000)")
    parser.add_argument(
        "--catcher-n", type=int, help="messages per catcher ingest run (default 5000)"
    )
    parser.add_argument("--outbox-n", type=int, help="messages per outbox drain (default 10000)")
    parser.add_argument("--outbox-runs", type=int, help="interleaved outbox runs (default 3)")
    args = parser.parse_args(argv)

    q = args.quick
    n = args.n or (200 if q else 2000)
    runs = args.runs or (2 if q else 5)
    postfix_n = args.postfix_n if args.postfix_n is not None else (100 if q else 1000)
    latency_n = args.latency_n or (10 if q else 100)
    latency_runs = args.latency_runs or (1 if q else 3)
    sizes = args.memory_sizes or ([5, 20] if q else [20, 100])
    memory_runs = args.memory_runs or (1 if q else 3)
    profile_n = args.profile_n or (1000 if q else 10000)
    catcher_n = args.catcher_n or (500 if q else 5000)
    outbox_n = args.outbox_n or (1000 if q else 10000)
    outbox_runs = args.outbox_runs or (1 if q else 3)
    only = args.only or list(RUNS)

    info = machine()
    print(machine_line(info))
    started = time.monotonic()

    def store(name: str, section: Section) -> None:
        if not q or args.save:
            save(name, section)

    for name in RUNS:
        if name not in only:
            continue
        if name == "throughput":
            store("throughput", throughput.run_sink(info, n, runs))
            if postfix_n:
                store("postfix", throughput.run_postfix(info, postfix_n, runs))
        elif name == "latency":
            store(name, latency.run(info, latency_n, latency_runs))
        elif name == "memory":
            store(name, memory.run(info, sizes, memory_runs))
        elif name == "catcher":
            store(name, catcher.run(info, catcher_n, 2 if q else 3, 2 if q else 5))
        elif name == "outbox":
            single = min(2000, outbox_n)
            store(name, outbox_run.run(info, outbox_n, outbox_runs, single, 20 if q else 100))
        else:
            store(name, profiling.run(info, profile_n))
    elapsed = time.monotonic() - started
    if q and not args.save:
        print(f"done in {elapsed:.0f} s (--quick: {RESULTS_MD.name} not written)")
    else:
        print(f"done in {elapsed:.0f} s; results in {RESULTS_MD}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
