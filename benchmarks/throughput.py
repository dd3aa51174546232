"""Throughput: 1 KiB messages per second to smtp-sink, and end to end through Postfix.

Every contender sends the same number of messages; the contenders run interleaved (A B C A B
C ...) so that a slow patch of the machine hurts all of them alike, and the median of the runs
is reported.  Python clients run in a fresh interpreter each time (benchmarks/worker.py) and are
timed from just before connecting to just after QUIT; smtp-source is timed from outside.

Where the client runs matters as much as what it does: on a virtual machine, a client that
waits for smtp-sink on another CPU pays a cross-CPU wake-up for every reply, and one on the
same CPU does not.  Left to the scheduler, runs flip between the two and the figures with them,
so smtp-sink is pinned to one CPU and every client is measured both on that CPU and on another.
"""

from __future__ import annotations

import importlib.util
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import (
    HOST,
    RECIPIENT,
    SENDER,
    SMTP_SOURCE,
    Series,
    fmt,
    machine_line,
    postfix,
    ratio,
    run_tool,
    run_worker,
    smtp_sink,
    table,
    verdict,
)
from results import Section, Target


def pool_available() -> bool:
    """Whether ``postwire.pool`` exists yet (it is written alongside these benchmarks)."""
    try:
        return importlib.util.find_spec("postwire.client") is not None
    except (ImportError, ValueError):
        return False


@dataclass(frozen=True)
class Placement:
    """Which CPUs the clients may use (None: the kernel decides)."""

    key: str
    title: str
    cpus: frozenset[int] | None


@dataclass(frozen=True)
class Contender:
    key: str
    label: str
    worker: tuple[str, ...] = ()
    source_sessions: int = 0
    needs_pool: bool = False

    def measure(self, port: int, n: int, cpus: frozenset[int] | None) -> dict[str, Any]:
        if self.source_sessions:
            return run_tool(
                [
                    SMTP_SOURCE, "-d", "-s", str(self.source_sessions), "-m", str(n),
                    "-l", "1024", "-f", SENDER, "-t", RECIPIENT, f"{HOST}:{port}",
                ],
                cpus,
            )  # fmt: skip
        result = run_worker(
            "throughput", *self.worker, "--port", str(port), "--n", str(n), cpus=cpus
        )
        if "error" not in result and result["failed"]:
            result["error"] = f"{result['failed']} of {n} failed: {result['first_error']}"
        return result


#: The first row, counting reads that blocked (a diagnostic that costs two clock reads a read).
PW_SYNC_STALLS = Contender(
    "pw_sync", "postwire Client.send_many, 1 connection", ("--client", "postwire-sync", "--stalls")
)

#: Only in the Postfix run (smtp-sink has no CHUNKING, so these equal the first row there).
POSTFIX_EXTRA = (
    Contender(
        "pw_sync_data",
        "postwire Client.send_many, chunking=False (pipelined DATA)",
        ("--client", "postwire-sync", "--no-chunking", "--stalls"),
    ),
    Contender(
        "pw_sync_quickack",
        "diagnostic: the first row with TCP_QUICKACK set before each read",
        ("--client", "postwire-sync", "--quickack", "--stalls"),
    ),
)

CONTENDERS = (
    Contender("pw_sync", "postwire Client.send_many, 1 connection", ("--client", "postwire-sync")),
    Contender(
        "pw_async", "postwire AsyncClient.send_many, 1 connection", ("--client", "postwire-async")
    ),
    Contender(
        "pool20",
        "postwire Pool, 20 connections",
        ("--client", "postwire-pool", "--conns", "20"),
        needs_pool=True,
    ),
    Contender(
        "apool20",
        "postwire AsyncPool, 20 connections",
        ("--client", "postwire-apool", "--conns", "20"),
        needs_pool=True,
    ),
    Contender("smtplib", "smtplib sendmail loop, 1 connection", ("--client", "smtplib")),
    Contender("aio1", "aiosmtplib sendmail loop, 1 connection", ("--client", "aiosmtplib")),
    Contender(
        "aio20",
        "aiosmtplib, 20 clients under asyncio.gather",
        ("--client", "aiosmtplib", "--conns", "20"),
    ),
    Contender("src1", "smtp-source -d -s 1 (C, no pipelining)", source_sessions=1),
    Contender("src20", "smtp-source -d -s 20", source_sessions=20),
)

RatioSpec = tuple[str, str, str, float | None]

RATIOS: Sequence[RatioSpec] = (
    ("pw_sync", "smtplib", "postwire sync, 1 conn / smtplib (target >= 3x)", 3.0),
    ("pw_sync", "src1", "postwire sync, 1 conn / smtp-source -s 1 (target >= 2.5x)", 2.5),
    ("pw_sync", "src20", "postwire sync, 1 conn / smtp-source -s 20 (moonshot >= 1x)", 1.0),
    ("pw_async", "aio1", "postwire async, 1 conn / aiosmtplib, 1 conn (target >= 5x)", 5.0),
    ("pool20", "aio20", "postwire Pool 20 / aiosmtplib 20 (target >= 4x)", 4.0),
    ("apool20", "aio20", "postwire AsyncPool 20 / aiosmtplib 20 (target >= 4x)", 4.0),
    ("pw_async", "pw_sync", "postwire async / postwire sync, 1 conn", None),
    ("pool20", "pw_sync", "postwire Pool 20 / postwire sync, 1 conn", None),
)


