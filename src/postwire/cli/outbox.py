"""``postwire outbox``: put messages into the outbox, work it off, look at it, act on entries.

::

    postwire outbox put [FILE|-] [--from A] [--to A]... [--route ACCOUNT] [--key K]
    postwire outbox work [--concurrency N] [--until-empty] [--relay URL] [--rate R] ...
    postwire outbox status | list [--state S] | show ID
    postwire outbox retry|hold|release|cancel ID...
    postwire outbox purge --older-than 7d

Every subcommand takes ``--db URL`` (``sqlite:///path``, ``postgresql://...``; default
``$POSTWIRE_OUTBOX``, else ``~/.local/share/postwire/outbox.sqlite3``) and ``--json``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import logging
import sys
import time
from collections.abc import Callable
from typing import Any

from .._core.errors import ConfigError, EntryNotFound, OutboxError, StateConflict
from ..config import Settings, load_settings
from .exits import CLIError, Exit
from .outbox_work import (
    add_work_options,
    exit_for,
    parse_duration,
    positive_int,
    stats_line,
    stop_on_signals,
    work_arguments,
)
from .output import print_error, print_json, reply_json
from .send import add_message_options

__all__ = ["add_parser", "parse_duration", "run"]

DESCRIPTION = """\
The outbox: a durable queue of outgoing mail (SQLite by default, PostgreSQL for many
workers on many machines).  `put` queues a message and returns once it is stored; `work`
delivers through the config file's accounts (an entry's route names one; no route: the
default account) or through one --relay URL, retrying what the relay defers."""


def _when(text: str) -> float:
    """``--not-before``: an ISO 8601 time, or a duration from now (``+10m``)."""
    if text.startswith("+"):
        return time.time() + parse_duration(text[1:])
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a time (ISO 8601) or +DURATION: {text!r}") from None
    return when.timestamp()


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        metavar="URL",
        help="the outbox: sqlite:///PATH or postgresql://... (default $POSTWIRE_OUTBOX, "
        "else ~/.local/share/postwire/outbox.sqlite3)",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def add_parser(sub: argparse._SubParsersAction[Any], epilog: str) -> None:
    """Add the ``outbox`` command and its subcommands to ``sub``."""
    parser = sub.add_parser(
        "outbox",
        help="a durable queue: put, work, status, list, show, retry, hold, release, cancel, purge",
        description=DESCRIPTION,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="outbox_command", required=True, metavar="COMMAND")

    put = commands.add_parser("put", help="queue a message (a file, stdin, or built from options)")
    put.add_argument("file", nargs="?", metavar="FILE", help="the message (- for stdin)")
    add_message_options(put)
    put.add_argument("--key", help="idempotency key (default: the Message-ID)")
    put.add_argument("--priority", type=int, default=0, help="higher goes first (default 0)")
    put.add_argument("--not-before", type=_when, metavar="WHEN", help="ISO time or +DURATION")
    put.add_argument("--route", metavar="ACCOUNT", help="the config-file account to send through")
    put.add_argument("--config", metavar="PATH", help="the config file (for the default sender)")
    _common(put)

    work = commands.add_parser("work", help="deliver queued messages until stopped")
    add_work_options(work)
    work.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    _common(work)

    status = commands.add_parser("status", help="entries by state, the oldest, the relays")
    _common(status)
    listing = commands.add_parser("list", help="entries, newest first")
    listing.add_argument(
        "--state",
        help="only entries in this state (queued, sending, sent, deferred, bounced, uncertain, "
        "expired, held, cancelled)",
    )
    listing.add_argument("--limit", type=positive_int, default=50)
    _common(listing)
    show = commands.add_parser("show", help="one entry: recipients, replies, attempts")
    show.add_argument("id", type=int)
    show.add_argument("--message", action="store_true", help="print the stored message")
    _common(show)
    for name, text in (
        ("retry", "try again now (deferred, uncertain, held, bounced, expired)"),
        ("hold", "set aside until release"),
        ("release", "put a held (or held uncertain) entry back to work"),
        ("cancel", "withdraw an entry that is not being sent"),
    ):
        action = commands.add_parser(name, help=text)
        action.add_argument("ids", type=int, nargs="+", metavar="ID")
        _common(action)
    purge = commands.add_parser("purge", help="delete old final entries (their keys are freed)")
    purge.add_argument("--older-than", type=parse_duration, required=True, metavar="DURATION")
    purge.add_argument("--state", action="append", help="only these final states")
    _common(purge)


# -- running --------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    """Run ``postwire outbox ...``; returns the exit code."""
    from ..outbox import Outbox

    handlers: dict[str, Callable[[Outbox, argparse.Namespace], int]] = {
        "put": _put,
        "status": _status,
        "list": _list,
        "show": _show,
        "retry": _act,
        "hold": _act,
        "release": _act,
        "cancel": _act,
        "purge": _purge,
    }
    if args.outbox_command == "work":
        return _work(args)
    try:
        with Outbox(args.db) as outbox:
            return handlers[args.outbox_command](outbox, args)
    except (OutboxError, ConfigError) as exc:
        print_error(exc)
        return exit_for(exc)


def _put(outbox: Any, args: argparse.Namespace) -> int:
    from .send import outgoing

    try:
        settings = load_settings(Settings(), config=args.config, account=None)
    except ConfigError:
        settings = Settings()  # the worker's machine has the accounts; the sender is in the message
    try:
        with contextlib.ExitStack() as closing:
            message = outgoing(args, settings, closing)
            entry = outbox.put(
                message.content,
                sender=message.sender,
                recipients=message.recipients,
                key=args.key,
                priority=args.priority,
                not_before=args.not_before,
                route=args.route,
            )
    except CLIError:
        raise
    except (ValueError, TypeError) as exc:
        raise CLIError(str(exc), Exit.DATAERR) from None
    if args.json:
        print_json(_entry_json(entry))
    else:
        print(f"{entry.id} {entry.state.value} {entry.key}")
    return Exit.OK


def _status(outbox: Any, args: argparse.Namespace) -> int:
    counts = outbox.counts()
    oldest = outbox.oldest_age()
    relays = outbox.relays()
    if args.json:
        print_json(
            {
                "counts": {state.value: n for state, n in counts.items()},
                "oldest_waiting_seconds": oldest,
                "relays": [
                    {
                        "relay": r.relay,
                        "connections": r.connections,
                        "window": r.window,
                        "max_connections": r.max_connections,
                        "rate": r.rate,
                        "recipient_limit": r.recipient_limit,
                        "dead_until": _time(r.dead_until),
                    }
                    for r in relays
                ],
            }
        )
        return Exit.OK
    for state, n in counts.items():
        print(f"{state.value:<10} {n}")
    print(f"oldest waiting: {'-' if oldest is None else f'{oldest:.0f} s'}")
    for r in relays:
        rate = f", rate {r.rate:g}/s" if r.rate else ""
        limit = f", at most {r.recipient_limit} recipients" if r.recipient_limit else ""
        dead = f", dead until {_time(r.dead_until)}" if r.dead_until else ""
        print(
            f"relay {r.relay}: {r.connections} connections "
            f"(window {r.window} of {r.max_connections}){rate}{limit}{dead}"
        )
    return Exit.OK


def _list(outbox: Any, args: argparse.Namespace) -> int:
    from ..outbox import State

    if args.state is not None and args.state not in {s.value for s in State}:
        names = ", ".join(s.value for s in State)
        raise CLIError(f"--state: no state {args.state!r} (one of {names})", Exit.USAGE)
    entries = outbox.list(args.state, limit=args.limit)
    if args.json:
        print_json([_entry_json(e) for e in entries])
        return Exit.OK
    for e in entries:
        last = e.last_reply or e.last_error or ""
        print(
            f"{e.id:>6} {e.state.value:<9} {e.created_at:%Y-%m-%d %H:%M:%S} "
            f"{e.sender} -> {', '.join(r.address for r in e.recipients)}"
            + (f"  [{str(last).splitlines()[0][:80]}]" if last else "")
        )
    return Exit.OK


def _show(outbox: Any, args: argparse.Namespace) -> int:
    if args.message:
        sys.stdout.buffer.write(outbox.message(args.id))
        return Exit.OK
    entry = outbox.get(args.id)
    if args.json:
        print_json(_entry_json(entry))
        return Exit.OK
    print(f"entry       {entry.id} ({entry.state.value})")
    print(f"key         {entry.key}")
    print(f"message-id  {entry.message_id}")
    print(f"from        {entry.sender}")
    print(f"route       {entry.route or '(default account)'}")
    print(f"size        {entry.size} bytes; priority {entry.priority}")
    print(f"put         {_time(entry.created_at)}")
    print(f"next        {_time(entry.next_attempt_at) or '-'}")
    print(f"attempts    {entry.attempts}; uncertain {entry.uncertain}")
    for r in entry.recipients:
        said = f"{r.reply.code} {r.reply.text}" if r.reply else r.error
        print(f"  {r.address}: {r.state.value}" + (f" ({said.splitlines()[0]})" if said else ""))
    for a in entry.history:
        said = f"{a.reply.code} {a.reply.text.splitlines()[0]}" if a.reply else a.detail
        print(
            f"  attempt {a.number} {_time(a.finished_at)} {a.outcome} at {a.phase} "
            f"via {a.relay or '-'} by {a.worker}" + (f": {said}" if said else "")
        )
    return Exit.OK


def _act(outbox: Any, args: argparse.Namespace) -> int:
    code: int = Exit.OK
    operation = getattr(outbox, args.outbox_command)
    done = []
    for entry_id in args.ids:
        try:
            entry = operation(entry_id)
        except (EntryNotFound, StateConflict) as exc:
            print_error(f"entry {entry_id}: {exc}")
            code = max(code, exit_for(exc))
            continue
        done.append(entry)
        if not args.json:
            print(f"{entry.id} {entry.state.value}")
    if args.json:
        print_json([_entry_json(e) for e in done])
    return code


def _purge(outbox: Any, args: argparse.Namespace) -> int:
    try:
        removed = outbox.purge(args.older_than, states=args.state)
    except ValueError as exc:
        raise CLIError(str(exc), Exit.USAGE) from None
    if args.json:
        print_json({"purged": removed})
    else:
        print(f"purged {removed} entries")
    return Exit.OK


def _work(args: argparse.Namespace) -> int:
    from ..outbox import Outbox

    if args.verbose:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        options = work_arguments(args)
    except ConfigError as exc:
        print_error(exc)
        return exit_for(exc)
    try:
        with stop_on_signals() as stop, Outbox(args.db) as outbox:
            stats = outbox.work(stop=stop, **options)
    except (OutboxError, ConfigError) as exc:
        print_error(exc)
        return exit_for(exc)
    if args.json:
        print_json(stats)
    else:
        print(stats_line(stats), file=sys.stderr)
    return Exit.OK


# -- JSON -----------------------------------------------------------------------------------


def _time(value: object) -> str | None:
    return value.isoformat(timespec="seconds") if isinstance(value, dt.datetime) else None


def _entry_json(entry: Any) -> dict[str, object]:
    return {
        "id": entry.id,
        "key": entry.key,
        "message_id": entry.message_id,
        "state": entry.state.value,
        "sender": entry.sender,
        "route": entry.route,
        "priority": entry.priority,
        "size": entry.size,
        "created_at": _time(entry.created_at),
        "updated_at": _time(entry.updated_at),
        "next_attempt_at": _time(entry.next_attempt_at),
        "attempts": entry.attempts,
        "uncertain": entry.uncertain,
        "last_reply": reply_json(entry.last_reply),
        "last_error": entry.last_error or None,
        "recipients": [
            {
                "address": r.address,
                "state": r.state.value,
                "reply": reply_json(r.reply),
                "error": r.error or None,
                "next_attempt_at": _time(r.next_attempt_at),
                "uncertain": r.uncertain,
            }
            for r in entry.recipients
        ],
        "history": [
            {
                "number": a.number,
                "worker": a.worker,
                "relay": a.relay,
                "started_at": _time(a.started_at),
                "finished_at": _time(a.finished_at),
                "phase": a.phase,
                "outcome": a.outcome,
                "reply": reply_json(a.reply),
                "detail": a.detail or None,
            }
            for a in entry.history
        ],
    }
