"""Latency: round trips per message behind a 20 ms round-trip proxy on loopback.

benchmarks/proxy.py delays every chunk by 10 ms in each direction without serialising them, so
a client pays 20 ms for every time it must wait for a reply before it can go on.  The count is
``time to send the messages / number of messages / 20 ms`` (connection set-up and QUIT are
left out).  smtp-sink offers PIPELINING only; Postfix also offers CHUNKING, which lets postwire
keep several BDAT transactions in flight (RFC 3030 §4.2 with RFC 2920).
"""

from __future__ import annotations

import contextlib
import statistics
from dataclasses import dataclass

from _common import (
    Series,
    delay_proxy,
    fmt,
    machine_line,
    postfix,
    ratio,
    run_worker,
    smtp_sink,
    table,
    verdict,
)
from results import Section, Target

DELAY = 0.010
RTT = 2 * DELAY
CALIBRATION_NOOPS = 20


@dataclass(frozen=True)
class Contender:
    key: str
    label: str
    server: str  # "sink" or "postfix"
    worker: tuple[str, ...]


CONTENDERS = (
    Contender(
        "pw_data", "postwire send_many, pipelined DATA", "sink", ("--client", "postwire-sync")
    ),
    Contender(
        "pw_async_data",
        "postwire AsyncClient.send_many, pipelined DATA",
        "sink",
        ("--client", "postwire-async"),
    ),
    Contender(
        "pw_loop_data",
        "postwire Client.send loop (pipelined within a message)",
        "sink",
        ("--client", "postwire-loop"),
    ),
    Contender("smtplib", "smtplib sendmail loop", "sink", ("--client", "smtplib")),
    Contender("aio1", "aiosmtplib sendmail loop", "sink", ("--client", "aiosmtplib")),
    Contender(
        "pf_bdat8",
        "postwire send_many, BDAT, window 8 (default)",
        "postfix",
        ("--client", "postwire-sync", "--window", "8"),
    ),
    Contender(
        "pf_bdat32",
        "postwire send_many, BDAT, window 32",
        "postfix",
        ("--client", "postwire-sync", "--window", "32"),
    ),
    Contender(
        "pf_data",
        "postwire send_many, pipelined DATA (chunking=False)",
        "postfix",
        ("--client", "postwire-sync", "--no-chunking"),
    ),
    Contender(
        "pf_loop_bdat",
        "postwire Client.send loop, BDAT",
        "postfix",
        ("--client", "postwire-loop"),
    ),
    Contender("pf_smtplib", "smtplib sendmail loop", "postfix", ("--client", "smtplib")),
)


def _send_time(port: int, worker: tuple[str, ...], n: int) -> tuple[float | None, str]:
    result = run_worker("throughput", *worker, "--port", str(port), "--n", str(n))
    if "error" in result:
        return None, str(result["error"])
    if result["failed"]:
        return None, f"{result['failed']} of {n} failed: {result['first_error']}"
    return float(result["send_elapsed"]), ""