@dataclass
class Results:
    """One placement's figures: msg/s and client CPU per contender, and the server's CPU."""

    placement: Placement
    series: dict[str, Series]
    server: dict[str, Series]
    contenders: Sequence[Contender]
    #: Per contender and run, with ``--stalls``: (reads blocked >= 30 ms, seconds they took).
    stalls: dict[str, list[tuple[int, float]]] = field(default_factory=dict)

    def ratios(self) -> list[tuple[str, float | None, float | None, float | None, float | None]]:
        """(text, median ratio, best-run ratio, inverted CPU ratio, goal) per RATIOS entry."""
        out = []
        for a, b, text, goal in RATIOS:
            sa, sb = self.series[a], self.series[b]
            best = ratio(max(sa.values, default=None), max(sb.values, default=None))
            out.append(
                (text, ratio(sa.median, sb.median), best, ratio(sb.cpu_median, sa.cpu_median), goal)
            )
        return out


def measure_all(
    port: int,
    n: int,
    runs: int,
    placements: Sequence[Placement],
    contenders: Sequence[Contender] = CONTENDERS,
    between: Callable[[], None] = lambda: None,
    server_cpu: Callable[[], float | None] = lambda: None,
) -> list[Results]:
    """Interleaved runs of every contender in every placement."""
    have_pool = pool_available()
    results = [
        Results(
            p,
            {c.key: Series(c.label) for c in contenders},
            {c.key: Series(c.label) for c in contenders},
            contenders,
        )
        for p in placements
    ]
    for run in range(runs):
        for res in results:
            for c in contenders:
                s = res.series[c.key]
                if c.needs_pool and not have_pool:
                    s.errors.append("postwire.pool is not importable")
                    continue
                before = server_cpu()
                result = c.measure(port, n, res.placement.cpus)
                after = server_cpu()
                if "error" in result:
                    s.errors.append(result["error"])
                else:
                    s.values.append(n / result["elapsed"])
                    s.cpu.append((result["cpu_user"] + result["cpu_sys"]) / n)
                    if before is not None and after is not None:
                        res.server[c.key].values.append((after - before) / n)
                    if "stalls" in result:
                        res.stalls.setdefault(c.key, []).append(
                            (int(result["stalls"]), float(result["stalled_seconds"]))
                        )
                between()
            print(
                f"  run {run + 1}/{runs} [{res.placement.key}]: "
                + ", ".join(_brief(c.key, res.series[c.key]) for c in contenders)
            )
    return results


def _brief(key: str, s: Series) -> str:
    return f"{key} {fmt(s.values[-1]) if s.values else 'error'}"


def _us(seconds: float | None) -> str:
    return fmt(None if seconds is None else seconds * 1e6, ".1f")


def _tables(res: Results) -> str:
    base = res.series["smtplib"].median
    rows = []
    for c in res.contenders:
        s = res.series[c.key]
        note = f"error: {s.errors[0][:160]}" if s.errors else ""
        if c.key in res.stalls:
            counts = [k for k, _ in res.stalls[c.key]]
            lost = [t for _, t in res.stalls[c.key]]
            note = (
                f"reads blocked >= 30 ms: {statistics.median(counts):.0f} per run "
                f"({statistics.median(lost):.2f} s) {note}"
            ).strip()
        rows.append(
            [
                c.label,
                fmt(s.median),
                s.spread(),
                fmt(ratio(s.median, base), ".2f", "x"),
                _us(s.cpu_median),
                _us(res.server[c.key].median),
                note,
            ]
        )
    header = [
        "client",
        "msg/s (median)",
        "range over runs",
        "vs smtplib",
        "client CPU µs / msg",
        "server CPU µs / msg",
        "note",
    ]
    ratio_rows = [
        [text, fmt(med, ".2f", "x"), fmt(best, ".2f", "x"), fmt(cpu, ".2f", "x")]
        for text, med, best, cpu, _ in res.ratios()
    ]
    ratio_header = ["ratio", "msg/s, medians", "msg/s, best runs", "CPU per message, inverted"]
    return f"{table(header, rows)}\n\n{table(ratio_header, ratio_rows)}"


def _print_ratios(res: Results) -> None:
    print(f"ratios [{res.placement.title}]:")
    for text, med, best, _cpu, goal in res.ratios():
        mark = "" if goal is None else f"  [{verdict(med, goal)}]"
        print(f"  {text}: {fmt(med, '.2f', 'x')} (best runs {fmt(best, '.2f', 'x')}){mark}")


