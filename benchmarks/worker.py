"""One client workload in a fresh interpreter; prints one JSON line with what it measured.

Run by the benchmark scripts, never imported by them, so that every measurement starts from a
clean process (no heap, import or GC state left over from another client)::

    python benchmarks/worker.py throughput --client smtplib --port 2525 --n 2000
    python benchmarks/worker.py memory --client postwire-sync --port 2525 --file big.eml

Timing marks: ``t0`` before connecting, ``t1`` once connected, ``t2`` when every message was
sent and answered, ``t3`` after QUIT.  Throughput uses ``t3 - t0`` (as smtp-source is timed
from outside, connection set-up included); latency uses ``t2 - t1`` (the messages only).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import resource
import smtplib
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import aiosmtplib
from _common import HOST, RECIPIENT, SENDER, message

from postwire import AsyncClient, Client

# Everything is imported before the clock starts.  The pool module may not exist yet.
try:
    from postwire.client import AsyncPool, Pool
except ImportError:  # pragma: no cover - reported as an error row by the parent
    AsyncPool = Pool = None  # type: ignore[assignment,misc]

TIMEOUT = 60.0

Marks = list[float]


class Tally:
    """Counts delivered messages and keeps the first failure's text."""

    def __init__(self) -> None:
        self.ok = 0
        self.failed = 0
        self.first_error = ""

    def add(self, outcome: object) -> None:
        if isinstance(outcome, BaseException):
            self.failed += 1
            if not self.first_error:
                self.first_error = f"{type(outcome).__name__}: {outcome}"
        else:
            self.ok += 1


def _mark(marks: Marks) -> None:
    marks.append(time.perf_counter())


# -- postwire -------------------------------------------------------------------------------

#: Reads by the sync client that blocked this long count as stalls (see ``--stalls``).
STALL = 0.030


def instrument_reads(quickack: bool) -> list[float]:
    """Diagnostics for the sync client: time every socket read; optionally set TCP_QUICKACK.

    This wraps a private method of postwire (``postwire._net.sync.SocketStream.read``), for
    diagnosis only: it answers whether replies wait for the client's delayed ACK (Linux holds
    an ACK up to 40 ms when it has nothing to send), and what re-arming TCP_QUICKACK before
    each read would gain.  The rows that use it say so.
    """
    import socket

    from postwire._net import sync

    waits: list[float] = []
    original = sync.SocketStream.read

    def read(self: sync.SocketStream, timeout: float | None, step: str) -> bytes:
        if quickack:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        start = time.perf_counter()
        try:
            return original(self, timeout, step)
        finally:
            waits.append(time.perf_counter() - start)

    sync.SocketStream.read = read  # type: ignore[method-assign]
    return waits


def postwire_sync(args: argparse.Namespace, msgs: list[bytes], marks: Marks, tally: Tally) -> None:
    items = [(m, SENDER, [RECIPIENT]) for m in msgs]
    with Client(HOST, args.port, tls="none", timeout=TIMEOUT, chunking=args.chunking) as client:
        _mark(marks)
        for outcome in client.send_many(items, window=args.window):
            tally.add(outcome)
        _mark(marks)


def postwire_loop(args: argparse.Namespace, msgs: list[bytes], marks: Marks, tally: Tally) -> None:
    """One ``Client.send`` per message (PIPELINING within a transaction, none across)."""
    with Client(HOST, args.port, tls="none", timeout=TIMEOUT, chunking=args.chunking) as client:
        _mark(marks)
        for m in msgs:
            try:
                tally.add(client.send(m, sender=SENDER, recipients=[RECIPIENT]))
            except Exception as exc:
                tally.add(exc)
        _mark(marks)


def postwire_noop(args: argparse.Namespace, msgs: list[bytes], marks: Marks, tally: Tally) -> None:
    """``len(msgs)`` NOOPs: one round trip each, to calibrate the proxy's real RTT."""
    with Client(HOST, args.port, tls="none", timeout=TIMEOUT) as client:
        _mark(marks)
        for _ in msgs:
            tally.add(client.noop())
        _mark(marks)


async def postwire_async(
    args: argparse.Namespace, msgs: list[bytes], marks: Marks, tally: Tally
) -> None:
    items = [(m, SENDER, [RECIPIENT]) for m in msgs]
    client = AsyncClient(HOST, args.port, tls="none", timeout=TIMEOUT, chunking=args.chunking)
    async with client:
        _mark(marks)
        async for outcome in client.send_many_iter(items, window=args.window):
            tally.add(outcome)
        _mark(marks)


