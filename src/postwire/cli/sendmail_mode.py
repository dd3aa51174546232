"""``postwire sendmail``: a stand-in for ``/usr/sbin/sendmail``, as msmtp is.

Programs that hand mail to ``sendmail`` (cron, mailx, git send-email, PHP's
``mail()``) run ``sendmail [-t] [-i] [-f sender] [-F name] [--] recipient...``
with the message on stdin.  This reads the same command line, takes the server
and account from the config file or the environment, and sends over SMTP.
A program named ``sendmail`` (a symlink to ``postwire``) runs this mode.

Options understood (others of sendmail's that only tune its own queue are
accepted and ignored: ``-o*`` except ``-oi``, ``-B``, ``-X``, ``-h``, ``-L``,
``-O``, ``-U``, ``-G``, ``-m``, ``-n``, ``-bm``)::

    -t            recipients from To, Cc and Bcc (added to those on the command line)
    -i, -oi       a line with a single "." does not end the message
    -f, -r ADDR   the envelope sender (default: from in the config, else the From field)
    -F NAME       the full name for a From field added when the message has none
    -N DSN        delivery status notifications: never, or success,failure,delay (RFC 3461)
    -R RET        full or hdrs: what a failure notification returns
    -V ENVID      an envelope id the notifications quote
    -C, --config PATH    the config file
    -a, --account NAME   the account in the config file
    -v, --transcript     print the SMTP exchange on stderr
    --queue              when the relay cannot take the message now (no connection, a
                         4xx), put it into the outbox and succeed, as msmtpq does
    --db URL             the outbox for --queue (default $POSTWIRE_OUTBOX)
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from .._core.dsn import DSN
from .._core.errors import ConnectError, PossiblyDelivered, RecipientsRefused, SMTPError
from ..config import Settings, load_settings
from .connection import target_from
from .exits import CLIError, Exit
from .message import (
    add_missing_headers,
    check_header_value,
    envelope_from_headers,
    parse_addresses,
    strip_bcc,
)
from .output import Transcript, one_line, print_error, report_failure
from .send import Outgoing, send_one

__all__ = ["SendmailArgs", "parse_sendmail_args", "run_sendmail_mode"]

_FLAGS_IGNORED = "UGmnd"  # queue and aliasing flags of sendmail that mean nothing here
_WITH_ARG_IGNORED = "BXhLO"  # body type, log file, hop count...
_WITH_ARG = "frFCaobNRV" + _WITH_ARG_IGNORED

USAGE = """\
usage: postwire sendmail [-t] [-i] [-f ADDR] [-F NAME] [-N DSN] [-R RET] [-V ENVID]
                         [-C CONFIG] [-a ACCOUNT] [-v] [--] [RECIPIENT ...]

Read a message on stdin and send it over SMTP, like sendmail (see `postwire --help`
for the config file and the POSTWIRE_* variables).  Options:
  -t              take recipients from the To, Cc and Bcc fields too
  -i, -oi         a line with a single "." does not end the message
  -f, -r ADDR     the envelope sender
  -F NAME         the full name for a From field added when there is none
  -N DSN          delivery status notifications: never, or success,failure,delay
  -R full|hdrs    what a failure notification returns of the message
  -V ENVID        an envelope id that the notifications quote
  -C, --config PATH     the config file
  -a, --account NAME    the account to use
  -v, --transcript      print the SMTP exchange on stderr
  --queue               when the relay cannot take it now, queue it in the outbox
                        (`postwire outbox work` delivers it later) and exit 0
  --db URL              the outbox for --queue (default $POSTWIRE_OUTBOX)