def _raw(results: list[Results]) -> dict[str, Any]:
    return {
        res.placement.key: {
            k: {
                "msg_per_s": s.values,
                "client_cpu_per_msg": s.cpu,
                "server_cpu_per_msg": res.server[k].values,
                "errors": s.errors,
            }
            for k, s in res.series.items()
        }
        for res in results
    }


def _section_md(info: dict[str, str], intro: str, results: list[Results]) -> str:
    parts = [machine_line(info), "", intro]
    for res in results:
        if len(results) > 1:
            parts += ["", f"### {res.placement.title}"]
        parts += ["", _tables(res)]
    parts += [
        "",
        "*client CPU*: user + system time of the client process per message; *server CPU*: "
        "smtp-sink's (`/proc/PID/schedstat`). *CPU per message, inverted*: the other "
        "client's CPU per message / this one's (how much less CPU this client needs); it "
        "moves much less than msg/s when the machine is busy with other work.",
    ]
    if not pool_available():
        parts += [
            "",
            "The pool rows are empty: `postwire.pool` was not importable when this ran "
            "(the rows are coded in benchmarks/worker.py and run as soon as it exists).",
        ]
    return "\n".join(parts)


SINK_INTRO = (
    "{n} messages of 1 KiB body (plus From/To/Date/Message-Id, shaped like smtp-source's "
    "`-l 1024`) per run, one recipient each, to `smtp-sink` on 127.0.0.1 (it offers "
    "PIPELINING, not CHUNKING, so postwire pipelines DATA: RFC 2920). {runs} interleaved "
    "runs. Time from before connecting to after QUIT (smtp-source: its whole process). The "
    "20-connection rows share the same {n} messages among their connections. smtp-sink is "
    "pinned to CPU {sink_cpu}; the clients run {where}."
)

POSTFIX_INTRO = (
    "End to end: the same workload through the project's private Postfix (tests/servers/"
    "postfix.py) to `*@discard.test` (accepted, queued by cleanup, then discarded). Postfix "
    "offers CHUNKING, so postwire sends `BDAT n LAST` with up to 8 transactions in flight "
    "(RFC 3030). {n} messages per run, {runs} interleaved runs; Postfix's queue is left to "
    "drain between contenders. Nothing is pinned (Postfix is many processes), and server CPU "
    "is not measured."
)


def sink_placements() -> tuple[int, list[Placement]]:
    """smtp-sink's CPU and the client placements this machine allows."""
    cpus = sorted(os.sched_getaffinity(0))
    sink = cpus[0]
    placements = [Placement("same", f"Clients on smtp-sink's CPU ({sink})", frozenset({sink}))]
    if len(cpus) > 1:
        placements.append(
            Placement("split", f"Clients on another CPU ({cpus[1]})", frozenset({cpus[1]}))
        )
    return sink, placements


def run_sink(info: dict[str, str], n: int, runs: int) -> Section:
    sink_cpu, placements = sink_placements()
    print(f"throughput to smtp-sink: {n} messages x {runs} runs x {len(placements)} placements")
    with smtp_sink() as sink:
        os.sched_setaffinity(sink.pid, {sink_cpu})
        results = measure_all(sink.port, n, runs, placements, server_cpu=sink.cpu_seconds)
    where = " and ".join(f"on CPU {next(iter(p.cpus))}" for p in placements if p.cpus is not None)
    intro = SINK_INTRO.format(n=n, runs=runs, sink_cpu=sink_cpu, where=f"{where} (two tables)")
    targets = []
    for res in results:
        _print_ratios(res)
        for text, med, best, _cpu, goal in res.ratios():
            if goal is not None:
                targets.append(
                    Target(
                        f"{text}, {res.placement.key} CPU",
                        f"{fmt(med, '.2f', 'x')} (best runs {fmt(best, '.2f', 'x')})",
                        verdict(med, goal),
                    )
                )
    return Section(
        "Throughput: 1 KiB messages to smtp-sink",
        _section_md(info, intro, results),
        targets,
        _raw(results),
    )


def _drain(queue_dir: Path, timeout: float = 30.0) -> None:
    """Wait (bounded) until Postfix's incoming and active queues are empty."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = any(
            p.is_file() for sub in ("incoming", "active") for p in (queue_dir / sub).rglob("*")
        )
        if not busy:
            return
        time.sleep(0.05)


def run_postfix(info: dict[str, str], n: int, runs: int) -> Section:
    print(f"throughput through Postfix: {n} messages x {runs} runs")
    free = [Placement("free", "Unpinned", None)]
    with postfix() as server:
        queue = server.base / "spool"
        results = measure_all(
            server.smtp_port,
            n,
            runs,
            free,
            (PW_SYNC_STALLS, *POSTFIX_EXTRA, *CONTENDERS[1:]),
            between=lambda: _drain(queue),
        )
    _print_ratios(results[0])
    intro = POSTFIX_INTRO.format(n=n, runs=runs)
    return Section(
        "Throughput end to end: Postfix to *@discard.test",
        _section_md(info, intro, results),
        [],
        _raw(results),
    )
