"""Profile: where postwire's sync ``send_many`` spends its time with 1 KiB messages.

Three views of the same workload (benchmarks/worker.py, ``postwire-sync`` to smtp-sink):

- cProfile: exact call counts per message and (inflated, but comparable) time per function;
- py-spy (when installed): sampled self time without cProfile's per-call overhead;
- strace -c: system calls per message, from a run with N messages minus a run with none.
"""

from __future__ import annotations

import collections
import os
import pstats
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from _common import fmt, machine_line, run_worker, smtp_sink, table
from results import Section

TOP = 20
#: smtp-sink and every profiled client share the first CPU this process may use, so the
#: figures do not depend on where the scheduler puts them (see throughput.py).
CPU = min(os.sched_getaffinity(0))
WORKLOAD = ("--client", "postwire-sync")
ASYNC_WORKLOAD = ("--client", "postwire-async")
#: py-spy samples count only when this function is on the stack.
FOCUS = "send_many"


def _worker(*args: str, wrap: tuple[str, ...] = ()) -> dict[str, Any]:
    return run_worker(*args, wrap=wrap, cpus={CPU})


def _where(filename: str) -> str:
    """A short place for a function: ``postwire/x.py``, ``socket.py`` or ``~``."""
    if filename == "~":
        return "builtin"
    path = Path(filename)
    parts = path.parts
    if "postwire" in parts:
        return "/".join(parts[parts.index("postwire") :])
    return path.name


def cprofile_table(stats_file: Path, n: int, top: int = TOP) -> tuple[str, dict[str, float]]:
    stats = pstats.Stats(str(stats_file))
    entries = stats.stats  # type: ignore[attr-defined]
    total_tt = sum(v[2] for v in entries.values())
    total_calls = sum(v[1] for v in entries.values())
    rows = []
    by_place: collections.Counter[str] = collections.Counter()
    for (filename, line, func), (_cc, nc, tt, ct, _callers) in entries.items():
        place = _where(filename)
        group = "postwire" if place.startswith("postwire") else place
        if group == "builtin":
            group = "builtins (C)"
        elif not group.startswith("postwire"):
            group = "other Python"
        by_place[group] += tt
        rows.append((tt, nc, ct, f"{place}:{line} {func}" if line else func))
    rows.sort(reverse=True)
    body = [
        [
            f"`{name}`",
            fmt(nc / n, ".2f"),
            fmt(tt / n * 1e6, ".2f"),
            fmt(tt / total_tt * 100, ".1f", "%"),
            fmt(ct / n * 1e6, ".2f"),
        ]
        for tt, nc, ct, name in rows[:top]
    ]
    md = table(
        ["function (self time order)", "calls / msg", "self µs / msg", "self %", "cum µs / msg"],
        body,
    )
    shares = ", ".join(
        f"{group} {share / total_tt * 100:.0f} %" for group, share in by_place.most_common()
    )
    md += (
        f"\n\nFunction calls per message: {total_calls / n:.0f}. Self time by origin: {shares}. "
        f"Total under cProfile: {total_tt / n * 1e6:.1f} µs per message (cProfile inflates "
        "call-heavy code, so read the call counts and the order, not the absolute times)."
    )
    return md, {"calls_per_msg": total_calls / n, "us_per_msg": total_tt / n * 1e6}


_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def pyspy_table(raw_file: Path, top: int = 15) -> str:
    """Self and inclusive sample shares from py-spy's raw (collapsed stack) output."""
    self_counts: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw_file.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        if FOCUS not in stack:
            continue  # start-up, imports and message building are not the hot path
        count = int(count_text)
        total += count
        names = []
        for frame in stack.split(";"):
            m = _FRAME.match(frame.strip())
            names.append(f"{_where(m['file'])} {m['func']}" if m else frame.strip())
        self_counts[names[-1]] += count
        for name in set(names):
            incl[name] += count
    if not total:
        return "(py-spy collected no samples)"
    rows = [
        [f"`{name}`", fmt(c / total * 100, ".1f", "%"), fmt(incl[name] / total * 100, ".1f", "%")]
        for name, c in self_counts.most_common(top)
    ]
    return (
        f"{total} samples with `{FOCUS}` on the stack (start-up and message building left "
        "out). Wall-clock samples: time blocked in `recv` waiting for smtp-sink counts too.\n\n"
        + table(["function", "self", "inclusive"], rows)
    )


def _strace_calls(path: Path) -> dict[str, int]:
    calls: dict[str, int] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        tokens = line.split()
        if len(tokens) < 5 or not tokens[0].replace(".", "").isdigit():
            continue
        name = tokens[-1]
        if name == "total":
            continue
        calls[name] = calls.get(name, 0) + int(tokens[3])
    return calls


