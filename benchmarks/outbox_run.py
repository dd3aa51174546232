"""The outbox run: postwire's outbox beside django-mailer and django-post_office, on SQLite and on
PostgreSQL, delivering 1 KiB messages to smtp-sink; then the chaos figures.

- put: messages per second queued one at a time (one transaction each, SQLite with
  ``synchronous=FULL``, PostgreSQL with fsync on) and in bulk (postwire ``put_many``,
  post_office ``send_many``; django-mailer has no bulk call: ``send_mass_mail`` loops);
- drain: the time for 1 and for 4 worker processes to send a queue of N messages
  (postwire ``postwire outbox work --until-empty``; django-mailer ``send_all()`` per process;
  post_office ``send_queued_mail --processes N``), process start-up included for all;
- direct: postwire's ``Pool`` (20 connections) and ``smtp-source -s 20`` sending the same
  messages with no queue at all;
- latency: put to accepted (the relay's clock), with an idle worker already running;
- chaos: tests/outbox/test_chaos.py (the scripted relay) and test_chaos_capture.py (the
  capture server restarted under the workers) run once per database, their figures copied here.

The peers run in their own virtual environment (.work/outbox-peers, made here with pip:
Django, django-mailer, django-post_office, psycopg), never in postwire's.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import (
    HERE,
    ROOT,
    SMTP_SOURCE,
    WORKER_TIMEOUT,
    fmt,
    machine_line,
    ratio,
    run_tool,
    smtp_sink,
    table,
    verdict,
)
from results import Section, Target

PEERS = ROOT / ".work" / "outbox-peers"
PEER_PACKAGES = (
    "Django>=4.2",
    "django-mailer>=2.3",
    "django-post_office>=3.8",
    "psycopg[binary]>=3.1",
)
CONTENDERS = ("postwire", "mailer", "post_office")
NAMES = {
    "postwire": "postwire outbox",
    "mailer": "django-mailer",
    "post_office": "django-post_office",
}
KINDS = ("sqlite", "postgresql")


def _tests_on_path() -> None:
    tests = str(ROOT / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)


def peers_python() -> str:
    """The peers' interpreter, installed from PyPI on first use."""
    python = PEERS / "bin" / "python"
    stamp = PEERS / ".installed"
    if not stamp.exists():
        shutil.rmtree(PEERS, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(PEERS)], check=True, timeout=300)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             *PEER_PACKAGES],
            check=True, timeout=900,
        )  # fmt: skip
        stamp.write_text("ok\n")
    return str(python)


def peer_versions() -> str:
    code = (
        "from importlib.metadata import version as v;"
        "print(', '.join(f'{p} {v(p)}' for p in ('Django','django-mailer','django-post_office')))"
    )
    done = subprocess.run([peers_python(), "-c", code], capture_output=True, text=True, timeout=60)
    return done.stdout.strip()


class Databases:
    """Fresh outbox databases: SQLite files, and databases on a private PostgreSQL (fsync on)."""

    def __init__(self, base: Path) -> None:
        _tests_on_path()
        from servers.postgres import PostgresServer

        self.base = base
        self.server = PostgresServer(base / "pg", fsync=True)
        self.count = 0

    def __enter__(self) -> Databases:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()

    def fresh(self, kind: str, tag: str) -> str:
        self.count += 1
        if kind == "sqlite":
            return f"{self.base}/{tag}-{self.count}.sqlite3"
        return self.server.database(f"{tag}_")


def _json(cmd: list[str], timeout: float = WORKER_TIMEOUT) -> dict[str, Any]:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = "\n".join(done.stderr.strip().splitlines()[-6:])
        return {"error": f"{' '.join(cmd[1:4])} exited {done.returncode}: {tail}"}
    return dict(json.loads(lines[-1]))


def _bench(*args: str) -> dict[str, Any]:
    return _json([sys.executable, str(HERE / "outbox_bench.py"), *args])


def _peer(peer: str, db: str, port: int, workdir: Path, *args: str) -> dict[str, Any]:
    return _json(
        [peers_python(), str(HERE / "outbox_peers.py"), "--peer", peer, "--db", db,
         "--port", str(port), "--workdir", str(workdir), *args]
    )  # fmt: skip


def _postwire_url(db: str) -> str:
    return db if db.startswith("postgresql://") else f"sqlite:///{db}"


# -- measurements ---------------------------------------------------------------------------


def put_rate(contender: str, kind: str, n: int, bulk: bool, dbs: Databases, port: int) -> Any:
    db = dbs.fresh(kind, f"put{contender}")
    action = "put-bulk" if bulk else "put"
    if contender == "postwire":
        out = _bench(action, "--db", _postwire_url(db), "--n", str(n))
    else:
        _peer(contender, db, port, dbs.base, "--action", "migrate")
        out = _peer(contender, db, port, dbs.base, "--action", action, "--n", str(n))
    return out.get("error") or n / out["seconds"]