def postwire_pool(args: argparse.Namespace, msgs: list[bytes], marks: Marks, tally: Tally) -> None:
    if Pool is None:
        raise RuntimeError("postwire.pool is not available")
    items = [(m, SENDER, [RECIPIENT]) for m in msgs]
    # Connections live for the whole run, as aiosmtplib's 20 clients do.
    with Pool(
        HOST, args.port, max_connections=args.conns, max_messages_per_connection=10**9,
        tls="none", timeout=TIMEOUT, chunking=args.chunking, window=args.window,
    ) as pool:  # fmt: skip
        _mark(marks)
        for outcome in pool.send_many(items):
            tally.add(outcome)
        _mark(marks)


async def postwire_apool(
    args: argparse.Namespace, msgs: list[bytes], marks: Marks, tally: Tally
) -> None:
    if AsyncPool is None:
        raise RuntimeError("postwire.pool is not available")
    items = [(m, SENDER, [RECIPIENT]) for m in msgs]
    pool = AsyncPool(
        HOST, args.port, max_connections=args.conns, max_messages_per_connection=10**9,
        tls="none", timeout=TIMEOUT, chunking=args.chunking, window=args.window,
    )  # fmt: skip
    async with pool:
        _mark(marks)
        async for outcome in pool.send_many_iter(items):
            tally.add(outcome)
        _mark(marks)


# -- smtplib and aiosmtplib ---------------------------------------------------------------


def smtplib_loop(args: argparse.Namespace, msgs: list[bytes], marks: Marks, tally: Tally) -> None:
    with smtplib.SMTP(HOST, args.port, timeout=TIMEOUT) as smtp:
        smtp.ehlo()
        _mark(marks)
        for m in msgs:
            try:
                smtp.sendmail(SENDER, [RECIPIENT], m)
                tally.add(None)
            except smtplib.SMTPException as exc:
                tally.add(exc)
        _mark(marks)


async def aiosmtplib_clients(
    args: argparse.Namespace, msgs: list[bytes], marks: Marks, tally: Tally
) -> None:
    """``args.conns`` aiosmtplib clients, each sending its share in turn, under gather."""
    clients = [
        aiosmtplib.SMTP(
            hostname=HOST, port=args.port, timeout=TIMEOUT, use_tls=False, start_tls=False
        )
        for _ in range(args.conns)
    ]
    await asyncio.gather(*(c.connect() for c in clients))
    _mark(marks)

    async def one(client: aiosmtplib.SMTP, share: list[bytes]) -> None:
        for m in share:
            try:
                await client.sendmail(SENDER, [RECIPIENT], m)
                tally.add(None)
            except aiosmtplib.SMTPException as exc:
                tally.add(exc)

    shares = [msgs[i :: args.conns] for i in range(args.conns)]
    await asyncio.gather(*(one(c, s) for c, s in zip(clients, shares, strict=True)))
    _mark(marks)
    await asyncio.gather(*(c.quit() for c in clients))


Workload = Callable[[argparse.Namespace, list[bytes], Marks, Tally], object]

CLIENTS: dict[str, Workload] = {
    "postwire-sync": postwire_sync,
    "postwire-loop": postwire_loop,
    "postwire-noop": postwire_noop,
    "postwire-async": postwire_async,
    "postwire-pool": postwire_pool,
    "postwire-apool": postwire_apool,
    "smtplib": smtplib_loop,
    "aiosmtplib": aiosmtplib_clients,
}