DKIM signing comes from the account's dkim_key, dkim_selector and dkim_domain settings
(or POSTWIRE_DKIM_KEY, POSTWIRE_DKIM_SELECTOR, POSTWIRE_DKIM_DOMAIN).
"""


@dataclass
class SendmailArgs:
    """The sendmail-style command line, parsed (see :func:`parse_sendmail_args`)."""

    extract: bool = False
    ignore_dots: bool = False
    sender: str | None = None
    full_name: str | None = None
    config: str | None = None
    account: str | None = None
    transcript: bool = False
    help: bool = False
    queue: bool = False
    db: str | None = None
    recipients: list[str] = field(default_factory=list)
    dsn_notify: str | None = None
    dsn_ret: str | None = None
    dsn_envid: str | None = None


def _long_option(args: SendmailArgs, arg: str, rest: list[str]) -> None:
    name, eq, value = arg.partition("=")
    if name in ("--help", "--transcript", "--queue"):
        if eq:
            raise CLIError(f"option {name} takes no value", Exit.USAGE)
        setattr(args, name[2:], True)
        return
    if name not in ("--config", "--account", "--db"):
        raise CLIError(f"unknown option {name}", Exit.USAGE)
    if not eq:
        if not rest:
            raise CLIError(f"option {name} needs a value", Exit.USAGE)
        value = rest.pop(0)
    setattr(args, name[2:], value)


def _short_options(args: SendmailArgs, arg: str, rest: list[str]) -> None:
    i = 1
    while i < len(arg):
        letter = arg[i]
        i += 1
        if letter in "ti":
            args.extract |= letter == "t"
            args.ignore_dots |= letter == "i"
            continue
        if letter == "v":
            args.transcript = True
            continue
        if letter in _FLAGS_IGNORED:
            continue
        if letter not in _WITH_ARG:
            raise CLIError(f"unknown option -{letter}", Exit.USAGE)
        # getopt: the value is the rest of this argument, or the next argument.
        value = arg[i:]
        i = len(arg)
        if not value:
            if not rest:
                raise CLIError(f"option -{letter} needs a value", Exit.USAGE)
            value = rest.pop(0)
        if letter in "fr":
            args.sender = value
        elif letter == "F":
            args.full_name = check_header_value("-F", value)
        elif letter == "C":
            args.config = value
        elif letter == "a":
            args.account = value
        elif letter in "NRV":
            setattr(args, {"N": "dsn_notify", "R": "dsn_ret", "V": "dsn_envid"}[letter], value)
        elif letter == "o":
            args.ignore_dots |= value == "i"  # -oi; every other -o option is queue tuning
        elif letter == "b" and value != "m":
            raise CLIError(
                f"-b{value} is not supported: postwire only sends mail (-bm)", Exit.USAGE
            )


def parse_sendmail_args(argv: Sequence[str]) -> SendmailArgs:
    """Parse a sendmail command line (options end at ``--`` or the first recipient)."""
    args = SendmailArgs()
    rest = list(argv)
    while rest:
        arg = rest.pop(0)
        if arg == "--":
            args.recipients.extend(rest)
            break
        if arg.startswith("--"):
            _long_option(args, arg, rest)
        elif arg.startswith("-") and arg != "-":
            _short_options(args, arg, rest)
        else:
            args.recipients.extend([arg, *rest])
            break
    return args


def _read_stdin(ignore_dots: bool) -> bytes:
    try:
        data = sys.stdin.buffer.read()
    except OSError as exc:
        raise CLIError(f"cannot read the message on stdin: {exc.strerror}", Exit.IOERR) from None
    if ignore_dots:
        return data
    # Without -i, sendmail ends the message at a line holding only ".".
    lines = data.splitlines(keepends=True)
    for n, line in enumerate(lines):
        if line.rstrip(b"\r\n") == b".":
            return b"".join(lines[:n])
    return data


def _outgoing(args: SendmailArgs, settings: Settings, data: bytes) -> Outgoing:
    pairs = parse_addresses("recipient", args.recipients)
    recipients = [addr for _, addr in pairs]
    header_sender, header_rcpts = envelope_from_headers(data)
    if args.extract:
        recipients += [r for r in header_rcpts if r not in recipients]
    if not recipients:
        raise CLIError("no recipients: give them as arguments, or use -t", Exit.USAGE)
    for addr in recipients:
        if addr.startswith("-"):
            raise CLIError(f"a recipient may not start with '-': {addr!r}", Exit.DATAERR)
    null_sender = args.sender is not None and args.sender.strip() in ("<>", "")
    if null_sender:
        sender = ""  # the null reverse-path, for bounces (RFC 5321 §4.5.5)
    elif args.sender is not None:
        pairs = parse_addresses("-f", [args.sender])
        if len(pairs) != 1:
            raise CLIError(f"-f: give one address, not {args.sender!r}", Exit.USAGE)
        sender = pairs[0][1]
    else:
        sender = settings.sender or header_sender or ""
    if not sender and not null_sender:
        raise CLIError(
            "no sender: give -f ADDRESS, set from in the config (or POSTWIRE_FROM), "
            "or put a From field in the message",
            Exit.USAGE,
        )
    content = add_missing_headers(strip_bcc(data), sender, args.full_name)
    dsn = None
    if args.dsn_notify or args.dsn_ret or args.dsn_envid:
        try:
            dsn = DSN(args.dsn_notify, args.dsn_ret, args.dsn_envid)
        except ValueError as exc:
            raise CLIError(f"-N/-R/-V: {exc}", Exit.USAGE) from None
    return Outgoing(content, sender, recipients, dsn=dsn)


def run_sendmail_mode(argv: Sequence[str]) -> int:
    """Run sendmail mode with ``argv`` (without the program name); returns the exit code."""
    try:
        args = parse_sendmail_args(argv)
        if args.help:
            print(
                USAGE + "\nthe config file, POSTWIRE_* variables and exit codes: "
                "see postwire --help"
            )
            return Exit.OK
        settings = load_settings(Settings(), config=args.config, account=args.account)
        message = _outgoing(args, settings, _read_stdin(args.ignore_dots))
        target = target_from(settings, missing_password=Exit.CONFIG)
        transcript = Transcript(sys.stderr) if args.transcript else None
        try:
            result = send_one(target, message, transcript)
        except SMTPError as exc:
            later = _later(exc, message.recipients) if args.queue else []
            if not later:
                raise
            return _queue(args, message, later, exc)
    except Exception as exc:
        return report_failure(exc, as_json=False)
    refused = result["refused"]
    assert isinstance(refused, dict)
    transient = [a for a, r in refused.items() if 400 <= int(r["code"]) < 500]
    for addr, reply in refused.items():
        if args.queue and addr in transient:
            continue
        print_error(f"recipient refused: {addr}: {reply['code']} {one_line(reply['text'])}")
    if args.queue and transient:
        code = _queue(args, message, transient, None)
        permanent = len(refused) > len(transient)
        return int(Exit.NOUSER) if permanent and code == Exit.OK else code
    return int(str(result["exit_code"]))


def _later(exc: SMTPError, recipients: Sequence[str]) -> list[str]:
    """The recipients to queue after ``exc``: those the relay could not take *now*.

    Never a message that may have been delivered (the connection broke after its
    end of data): queueing it could deliver it twice (RFC 1047).
    """
    if isinstance(exc, PossiblyDelivered):
        return []
    if isinstance(exc, RecipientsRefused):
        return [a for a, r in exc.refused.items() if r.is_transient]
    if exc.is_transient or isinstance(exc, ConnectError):
        return list(recipients)
    return []


def _queue(args: SendmailArgs, message: Outgoing, recipients: list[str], exc: object) -> int:
    """Put the message for ``recipients`` into the outbox; say so on stderr."""
    from ..outbox import Outbox

    content = message.content
    assert isinstance(content, bytes)
    try:
        with Outbox(args.db) as outbox:
            entry = outbox.put(
                content, sender=message.sender, recipients=recipients, route=args.account
            )
    except Exception as failure:
        print_error(f"could not queue the message: {failure}")
        if exc is not None:
            print_error(exc)
        return int(Exit.TEMPFAIL)
    why = f" ({one_line(exc)})" if exc is not None else ""
    print_error(
        f"relay unavailable{why}: queued as outbox entry {entry.id} for "
        f"{', '.join(recipients)}; `postwire outbox work` sends it"
    )
    return int(Exit.OK)