def strace_table(port: int, n: int, tmp: Path) -> str:
    counts = []
    for count in (n, 0):
        out = tmp / f"strace-{count}.txt"
        result = _worker(
            "throughput",
            *WORKLOAD,
            "--port",
            str(port),
            "--n",
            str(count),
            wrap=("strace", "-f", "-c", "-o", str(out)),
        )
        if "error" in result:
            return f"(strace failed: {result['error'][:200]})"
        counts.append(_strace_calls(out))
    with_n, without = counts
    per_msg = {k: (v - without.get(k, 0)) / n for k, v in with_n.items()}
    rows = [[f"`{k}`", fmt(v, ".3f")] for k, v in sorted(per_msg.items(), key=lambda kv: -kv[1])]
    rows = [r for r in rows if r[1] not in ("0.000", "-0.000")][:12]
    total = sum(per_msg.values())
    return (
        table(["system call", "calls / message"], rows)
        + f"\n\nAll system calls: {total:.3f} per message ({n} messages minus a run with none)."
    )


def run(info: dict[str, str], n: int) -> Section:
    print(f"profile: postwire Client.send_many, {n} x 1 KiB to smtp-sink")
    parts = [
        machine_line(info),
        "",
        f"Workload: `python benchmarks/worker.py throughput --client postwire-sync --n {n}` "
        f"(1 KiB messages, one connection, smtp-sink: pipelined DATA); smtp-sink and the client "
        f"are pinned to CPU {CPU}.",
    ]
    raw: dict[str, object] = {}
    with (
        tempfile.TemporaryDirectory(prefix="postwire-bench-prof-") as tmp_name,
        smtp_sink() as sink,
    ):
        tmp = Path(tmp_name)
        port = sink.port
        os.sched_setaffinity(sink.pid, {CPU})
        sink_before = sink.cpu_seconds()
        base = _worker("throughput", *WORKLOAD, "--port", str(port), "--n", str(n))
        sink_after = sink.cpu_seconds()
        if "error" not in base:
            raw["msg_per_s"] = n / base["elapsed"]
            user, system = base["cpu_user"] / n * 1e6, base["cpu_sys"] / n * 1e6
            raw["cpu_user_us"], raw["cpu_sys_us"] = user, system
            wall = base["elapsed"] / n * 1e6
            server = None
            if sink_before is not None and sink_after is not None:
                server = (sink_after - sink_before) / n * 1e6
                raw["sink_cpu_us"] = server
            parts += [
                "",
                f"Without a profiler: {n / base['elapsed']:,.0f} msg/s, {wall:.1f} µs of wall "
                f"time per message. Per message the client process used {user:.1f} µs of user "
                f"CPU and {system:.1f} µs of system CPU; smtp-sink used "
                f"{fmt(server, '.1f')} µs.",
            ]
        stats_file = tmp / "send_many.pstats"
        result = _worker(
            "throughput",
            *WORKLOAD,
            "--port",
            str(port),
            "--n",
            str(n),
            "--cprofile",
            str(stats_file),
        )
        parts += ["", "### cProfile (top functions by self time)", ""]
        if "error" in result:
            parts.append(f"(cProfile run failed: {result['error'][:300]})")
        else:
            md, figures = cprofile_table(stats_file, n)
            raw.update(figures)
            parts.append(md)
        async_stats = tmp / "async_send_many.pstats"
        result = _worker(
            "throughput",
            *ASYNC_WORKLOAD,
            "--port",
            str(port),
            "--n",
            str(n),
            "--cprofile",
            str(async_stats),
        )
        parts += ["", "### cProfile of AsyncClient.send_many (same workload, top 12)", ""]
        if "error" in result:
            parts.append(f"(cProfile run failed: {result['error'][:300]})")
        else:
            md, figures = cprofile_table(async_stats, n, top=12)
            raw["async"] = figures
            parts.append(md)
        parts += ["", "### py-spy (sampled, 1000 Hz, non-blocking)", ""]
        pyspy = shutil.which("py-spy")
        if pyspy is None:
            parts.append("(py-spy is not installed: `pip install py-spy` to add this view)")
        else:
            raw_file = tmp / "pyspy.txt"
            result = _worker(
                "throughput",
                *WORKLOAD,
                "--port",
                str(port),
                "--n",
                str(n * 3),
                wrap=(
                    pyspy,
                    "record",
                    "--nonblocking",
                    "-r",
                    "1000",
                    "-f",
                    "raw",
                    "-o",
                    str(raw_file),
                    "--",
                ),
            )
            if "error" in result or not raw_file.exists():
                parts.append(f"(py-spy failed: {str(result.get('error', 'no output'))[:300]})")
            else:
                parts.append(pyspy_table(raw_file))
        parts += ["", "### System calls per message (strace -f -c)", ""]
        if shutil.which("strace") is None:
            parts.append("(strace is not installed)")
        else:
            parts.append(strace_table(port, n, tmp))
    md = "\n".join(parts)
    print(md)
    return Section("Profile: postwire sync send_many, 1 KiB to smtp-sink", md, [], raw)