def drain(contender: str, kind: str, n: int, workers: int, dbs: Databases, port: int) -> Any:
    """Seconds for ``workers`` processes to send a queue of ``n`` messages (and their CPU)."""
    db = dbs.fresh(kind, f"drain{contender}")
    if contender == "postwire":
        url = _postwire_url(db)
        prepared = _bench("put-bulk", "--db", url, "--n", str(n))
        if "error" in prepared:
            return prepared["error"]
        relay = f"smtp://127.0.0.1:{port}?tls=none"
        command = [sys.executable, "-m", "postwire", "outbox", "work", "--db", url, "--relay",
                   relay, "--until-empty", "--json"]  # fmt: skip
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        began = time.perf_counter()
        procs = [
            subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(workers)
        ]
        delivered = 0
        for proc in procs:
            out, err = proc.communicate(timeout=WORKER_TIMEOUT)
            if proc.returncode != 0:
                return f"worker exited {proc.returncode}: {err.strip()[-300:]}"
            delivered += int(json.loads(out)["delivered"])
        seconds = time.perf_counter() - began
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
        if delivered != n:
            return f"delivered {delivered} of {n}"
        return {"rate": n / seconds, "cpu": cpu / n}
    _peer(contender, db, port, dbs.base, "--action", "migrate")
    prepared = _peer(contender, db, port, dbs.base, "--action", "put-bulk", "--n", str(n))
    if "error" in prepared:
        return prepared["error"]
    out = _peer(contender, db, port, dbs.base, "--action", "drain", "--workers", str(workers))
    if "error" in out:
        return out["error"]
    if out["left"]:
        return f"{out['left']} of {n} still queued"
    return {"rate": n / out["seconds"], "cpu": out["cpu"] / n}


def latency(contender: str, kind: str, n: int, dbs: Databases) -> Any:
    """Put-to-accepted times (seconds) of ``n`` messages put 20 ms apart, a worker idling."""
    _tests_on_path()
    from servers.relay import ScriptedRelay

    db = dbs.fresh(kind, f"lat{contender}")
    with ScriptedRelay() as relay:
        if contender == "postwire":
            url = _postwire_url(db)
            _bench("put-bulk", "--db", url, "--n", "0")  # creates the tables
            idle = [sys.executable, "-m", "postwire", "outbox", "work", "--db", url, "--relay",
                    relay.url]  # fmt: skip
            put = [sys.executable, str(HERE / "outbox_bench.py"), "put-timed", "--db", url]
        else:
            _peer(contender, db, relay.port, dbs.base, "--action", "migrate")
            base = [peers_python(), str(HERE / "outbox_peers.py"), "--peer", contender, "--db",
                    db, "--port", str(relay.port), "--workdir", str(dbs.base)]  # fmt: skip
            idle = [*base, "--action", "idle"]
            put = [*base, "--action", "put-timed"]
        worker = subprocess.Popen(
            idle, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        try:
            time.sleep(2.0)  # started, and idle
            out = _json([*put, "--n", str(n), "--interval", "0.02"])
            if "error" in out:
                return out["error"]
            deadline = time.monotonic() + 60
            while len(relay.deliveries) < n and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(worker.pid, signal.SIGTERM)
            try:
                worker.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait(10)
        arrived = {d.subject: d.at for d in relay.deliveries}
    stamps = out["stamps"]
    times = [arrived[f"latency {i}"] - t for i, t in enumerate(stamps) if f"latency {i}" in arrived]
    if len(times) < n:
        return f"only {len(times)} of {n} arrived within 60 s"
    return times


def chaos() -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "chaos.jsonl"
        subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
             str(ROOT / "tests" / "outbox" / "test_chaos.py"),
             str(ROOT / "tests" / "outbox" / "test_chaos_capture.py")],
            cwd=ROOT, env={**os.environ, "POSTWIRE_CHAOS_REPORT": str(report)},
            capture_output=True, timeout=900, check=False,
        )  # fmt: skip
        if not report.exists():
            return []
        return [json.loads(line) for line in report.read_text().splitlines() if line.strip()]


# -- the run --------------------------------------------------------------------------------


def _median(values: list[Any]) -> float | None:
    numbers = [v for v in values if isinstance(v, (int, float))]
    return statistics.median(numbers) if numbers else None


