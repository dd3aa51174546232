"""The mail catcher: SMTP ingest with the web UI running, and the list view of 10,000 messages.

``postwire capture`` runs as a child process (its web UI on, one event-stream client
connected, as an open browser tab would be). Ingest: 1 KiB messages sent by smtp-source (a C
client from Postfix: it measures the server, not a Python client) over 1 and over 8
connections, and by postwire's own ``Client.send_many``. List view: the catcher then holds
10,000 messages and headless Chromium (Selenium, Debian's chromium-driver) loads the UI; the
page records when its list is rendered and clickable (``window.__catcher.listReadyAt``,
milliseconds since navigation start), and the time to show the next page and a search result.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from _common import (
    HOST,
    RECIPIENT,
    SENDER,
    SMTP_SOURCE,
    fmt,
    free_port,
    machine_line,
    message,
    run_tool,
    stop,
    table,
    verdict,
    wait_listening,
)
from results import Section, Target

LIST_SIZE = 10_000
MAILPIT_STATED = "200-300 msg/s"


def process_cpu(pid: int) -> float | None:
    """User + system CPU seconds of every thread of ``pid`` (``/proc/PID/stat``)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


class Catcher:
    """A ``postwire capture`` child process with its web UI, and an event-stream reader."""

    def __init__(self, proc: subprocess.Popen[bytes], port: int, web: int) -> None:
        self.proc, self.port, self.web = proc, port, web
        self.url = f"http://{HOST}:{web}/"
        self.events = 0
        self._reader = threading.Thread(target=self._read_events, daemon=True)
        self._reader.start()

    def _read_events(self) -> None:
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(self.url + "api/v1/events", timeout=600) as stream,
        ):
            for line in stream:
                if line.startswith(b"event:"):
                    self.events += 1

    def count(self) -> int:
        with urllib.request.urlopen(self.url + "api/v1/info", timeout=30) as r:
            return int(json.load(r)["Messages"])

    def clear(self) -> None:
        request = urllib.request.Request(self.url + "api/v1/messages", method="DELETE")
        urllib.request.urlopen(request, timeout=60).close()

    def wait_count(self, n: int, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while self.count() < n:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the catcher holds {self.count()} of {n} messages")
            time.sleep(0.1)


@contextlib.contextmanager
def catcher() -> Iterator[Catcher]:
    port, web = free_port(), free_port()
    with tempfile.TemporaryDirectory() as home:
        env = dict(os.environ, XDG_DATA_HOME=home)
        command = [sys.executable, "-m", "postwire", "capture", "--tls", "none"]
        proc = subprocess.Popen(
            [*command, "--port", str(port), "--web", f"{HOST}:{web}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        try:
            wait_listening(port, proc)
            wait_listening(web, proc)
            yield Catcher(proc, port, web)
        finally:
            stop(proc)


def _source(port: int, n: int, sessions: int) -> list[str]:
    return [
        SMTP_SOURCE, "-d", "-s", str(sessions), "-m", str(n), "-l", "1024",
        "-f", SENDER, "-t", RECIPIENT, f"{HOST}:{port}",
    ]  # fmt: skip


def _postwire(port: int, n: int) -> float:
    from postwire import Client

    messages = [message(i) for i in range(n)]
    start = time.perf_counter()
    with Client(HOST, port, tls="none", timeout=60) as client:
        results = client.send_many((m, SENDER, [RECIPIENT]) for m in messages)
    elapsed = time.perf_counter() - start
    failed = [r for r in results if isinstance(r, Exception)]
    if failed:
        raise RuntimeError(f"{len(failed)} sends failed: {failed[0]}")
    return elapsed


def measure_ingest(c: Catcher, n: int, runs: int) -> dict[str, list[float]]:
    rates: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    contenders = ["smtp-source -s 1", "smtp-source -s 8", "postwire Client.send_many, 1 conn"]
    for run in range(runs):
        for name in contenders:
            c.clear()
            before = process_cpu(c.proc.pid)
            if name.startswith("smtp-source"):
                sessions = int(name.rsplit(" ", 1)[1])
                done = run_tool(_source(c.port, n, sessions))
                if "error" in done:
                    raise RuntimeError(done["error"])
                elapsed = float(done["elapsed"])
            else:
                elapsed = _postwire(c.port, n)
            c.wait_count(n)
            after = process_cpu(c.proc.pid)
            rates.setdefault(name, []).append(n / elapsed)
            if before is not None and after is not None:
                cpu.setdefault(name, []).append((after - before) / n * 1e6)
            print(f"  run {run + 1}: {name}: {n / elapsed:,.0f} msg/s")
    return {"rates": rates, "cpu": cpu}  # type: ignore[dict-item]


def measure_list_view(c: Catcher, loads: int) -> dict[str, list[float]]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    c.clear()
    done = run_tool(_source(c.port, LIST_SIZE, 8))
    if "error" in done:
        raise RuntimeError(done["error"])
    c.wait_count(LIST_SIZE)
    profile = tempfile.mkdtemp(prefix="postwire-bench-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}",
        "--window-size=1400,900",
    ):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    figures: dict[str, list[float]] = {"load": [], "next page": [], "search": []}
    first_search: list[float] = []
    try:
        for _ in range(loads + 1):  # the first load warms the browser's cache: not counted
            driver.get("about:blank")
            driver.get(c.url)
            ready = _wait_js(driver, "return window.__catcher && window.__catcher.listReadyAt")
            rows = driver.execute_script("return document.querySelectorAll('#list tr').length")
            assert rows == 51, rows  # the header row and 50 messages
            next_ms = driver.execute_async_script(_TIMED_CLICK)
            search_ms = driver.execute_async_script(_TIMED_SEARCH, "9999")
            if _ == 0:  # the first search reads every message once (then kept): cold figure
                first_search.append(float(search_ms))
            else:
                figures["load"].append(float(ready))
                figures["next page"].append(float(next_ms))
                figures["search"].append(float(search_ms))
            print(f"  list of {LIST_SIZE}: ready {ready:.0f} ms, next {next_ms:.0f} ms, "
                  f"search {search_ms:.0f} ms")  # fmt: skip
    finally:
        driver.quit()
    figures["first search (cold)"] = first_search
    return figures


# Time from a click on "Older" to the next render of the list (ms).
_TIMED_CLICK = """
const done = arguments[arguments.length - 1];
const before = window.__catcher.renders, t0 = performance.now();
document.getElementById('next').click();
(function wait() {
  if (window.__catcher.renders > before) done(performance.now() - t0); else setTimeout(wait, 1);
})();
"""
# Time from a search request to its rendered result, without the box's 200 ms typing pause.
_TIMED_SEARCH = """
const done = arguments[arguments.length - 1], text = arguments[0];
const box = document.getElementById('search');
const t0 = performance.now();
fetch('/api/v1/search?query=' + encodeURIComponent(text) + '&start=0&limit=50')
  .then(r => r.json()).then(d => { done(performance.now() - t0); });
"""


def _wait_js(driver: Any, script: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = driver.execute_script(script)
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"page not ready after {timeout} s")
        time.sleep(0.01)


def run(info: dict[str, str], n: int, runs: int, loads: int) -> Section:
    print(f"catcher: ingest {n} messages x {runs} runs; list view of {LIST_SIZE} x {loads}")
    with catcher() as c:
        ingest = measure_ingest(c, n, runs)
        view = measure_list_view(c, loads)
        events = c.events
    rates, cpu = ingest["rates"], ingest["cpu"]
    rows = []
    for name, values in rates.items():
        cpu_us = statistics.median(cpu[name]) if cpu.get(name) else None
        rows.append([
            name, fmt(statistics.median(values)), f"{min(values):,.0f} to {max(values):,.0f}",
            fmt(cpu_us, ".0f"),
        ])  # fmt: skip
    best = max(statistics.median(v) for v in rates.values())
    one_conn = statistics.median(rates["smtp-source -s 1"])
    med = {k: statistics.median(v) for k, v in view.items()}
    md = "\n".join(
        [
            machine_line(info),
            "",
            __doc__.split("\n\n", 1)[1].replace("\n", " ").strip(),
            "",
            f"### Ingest: {n} messages of 1 KiB per run, {runs} interleaved runs, web UI on",
            "",
            table(["sender", "msg/s (median)", "range", "catcher CPU µs / msg"], rows),
            "",
            f"Mailpit states {MAILPIT_STATED} for itself (its own README's figure, not "
            "measured here). The event-stream client received "
            f"{events:,} events during the runs (bursts are sent as one `reload`).",
            "",
            f"### List view: {LIST_SIZE:,} messages in headless Chromium, {loads} loads",
            "",
            table(
                ["step", "median ms", "range ms"],
                [[k, f"{med[k]:.0f}", f"{min(v):.0f} to {max(v):.0f}"] for k, v in view.items()],
            ),
            "",
            "*load*: from navigation start to the first page of 50 rows rendered and clickable "
            "(the page's own mark). *next page*: a click on Older to the next rendering. "
            "*search*: a search request over all messages to its JSON answer (the box adds a "
            "200 ms typing pause, not counted); *first search (cold)*: the first one after the "
            "messages arrived, which reads each message's text once (later searches reuse it).",
        ]
    )
    targets = [
        Target(
            "catcher ingest with the web UI running >= 1,000 msg/s (1 KiB; Mailpit states "
            f"{MAILPIT_STATED})",
            f"{one_conn:,.0f} msg/s over 1 connection, {best:,.0f} at best",
            verdict(one_conn, 1000),
        ),
        Target(
            f"list view of {LIST_SIZE:,} messages usable in the headless browser < 1 s",
            f"{med['load']:.0f} ms",
            verdict(med["load"], 1000, at_most=True),
        ),
    ]
    raw = {"ingest": ingest, "list_view": view, "events": events}
    return Section("Mail catcher: ingest with the web UI, and its list view", md, targets, raw)
