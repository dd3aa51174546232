"""``postwire send --many PATH``: every message of a folder or an mbox over one connection.

The connection is made once and reused for every message (RFC 5321 §3.3
allows any number of transactions per session).  When the server drops it,
postwire reconnects and tries that message once more; a message whose final
``.`` may have reached the server is never sent twice.
"""

from __future__ import annotations

import argparse
import dataclasses
import mailbox
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from .._core.envelope import SendResult
from ..client import Client
from ..config import Settings
from ..errors import PossiblyDelivered, ServerDisconnected
from .connection import Target, make_client, result_exit_code, result_json, target_from
from .exits import CLIError, Exit, exit_code_for
from .output import Progress, Transcript, error_json, one_line, print_error, print_json
from .send import Outgoing, cli_recipients, delivery_from, raw_outgoing, sender_option

__all__ = ["run_many"]

Source = tuple[str, Callable[[], bytes]]


#: What --many reads, for the messages that say so.
ACCEPTED = "a Maildir (with cur/ and new/), a folder of .eml files, or an mbox file"

# mboxrd (the common mbox variant): a body line "From ..." is stored as ">From ...",
# one ">" more for each level; reading undoes one level.
_MBOX_QUOTED = re.compile(rb"^>(>*From )", re.MULTILINE)


def _reader(path: Path) -> Callable[[], bytes]:
    return path.read_bytes


def _sources(text: str) -> tuple[int, Iterator[Source]]:
    """How many messages there are, and (name, loader) for each, in order."""
    path = Path(text)
    if path.is_dir():
        if (path / "cur").is_dir() and (path / "new").is_dir():
            return _maildir(path)
        try:
            files = sorted(p for p in path.iterdir() if p.suffix.lower() == ".eml" and p.is_file())
        except OSError as exc:
            raise CLIError(f"cannot read the folder {path}: {exc.strerror}", Exit.NOINPUT) from None
        if not files:
            raise CLIError(f"no messages in {path}: --many reads {ACCEPTED}", Exit.NOINPUT)
        return len(files), iter([(p.name, _reader(p)) for p in files])
    try:
        with path.open("rb") as f:
            start = f.read(5)
    except OSError as exc:
        raise CLIError(f"cannot read {path}: {exc.strerror}", Exit.NOINPUT) from None
    if start != b"From ":
        raise CLIError(
            f"{path} is not something --many reads: it takes {ACCEPTED} "
            "(an mbox starts with a 'From ' line)",
            Exit.DATAERR,
        )
    box = mailbox.mbox(path, create=False)
    keys = list(box.keys())

    def loader(key: str) -> Callable[[], bytes]:
        return lambda: _MBOX_QUOTED.sub(rb"\1", box.get_bytes(key))

    return len(keys), iter([(f"{path.name}#{i}", loader(k)) for i, k in enumerate(keys, 1)])


def _maildir(path: Path) -> tuple[int, Iterator[Source]]:
    """A Maildir's messages (new/ and cur/), oldest first: names start with the time."""
    files = sorted(
        (p for sub in ("new", "cur") for p in (path / sub).iterdir() if p.is_file()),
        key=lambda p: p.name,
    )
    if not files:
        raise CLIError(f"no messages in the Maildir {path}: --many reads {ACCEPTED}", Exit.NOINPUT)
    return len(files), iter([(f"{p.parent.name}/{p.name}", _reader(p)) for p in files])


class _Sender:
    """One reused connection, reconnected once when the server drops it."""

    def __init__(self, target: Target, transcript: Transcript | None, progress: Progress) -> None:
        self.target = target
        self.transcript = transcript
        self.progress = progress
        self.client: Client | None = None
        self.connect_failed = False

    def _connect(self) -> Client:
        if self.client is not None:
            self.client.close()
            self.client = None
        client = make_client(self.target, self.transcript)
        try:
            client.connect()
        except BaseException:
            self.connect_failed = True
            raise
        self.client = client
        return client

    def send(self, message: Outgoing) -> SendResult:
        for attempt in (1, 2):
            client = self.client
            if client is None or not client.connected:
                client = self._connect()
            try:
                return message.send_with(client)
            except PossiblyDelivered:
                raise  # resending could deliver it twice
            except ServerDisconnected as exc:
                if attempt == 2:
                    raise
                self.progress.interrupt()
                print_error(f"connection lost ({one_line(exc)}); reconnecting")
                client.close()
                self.client = None
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        if self.client is not None:
            self.client.quit()
            self.client = None


def run_many(args: argparse.Namespace, settings: Settings) -> int:
    """Send every message under ``args.many``; returns the exit code."""
    builds = (args.file, args.subject, args.body, args.body_file, args.html, args.html_file)
    if any(v is not None for v in builds) or args.attach or args.header or args.reply_to:
        raise CLIError(
            "--many sends messages as they are: no FILE, and no option that builds a message "
            "(--subject, --body, --html, --header, --reply-to, --attach)",
            Exit.USAGE,
        )
    sender = sender_option(args)
    recipients = cli_recipients(args)
    delivery = delivery_from(args)
    total, sources = _sources(args.many)
    if total == 0:
        raise CLIError(f"no messages in {args.many}: --many reads {ACCEPTED}", Exit.NOINPUT)
    target = target_from(settings, missing_password=Exit.USAGE)
    transcript = Transcript(sys.stderr) if args.transcript else None
    progress = Progress(total)
    worker = _Sender(target, transcript, progress)
    reports: list[dict[str, object]] = []
    fatal: tuple[BaseException, int] | None = None
    skipped = 0
    try:
        for name, load in sources:
            report: dict[str, object] = {"message": name}
            if fatal is not None:  # not tried: the connection cannot be made
                report.update(ok=False, error=error_json(*fatal), exit_code=fatal[1])
                reports.append(report)
                progress.update(False)
                skipped += 1
                continue
            try:
                try:
                    data = load()
                except OSError as exc:
                    raise CLIError(f"cannot read: {exc.strerror}", Exit.NOINPUT) from None
                message = raw_outgoing(
                    data, sender=sender, recipients=recipients, settings=settings
                )
                message = dataclasses.replace(message, **delivery)
                result = worker.send(message)
            except Exception as exc:
                code = exit_code_for(exc)
                if code == Exit.SOFTWARE:
                    raise
                if worker.connect_failed:
                    fatal = (exc, code)  # the other messages would fail the same way
                report.update(ok=False, error=error_json(exc, code), exit_code=code)
                progress.interrupt()
                print_error(f"{name}: {one_line(exc)}")
            else:
                code = result_exit_code(result)
                report.update(ok=bool(result.accepted), **result_json(result), exit_code=code)
            reports.append(report)
            progress.update(bool(report["ok"]))
    finally:
        progress.finish()
        worker.close()
    if skipped:
        print_error(f"{skipped} more messages not sent: cannot connect")
    return _summary(args, reports)


def _summary(args: argparse.Namespace, reports: list[dict[str, object]]) -> int:
    delivered = sum(1 for r in reports if r["ok"])
    failed = len(reports) - delivered
    codes = [int(str(r["exit_code"])) for r in reports if r["exit_code"] != Exit.OK]
    code = codes[0] if codes else Exit.OK
    if args.json:
        print_json(
            {
                "ok": code == Exit.OK,
                "delivered": delivered,
                "failed": failed,
                "messages": reports,
                "exit_code": code,
            }
        )
    else:
        print(f"delivered {delivered} of {len(reports)} messages, {failed} failed")
    return code