def _micro(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1e6


def _percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def run(info: dict[str, str], n: int, runs: int, single: int, latency_n: int) -> Section:
    print(f"outbox: {n} messages, {runs} interleaved runs", flush=True)
    versions = peer_versions()
    puts: dict[tuple[str, str, bool], list[Any]] = {}
    drains: dict[tuple[str, str, int], list[Any]] = {}
    direct: dict[str, list[Any]] = {"pool": [], "source": []}
    lat: dict[tuple[str, str], Any] = {}
    errors: list[str] = []
    base = Path(tempfile.mkdtemp(prefix="postwire-bench-outbox-"))
    os.chmod(base, 0o755)
    try:
        with Databases(base) as dbs, smtp_sink() as sink:
            for r in range(runs):
                for kind in KINDS:
                    for contender in CONTENDERS:
                        for bulk in (False, True):
                            value = put_rate(
                                contender, kind, n if bulk else single, bulk, dbs, sink.port
                            )
                            puts.setdefault((contender, kind, bulk), []).append(value)
                        for workers in (1, 4):
                            value = drain(contender, kind, n, workers, dbs, sink.port)
                            drains.setdefault((contender, kind, workers), []).append(value)
                            print(
                                f"  run {r + 1} {kind} {contender} {workers}w: {value}", flush=True
                            )
                pool = _bench("pool", "--port", str(sink.port), "--n", str(n))
                direct["pool"].append(pool.get("error") or n / pool["seconds"])
                source = run_tool(
                    [SMTP_SOURCE, "-d", "-s", "20", "-m", str(n), "-l", "1024", "-f",
                     "bench@test.example", "-t", "rcpt@discard.test", f"127.0.0.1:{sink.port}"]
                )  # fmt: skip
                direct["source"].append(source.get("error") or n / source["elapsed"])
            for kind in KINDS:
                for contender in ("postwire", "mailer"):
                    lat[(contender, kind)] = latency(contender, kind, latency_n, dbs)
        figures = chaos()
    finally:
        shutil.rmtree(base, ignore_errors=True)
    for key, values in [*puts.items(), *drains.items()]:
        errors += [f"{key}: {v}" for v in values if isinstance(v, str)]
    return _section(
        info, versions, n, runs, single, latency_n, puts, drains, direct, lat, figures, errors
    )


def _section(
    info: dict[str, str],
    versions: str,
    n: int,
    runs: int,
    single: int,
    latency_n: int,
    puts: dict[tuple[str, str, bool], list[Any]],
    drains: dict[tuple[str, str, int], list[Any]],
    direct: dict[str, list[Any]],
    lat: dict[tuple[str, str], Any],
    figures: list[dict[str, Any]],
    errors: list[str],
) -> Section:
    def rate(key: tuple[str, str, int]) -> float | None:
        return _median([v["rate"] for v in drains.get(key, []) if isinstance(v, dict)])

    def cpu(key: tuple[str, str, int]) -> float | None:
        return _median([v["cpu"] for v in drains.get(key, []) if isinstance(v, dict)])

    pool = _median(direct["pool"])
    source = _median(direct["source"])
    parts = [
        machine_line(info) + f" Peers: {versions}.",
        "",
        f"{n} messages of 1 KiB (body shaped like smtp-source's) to smtp-sink on 127.0.0.1; "
        f"{runs} interleaved runs, medians. Single puts: {single} messages, one transaction "
        "each. SQLite: WAL, `synchronous=FULL` for postwire (Django's defaults for the peers); "
        "PostgreSQL 15 private server with fsync on. Drains count from starting the worker "
        "processes to the last one exiting with the queue empty (start-up included for all). "
        "Peers in their best documented modes (benchmarks/outbox_peers.py says which).",
        "",
    ]
    targets: list[Target] = []
    for kind in KINDS:
        rows = []
        for contender in CONTENDERS:
            rows.append([
                NAMES[contender],
                fmt(_median(puts.get((contender, kind, False), []))),
                fmt(_median(puts.get((contender, kind, True), []))),
                fmt(rate((contender, kind, 1))),
                fmt(rate((contender, kind, 4))),
                fmt(_micro(cpu((contender, kind, 4))), ".0f"),
            ])  # fmt: skip
        parts += [
            f"### {'SQLite' if kind == 'sqlite' else 'PostgreSQL'}",
            "",
            table(
                [
                    "contender",
                    "put, one at a time (msg/s)",
                    "put, bulk (msg/s)",
                    "drain, 1 worker (msg/s)",
                    "drain, 4 workers (msg/s)",
                    "CPU µs / msg (4 workers, all processes)",
                ],
                rows,
            ),
            "",
        ]
        ours = rate(("postwire", kind, 4))
        for peer in ("post_office", "mailer"):
            value = ratio(ours, rate((peer, kind, 4)))
            targets.append(
                Target(
                    f"outbox drain, 4 workers / {NAMES[peer]} (target >= 10x), {kind}",
                    fmt(value, ".1f", "x"),
                    verdict(value, 10),
                )
            )
        value = ratio(ours, pool)
        targets.append(
            Target(
                f"outbox drain, 4 workers / postwire Pool direct (target >= 0.5x), {kind}",
                fmt(value, ".2f", "x"),
                verdict(value, 0.5),
            )
        )
    bulk = _median(puts.get(("postwire", "sqlite", True), []))
    one = _median(puts.get(("postwire", "sqlite", False), []))
    targets.append(
        Target(
            "outbox put_many on SQLite (target >= 20,000 msg/s)", fmt(bulk), verdict(bulk, 20000)
        )
    )
    targets.append(
        Target(
            "outbox single put, synchronous=FULL (target >= 1,000 msg/s)",
            fmt(one),
            verdict(one, 1000),
        )
    )
    parts += [
        "### Sending directly (no queue)",
        "",
        table(
            ["sender", "msg/s"],
            [
                ["postwire Pool, 20 connections", fmt(pool)],
                ["smtp-source -d -s 20 (C)", fmt(source)],
            ],
        ),
        "",
    ]
    lat_rows = []
    for kind in KINDS:
        for contender in ("postwire", "mailer"):
            value = lat.get((contender, kind))
            if isinstance(value, list):
                p50, p99 = _percentile(value, 50) * 1000, _percentile(value, 99) * 1000
                lat_rows.append([NAMES[contender], kind, f"{p50:.1f}", f"{p99:.1f}"])
                if contender == "postwire":
                    targets.append(
                        Target(
                            f"outbox put-to-accepted p50, idle workers, {kind} (target <= 50 ms)",
                            f"{p50:.1f} ms (p99 {p99:.1f} ms)",
                            verdict(p50, 50, at_most=True),
                        )
                    )
            else:
                lat_rows.append([NAMES[contender], kind, "n/a", str(value)[:80]])
    lat_rows.append([NAMES["post_office"], "both", "n/a", "no idle worker (cron or Celery)"])
    parts += [
        f"### Put to accepted, an idle worker running ({latency_n} messages, 20 ms apart)",
        "",
        table(["contender", "database", "p50 (ms)", "p99 (ms)"], lat_rows),
        "",
    ]
    moon = ratio(rate(("postwire", "sqlite", 4)), source)
    targets.append(
        Target(
            "moonshot: outbox drain, 4 workers, SQLite / smtp-source -s 20 (>= 1x)",
            fmt(moon, ".2f", "x"),
            verdict(moon, 1),
        )
    )
    chaos_rows = [
        [f["database"], str(f["messages"]), str(f["recipients"]), str(f["kills"]), str(f["stops"]),
         ", ".join(f"{k} {v}" for k, v in f["restarts"].items()), str(f["lost"]),
         str(f["duplicates"]), str(f["uncertain"]),
         # The capture server run counts copies only (its limits are the scripted relay's job).
         *(["-", "-"] if "capture" in f["restarts"] else
           [str(f["max_connections"]), str(f["max_rate"])]),
         f"{f['seconds']:.0f}"]
        for f in figures
    ]  # fmt: skip
    parts += [
        "### Chaos (tests/outbox/test_chaos.py and test_chaos_capture.py, counted at the relay)",
        "",
        table(
            ["database", "messages", "recipients", "SIGKILLs", "SIGSTOPs", "restarts", "lost",
             "duplicates", "uncertain", "max connections (limit 4)", "max rate (limit 50/s)",
             "seconds"],
            chaos_rows,
        ) if chaos_rows else "(the chaos run did not report)",
        "",
    ]  # fmt: skip
    for f in figures:
        targets.append(
            Target(
                f"chaos on {f['database']}: nothing lost, duplicates <= uncertain",
                f"lost {f['lost']}, duplicates {f['duplicates']}, uncertain {f['uncertain']}",
                "met" if f["lost"] == 0 and f["duplicates"] <= f["uncertain"] else "NOT met",
            )
        )
    if errors:
        parts += ["Errors:", "", *[f"- {e}" for e in errors[:20]], ""]
    raw = {
        "puts": {str(k): v for k, v in puts.items()},
        "drains": {str(k): v for k, v in drains.items()},
        "direct": direct,
        "latency": {str(k): v for k, v in lat.items()},
        "chaos": figures,
    }
    return Section(
        "Outbox: durable delivery beside django-mailer and django-post_office",
        "\n".join(parts),
        targets,
        raw,
    )