def run(info: dict[str, str], n: int, runs: int) -> Section:
    print(f"latency behind a {RTT * 1000:.0f} ms RTT proxy: {n} messages x {runs} runs")
    proxied = {c.key: Series(c.label) for c in CONTENDERS}
    direct = {c.key: Series(c.label) for c in CONTENDERS}
    calib = {"sink": Series("NOOP sink"), "postfix": Series("NOOP postfix")}
    with contextlib.ExitStack() as stack:
        sink = stack.enter_context(smtp_sink()).port
        server = stack.enter_context(postfix())
        ports = {"sink": sink, "postfix": server.smtp_port}
        proxies = {k: stack.enter_context(delay_proxy(p, DELAY)) for k, p in ports.items()}
        for r in range(runs):
            for name, port in proxies.items():
                t, err = _send_time(port, ("--client", "postwire-noop"), CALIBRATION_NOOPS)
                if t is None:
                    calib[name].errors.append(err)
                else:
                    calib[name].values.append(t / CALIBRATION_NOOPS)
            for c in CONTENDERS:
                for where, ports_ in ((proxied, proxies), (direct, ports)):
                    t, err = _send_time(ports_[c.server], c.worker, n)
                    if t is None:
                        where[c.key].errors.append(err)
                    else:
                        where[c.key].values.append(t / n)
            print(
                f"  run {r + 1}/{runs}: "
                + ", ".join(
                    f"{c.key} {fmt(ratio(proxied[c.key].values[-1], RTT), '.2f')}"
                    if len(proxied[c.key].values) > r
                    else f"{c.key} error"
                    for c in CONTENDERS
                )
            )
    rtt = {k: s.median for k, s in calib.items()}
    rows = []
    per_msg: dict[str, float | None] = {}
    for c in CONTENDERS:
        p, d = proxied[c.key].median, direct[c.key].median
        per_msg[c.key] = ratio(p, RTT)
        measured_rtt = rtt[c.server]
        excess = ratio(None if p is None or d is None else p - d, measured_rtt)
        note = proxied[c.key].errors[0][:160] if proxied[c.key].errors else ""
        rows.append(
            [
                c.label,
                "smtp-sink" if c.server == "sink" else "Postfix",
                fmt(None if p is None else p * 1000, ".1f"),
                fmt(per_msg[c.key], ".2f"),
                fmt(excess, ".2f"),
                fmt(None if d is None else d * 1000, ".2f"),
                note,
            ]
        )
    targets = [
        Target(
            "behind a 20 ms RTT: postwire with PIPELINING (DATA) <= 1.1 round trips per message",
            fmt(per_msg["pw_data"], ".2f"),
            verdict(per_msg["pw_data"], 1.1, at_most=True),
        ),
        Target(
            "behind a 20 ms RTT: postwire with CHUNKING (BDAT window) <= 0.3 round trips per "
            "message",
            fmt(per_msg["pf_bdat8"], ".2f") + " (window 8)",
            verdict(per_msg["pf_bdat8"], 0.3, at_most=True),
        ),
        Target(
            "behind a 20 ms RTT: smtplib about 4 round trips per message (reference)",
            fmt(per_msg["smtplib"], ".2f"),
            "reference",
        ),
    ]
    md = "\n".join(
        [
            machine_line(info),
            "",
            f"{n} messages of 1 KiB per run, {runs} interleaved runs, each also run without the "
            "proxy. Proxy: benchmarks/proxy.py, 10 ms each way per chunk (timestamped queue, "
            "so pipelined chunks overlap). Measured RTT through the proxy (median of "
            f"{CALIBRATION_NOOPS} NOOPs): smtp-sink {fmt(_ms(rtt['sink']), '.1f')} ms, "
            f"Postfix {fmt(_ms(rtt['postfix']), '.1f')} ms (asyncio timer slack adds a little "
            "to the nominal 20 ms).",
            "",
            "*round trips / message* = time per message / 20 ms (nominal), the issue's "
            "measure; *excess* = (time per message with the proxy - without it) / measured "
            "RTT, which leaves out the server's own processing time.",
            "",
            table(
                [
                    "client",
                    "server",
                    "ms / message",
                    "round trips / message",
                    "excess round trips",
                    "ms / message without proxy",
                    "note",
                ],
                rows,
            ),
        ]
    )
    ratios = [
        ("smtplib / postwire pipelined DATA", ratio(per_msg["smtplib"], per_msg["pw_data"])),
        ("smtplib / postwire BDAT window 8", ratio(per_msg["pf_smtplib"], per_msg["pf_bdat8"])),
    ]
    md += "\n\n" + table(
        ["ratio of time per message", "value"], [[t, fmt(v, ".1f", "x")] for t, v in ratios]
    )
    print("round trips per message (nominal 20 ms):")
    for c in CONTENDERS:
        print(f"  {c.label} [{c.server}]: {fmt(per_msg[c.key], '.2f')}")
    for text, value in ratios:
        print(f"  {text}: {fmt(value, '.1f', 'x')}")
    raw = {
        "rtt": rtt,
        "proxied": {k: s.values for k, s in proxied.items()},
        "direct": {k: s.values for k, s in direct.items()},
        "errors": {k: s.errors for k, s in proxied.items() if s.errors},
        "median_per_message": {
            k: statistics.median(s.values) for k, s in proxied.items() if s.values
        },
    }
    return Section("Latency: round trips per message behind a 20 ms RTT", md, targets, raw)


def _ms(value: float | None) -> float | None:
    return None if value is None else value * 1000
