"""``postwire outbox work`` and ``manage.py postwire_outbox_work``: the worker's options.

One parser of the options (:func:`add_work_options`), one reading of them
(:func:`work_arguments`) and one way to stop on SIGTERM/SIGINT (:func:`stop_on_signals`),
shared by the command line and the Django management command.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

from .._core.errors import ConfigError, EntryNotFound, StateConflict, StorageError
from ..config import Settings, dkim_from_settings
from .connection import add_dkim_options
from .exits import CLIError, Exit

__all__ = [
    "add_work_options",
    "exit_for",
    "parse_duration",
    "positive_int",
    "stats_line",
    "stop_on_signals",
    "work_arguments",
]

_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")


def parse_duration(text: str) -> float:
    """``30``, ``30s``, ``5m``, ``2h``, ``7d``, ``1w`` as seconds."""
    found = _DURATION.match(text)
    if found is None:
        raise argparse.ArgumentTypeError(f"not a duration (like 30s, 5m, 2h, 7d): {text!r}")
    return float(found.group(1)) * _UNITS[found.group(2)]


def positive_int(text: str) -> int:
    """A whole number of at least 1 (argparse's ``type``)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1: {text!r}")
    return value


def add_work_options(work: argparse.ArgumentParser) -> None:
    """The options of ``outbox work`` but --db, --json and -v (``manage.py
    postwire_outbox_work`` takes these too; Django has its own -v)."""
    work.add_argument("--concurrency", type=positive_int, default=4, help="connections (4)")
    work.add_argument(
        "--until-empty",
        action="store_true",
        help="stop when nothing is ready and nothing is being sent (deferred entries wait)",
    )
    work.add_argument("--relay", metavar="URL", help="send everything through this SMTP URL")
    work.add_argument("--config", metavar="PATH", help="the config file (accounts = routes)")
    work.add_argument(
        "--lease",
        type=parse_duration,
        default=30.0,
        metavar="DURATION",
        help="how long a claim holds without a heartbeat (30s)",
    )
    work.add_argument(
        "--poll",
        type=parse_duration,
        default=1.0,
        metavar="DURATION",
        help="how often an idle worker looks, when no wake-up comes (1s)",
    )
    work.add_argument("--batch", type=positive_int, default=64, help="entries per claim (64)")
    work.add_argument(
        "--mark-ahead",
        type=positive_int,
        default=32,
        help="commit points recorded per commit in a pipelined run (32); a crash leaves "
        "at most this many per connection uncertain",
    )
    work.add_argument("--max-connections", type=positive_int, default=10, help="per relay (10)")
    work.add_argument("--initial-connections", type=positive_int, default=5, help="slow start")
    work.add_argument("--rate", type=float, help="messages per second per relay, all workers")
    work.add_argument(
        "--min-backoff",
        type=parse_duration,
        default=300.0,
        metavar="DURATION",
        help="shortest retry delay (5m)",
    )
    work.add_argument(
        "--max-backoff",
        type=parse_duration,
        default=4000.0,
        metavar="DURATION",
        help="longest retry delay (4000s, as Postfix's maximal_backoff_time)",
    )
    work.add_argument(
        "--lifetime",
        type=parse_duration,
        default=5 * 86400.0,
        metavar="DURATION",
        help="an entry expires this long after it was put (5d)",
    )
    work.add_argument(
        "--max-recipients",
        type=positive_int,
        default=100,
        help="recipients per transaction (100)",
    )
    work.add_argument(
        "--uncertain",
        choices=("resend", "hold"),
        default="resend",
        help="what to do with an entry whose final '.' got no reply (resend, counted)",
    )
    work.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on 127.0.0.1")
    work.add_argument("--timeout", type=parse_duration, help="per network step (default 60 s)")
    work.add_argument("--cafile", metavar="PATH", help="trust this CA file for the relays")
    add_dkim_options(work)


def exit_for(exc: BaseException) -> int:
    """The exit code (sysexits) for an outbox or configuration error."""
    if isinstance(exc, EntryNotFound):
        return Exit.NOINPUT
    if isinstance(exc, StateConflict):
        return Exit.DATAERR
    if isinstance(exc, StorageError):
        return Exit.TEMPFAIL  # the database is away: try again later
    if isinstance(exc, ConfigError):
        return Exit.CONFIG
    return Exit.SOFTWARE


def work_arguments(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments of :meth:`Outbox.work <postwire.outbox.Outbox.work>` from the
    options of :func:`add_work_options` (``stop`` aside); raises CLIError (bad values)
    and ConfigError (the DKIM key)."""
    from ..outbox import RelayLimits, RetryPolicy

    try:
        policy = RetryPolicy(
            min_backoff=args.min_backoff,
            max_backoff=args.max_backoff,
            lifetime=args.lifetime,
            uncertain=args.uncertain,
            max_recipients=args.max_recipients,
        )
        limits = RelayLimits(
            max_connections=args.max_connections, initial=args.initial_connections, rate=args.rate
        )
    except ValueError as exc:
        raise CLIError(str(exc), Exit.USAGE) from None
    overrides: dict[str, object] = {}
    if args.timeout is not None:
        overrides["timeout"] = args.timeout
    if args.cafile is not None:
        overrides["cafile"] = args.cafile
    # --dkim-* sign what every relay sends; without them an account's dkim_* settings do.
    signer = dkim_from_settings(
        Settings(
            dkim_key=args.dkim_key,
            dkim_selector=args.dkim_selector,
            dkim_domain=args.dkim_domain,
            dkim_headers=args.dkim_headers,
            dkim_canonicalization=args.dkim_canonicalization,
        )
    )
    if signer is not None:
        overrides["dkim"] = signer
    return {
        "relay": args.relay,
        "config": args.config,
        "concurrency": args.concurrency,
        "until_empty": args.until_empty,
        "policy": policy,
        "limits": limits,
        "lease": args.lease,
        "poll_interval": args.poll,
        "batch": args.batch,
        "mark_ahead": args.mark_ahead,
        "metrics_port": args.metrics_port,
        "client_options": overrides or None,
    }


@contextlib.contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An event that SIGTERM and SIGINT set (a worker stops cleanly after its batches);
    the previous handlers come back at the end.  Outside the main thread (``call_command``
    from a thread) no handler can be set: the event is only the caller's to set."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def stats_line(stats: dict[str, int]) -> str:
    """What a worker did, in one line."""
    return (
        f"delivered {stats['delivered']}, deferred {stats['deferred']}, bounced "
        f"{stats['bounced']}, uncertain {stats['uncertain']}, expired {stats['expired']} "
        "(recipients)"
    )