def _cpu() -> tuple[float, float]:
    """User and system CPU seconds of this process so far (all its threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


def _run(
    workload: Workload, args: argparse.Namespace, msgs: list[bytes], tally: Tally
) -> tuple[Marks, tuple[float, float]]:
    marks: Marks = []
    user0, sys0 = _cpu()
    _mark(marks)
    result = workload(args, msgs, marks, tally)
    if asyncio.iscoroutine(result):
        coro: Coroutine[Any, Any, None] = result
        asyncio.run(coro)
    _mark(marks)
    user1, sys1 = _cpu()
    return marks, (user1 - user0, sys1 - sys0)


def throughput(args: argparse.Namespace) -> dict[str, Any]:
    msgs = [message(i, args.size) for i in range(args.n)]
    tally = Tally()
    profiler = cProfile.Profile() if args.cprofile else None
    if profiler is not None:
        profiler.enable()
    marks, (user, system) = _run(CLIENTS[args.client], args, msgs, tally)
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(args.cprofile)
    t0, t1, t2, t3 = marks
    return {
        "elapsed": t3 - t0,
        "send_elapsed": t2 - t1,
        "cpu_user": user,
        "cpu_sys": system,
        "ok": tally.ok,
        "failed": tally.failed,
        "first_error": tally.first_error,
    }


# -- memory ---------------------------------------------------------------------------------


def _status(field: str) -> int:
    """A ``VmHWM``/``VmRSS`` line of /proc/self/status, in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak() -> bool:
    """Make VmHWM equal to the current RSS (Linux >= 4.0: write 5 to clear_refs)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


async def _aiosmtplib_send(port: int, path: Path, before: Callable[[], None]) -> None:
    smtp = aiosmtplib.SMTP(
        hostname=HOST, port=port, timeout=TIMEOUT, use_tls=False, start_tls=False
    )
    async with smtp:
        before()
        await smtp.sendmail(SENDER, [RECIPIENT], path.read_bytes())


async def _postwire_async_send(port: int, path: Path, before: Callable[[], None]) -> None:
    async with AsyncClient(HOST, port, tls="none", timeout=TIMEOUT) as client:
        before()
        with path.open("rb") as f:
            await client.send(f, sender=SENDER, recipients=[RECIPIENT])


def memory(args: argparse.Namespace) -> dict[str, Any]:
    """Peak RSS added by sending ``args.file`` once; connected and imported before the baseline.

    Clients that take bytes read the file after the baseline: holding the message is part of
    what they cost.
    """
    path = Path(args.file)
    base: dict[str, int] = {}

    def before() -> None:
        base["reset"] = int(_reset_peak())
        base["rss"] = _status("VmRSS")
        base["hwm"] = _status("VmHWM")
        base["maxrss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    if args.client in ("postwire-sync", "postwire-bytes"):
        with Client(HOST, args.port, tls="none", timeout=TIMEOUT) as client:
            before()
            if args.client == "postwire-sync":
                with path.open("rb") as f:
                    client.send(f, sender=SENDER, recipients=[RECIPIENT])
            else:
                client.send(path.read_bytes(), sender=SENDER, recipients=[RECIPIENT])
    elif args.client == "postwire-async":
        asyncio.run(_postwire_async_send(args.port, path, before))
    elif args.client == "smtplib":
        with smtplib.SMTP(HOST, args.port, timeout=TIMEOUT) as smtp:
            smtp.ehlo()
            before()
            smtp.sendmail(SENDER, [RECIPIENT], path.read_bytes())
    elif args.client == "aiosmtplib":
        asyncio.run(_aiosmtplib_send(args.port, path, before))
    else:
        raise SystemExit(f"unknown memory client {args.client!r}")
    peak = _status("VmHWM")
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    # With the reset, VmHWM before == RSS before; without it, only growth above the old peak
    # shows.
    start = base["rss"] if base["reset"] else base["hwm"]
    return {
        "size": path.stat().st_size,
        "rss_before": base["rss"],
        "hwm_before": base["hwm"],
        "hwm_after": peak,
        "added": peak - start,
        "maxrss_before": base["maxrss"],
        "maxrss_after": maxrss,
        "peak_reset": bool(base["reset"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", choices=["throughput", "memory"])
    parser.add_argument("--client", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--n", type=int, default=2000, help="messages (throughput)")
    parser.add_argument("--size", type=int, default=1024, help="body bytes per message")
    parser.add_argument("--conns", type=int, default=1, help="connections (pools, aiosmtplib)")
    parser.add_argument("--window", type=int, default=8, help="BDAT transactions in flight")
    parser.add_argument("--no-chunking", dest="chunking", action="store_false")
    parser.add_argument("--file", help="message file (memory)")
    parser.add_argument("--cprofile", help="write cProfile stats of the run to this file")
    parser.add_argument(
        "--stalls", action="store_true", help="count sync reads blocked >= 30 ms (diagnostic)"
    )
    parser.add_argument(
        "--quickack", action="store_true", help="TCP_QUICKACK before each sync read (diagnostic)"
    )
    args = parser.parse_args()
    if args.mode == "throughput" and args.client not in CLIENTS:
        parser.error(f"unknown client {args.client!r}; one of {', '.join(CLIENTS)}")
    waits = instrument_reads(args.quickack) if args.stalls or args.quickack else None
    result = throughput(args) if args.mode == "throughput" else memory(args)
    if waits is not None:
        result["reads"] = len(waits)
        result["stalls"] = sum(1 for w in waits if w >= STALL)
        result["stalled_seconds"] = sum(w for w in waits if w >= STALL)
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
