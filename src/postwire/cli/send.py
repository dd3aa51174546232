"""``postwire send``: one message from a file, stdin or options; or many with ``--many``."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import itertools
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .._core.dsn import DSN
from .._core.envelope import SendResult
from .._core.message import prepare_message
from ..client import Client
from ..config import Settings
from .connection import (
    Target,
    add_auth_options,
    add_connection_options,
    add_dkim_options,
    make_client,
    result_exit_code,
    result_json,
    settings_from_args,
    target_from,
)
from .exits import CLIError, Exit
from .message import (
    build_message,
    check_header_value,
    envelope_from_headers,
    open_raw,
    parse_addresses,
    parse_header_option,
    read_input,
    strip_bcc,
)
from .output import Transcript, print_json, report_failure

__all__ = [
    "Outgoing",
    "add_delivery_options",
    "add_message_options",
    "add_parser",
    "delivery_from",
    "run",
]

DESCRIPTION = """\
Send a message over SMTP: a file (or - for stdin) sent as it is, with its envelope
from the header unless --from/--to/--cc/--bcc are given; or a message built from
--from, --to, --cc, --bcc, --reply-to, --subject, --body/--body-file, --html/--html-file,
--header and --attach. Bcc fields are never sent. With --many, send every message of a
Maildir (the capture server's --maildir), a folder of .eml files or an mbox file, over
one connection."""


def add_parser(sub: argparse._SubParsersAction[Any], epilog: str) -> None:
    """Add the ``send`` command and its options to ``sub``."""
    parser = sub.add_parser(
        "send",
        help="send a message (or --many messages) over SMTP",
        description=DESCRIPTION,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("file", nargs="?", metavar="FILE", help="the message (- for stdin)")
    parser.add_argument(
        "--many", metavar="PATH", help="a Maildir, a folder of .eml files, or an mbox file"
    )
    add_message_options(parser)
    add_delivery_options(parser)
    add_connection_options(parser)
    add_auth_options(parser)
    add_dkim_options(parser)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def add_message_options(parser: argparse.ArgumentParser) -> None:
    """The options that give the envelope and build a message (``send``, ``outbox put``)."""
    msg = parser.add_argument_group("message")
    msg.add_argument("--from", dest="from_", metavar="ADDR", help="the sender")
    for name in ("to", "cc", "bcc"):
        msg.add_argument(
            f"--{name}",
            action="append",
            default=[],
            metavar="ADDR",
            help=f"{name.capitalize()} recipient (repeat, or separate with commas)",
        )
    msg.add_argument(
        "--reply-to",
        action="append",
        default=[],
        metavar="ADDR",
        help="Reply-To address (repeat, or separate with commas)",
    )
    msg.add_argument("--subject", metavar="TEXT", help="build a message with this subject")
    body = msg.add_mutually_exclusive_group()
    body.add_argument("--body", metavar="TEXT", help="the text of the built message")
    body.add_argument("--body-file", metavar="PATH", help="read the text from PATH (- for stdin)")
    html = msg.add_mutually_exclusive_group()
    html.add_argument("--html", metavar="HTML", help="an HTML alternative to the text")
    html.add_argument("--html-file", metavar="PATH", help="read the HTML alternative from PATH")
    msg.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="NAME:VALUE",
        help="add a header field to the built message (repeat)",
    )
    msg.add_argument(
        "--attach", action="append", default=[], metavar="PATH", help="attach a file (repeat)"
    )


@dataclass(frozen=True)
class Outgoing:
    """A message ready to go: content and envelope, all checked."""

    content: object
    sender: str
    recipients: list[str]
    #: Delivery status notifications asked for (RFC 3461), and REQUIRETLS (RFC 8689).
    dsn: DSN | None = None
    require_tls: bool = False

    def send_with(self, client: Client) -> SendResult:
        """Send this message on ``client`` (connected)."""
        return client.send(
            self.content,
            sender=self.sender,
            recipients=self.recipients,
            dsn=self.dsn,
            require_tls=self.require_tls,
        )


def add_delivery_options(parser: argparse.ArgumentParser) -> None:
    """``--dsn-*`` (RFC 3461) and ``--require-tls`` (RFC 8689)."""
    group = parser.add_argument_group(
        "delivery", "refused before MAIL when the server cannot honour them"
    )
    group.add_argument(
        "--dsn-notify",
        metavar="WHEN",
        help="ask for a delivery status notification: never, or any of success,failure,delay",
    )
    group.add_argument(
        "--dsn-ret", choices=("full", "hdrs"), help="return the full message or its header"
    )
    group.add_argument("--dsn-envid", metavar="ID", help="an id the notification will quote")
    group.add_argument(
        "--dsn-orcpt", action="store_true", help="send each recipient as the original recipient"
    )
    group.add_argument(
        "--require-tls",
        action="store_true",
        help="REQUIRETLS: only over TLS, and every later hop must keep it",
    )


def delivery_from(args: argparse.Namespace) -> dict[str, Any]:
    """The ``dsn`` and ``require_tls`` of an ``Outgoing``, from the delivery options."""
    try:
        dsn = (
            DSN(args.dsn_notify, args.dsn_ret, args.dsn_envid, args.dsn_orcpt)
            if args.dsn_notify or args.dsn_ret or args.dsn_envid or args.dsn_orcpt
            else None
        )
    except ValueError as exc:
        raise CLIError(f"--dsn: {exc}", Exit.USAGE) from None
    return {"dsn": dsn, "require_tls": args.require_tls}


def cli_recipients(args: argparse.Namespace) -> list[tuple[str, str]]:
    """The ``--to``, ``--cc`` and ``--bcc`` recipients as (option, address) pairs."""
    return [
        pair
        for option in ("to", "cc", "bcc")
        for pair in parse_addresses(f"--{option}", getattr(args, option))
    ]


def sender_option(args: argparse.Namespace) -> tuple[str, str] | None:
    """The ``--from`` address as an (option, address) pair, or None without ``--from``."""
    if args.from_ is None:
        return None
    pairs = parse_addresses("--from", [args.from_])
    if len(pairs) != 1:
        raise CLIError(f"--from: give one address, not {args.from_!r}", Exit.USAGE)
    return pairs[0]


def raw_outgoing(
    data: bytes,
    *,
    sender: tuple[str, str] | None,
    recipients: list[tuple[str, str]],
    settings: Settings,
    rest: Iterable[bytes] | None = None,
) -> Outgoing:
    """A message read as bytes: envelope from the options, else from its header.

    ``data`` is the whole message, or only its header block when ``rest``
    streams what follows it.
    """
    found_sender, found_rcpts = envelope_from_headers(data)
    envelope_from = sender[1] if sender is not None else found_sender or settings.sender
    if not envelope_from:
        raise CLIError(
            "no sender: the message has no From field and no --from was given", Exit.DATAERR
        )
    rcpts = [addr for _, addr in recipients] if recipients else found_rcpts
    if not rcpts:
        raise CLIError(
            "no recipients: the message has no To, Cc or Bcc and none were given", Exit.DATAERR
        )
    for addr in rcpts:
        if addr.startswith("-"):
            raise CLIError(f"a recipient may not start with '-': {addr!r}", Exit.DATAERR)
    head = strip_bcc(data)
    content: object = head if rest is None else itertools.chain([head], rest)
    return _checked(content, envelope_from, rcpts)


def _checked(content: object, sender: str, recipients: list[str]) -> Outgoing:
    try:
        prepare_message(content, sender=sender, recipients=recipients)
    except (ValueError, TypeError) as exc:
        raise CLIError(f"bad message: {exc}", Exit.DATAERR) from None
    return Outgoing(content, sender, recipients)


def _built(args: argparse.Namespace, settings: Settings) -> Outgoing:
    if args.file is not None:
        raise CLIError(
            "give either a message FILE or options that build one (--subject, --body, --html, "
            "--header, --reply-to, --attach), not both",
            Exit.USAGE,
        )
    sender = sender_option(args)
    if sender is None:
        if not settings.sender:
            raise CLIError("no sender: give --from (or from in the config)", Exit.USAGE)
        sender = ("", settings.sender)
    to = parse_addresses("--to", args.to)
    cc = parse_addresses("--cc", args.cc)
    bcc = parse_addresses("--bcc", args.bcc)
    if not (to or cc or bcc):
        raise CLIError("no recipients: give --to, --cc or --bcc", Exit.USAGE)
    subject = check_header_value("--subject", args.subject or "")
    if args.body_file is not None:
        body = read_input(args.body_file, "body file").decode("utf-8", "replace")
    else:
        body = args.body or ""
    html = args.html
    if args.html_file is not None:
        html = read_input(args.html_file, "HTML file").decode("utf-8", "replace")
    msg = build_message(
        sender=sender,
        to=to,
        cc=cc,
        reply_to=parse_addresses("--reply-to", args.reply_to),
        subject=subject,
        body=body,
        html=html,
        headers=[parse_header_option(text) for text in args.header],
        attachments=args.attach,
    )
    recipients = [addr for _, addr in (*to, *cc, *bcc)]
    # The built EmailMessage is sent as bytes so that the envelope is exactly the options.
    data = msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))
    return _checked(data, sender[1], recipients)


def outgoing(
    args: argparse.Namespace, settings: Settings, closing: contextlib.ExitStack
) -> Outgoing:
    """The message of ``postwire send``, checked, before any connection is made.

    A message file stays open (until ``closing`` closes it) to be streamed.
    """
    builds = (args.subject, args.body, args.body_file, args.html, args.html_file)
    if any(v is not None for v in builds) or args.attach or args.header or args.reply_to:
        return _built(args, settings)
    path = args.file
    if path is None:
        if sys.stdin.isatty():
            raise CLIError(
                "no message: give a FILE, - for stdin, or build one with --subject/--body",
                Exit.USAGE,
            )
        path = "-"
    raw = open_raw(path)
    closing.callback(raw.close)
    return raw_outgoing(
        raw.head,
        sender=sender_option(args),
        recipients=cli_recipients(args),
        settings=settings,
        rest=raw.body_chunks(),
    )


def _print_result(result_obj: dict[str, object]) -> None:
    accepted = result_obj["accepted"]
    refused = result_obj["refused"]
    reply = result_obj["reply"]
    assert isinstance(accepted, list) and isinstance(refused, dict) and isinstance(reply, dict)
    print(f"accepted: {', '.join(accepted) or '(none)'}")
    for addr, r in refused.items():
        print(f"refused: {addr}: {r['code']} {r['text']}".rstrip())
    print(f"server: {reply['code']} {reply['text']}".rstrip())


def send_one(target: Target, message: Outgoing, transcript: Transcript | None) -> dict[str, object]:
    """Connect, send, QUIT; returns the result as JSON-ready data (errors propagate)."""
    client = make_client(target, transcript)
    with client:
        result = message.send_with(client)
    data = result_json(result)
    data["exit_code"] = result_exit_code(result)
    return data


def run(args: argparse.Namespace) -> int:
    """Run ``postwire send``; returns the exit code."""
    try:
        settings = settings_from_args(args)
        if args.many is not None:
            from .many import run_many

            return run_many(args, settings)
        with contextlib.ExitStack() as closing:
            message = dataclasses.replace(outgoing(args, settings, closing), **delivery_from(args))
            target = target_from(settings, missing_password=Exit.USAGE)
            transcript = Transcript(sys.stderr) if args.transcript else None
            data = send_one(target, message, transcript)
    except Exception as exc:
        return report_failure(exc, as_json=args.json)
    code = int(str(data["exit_code"]))
    if args.json:
        print_json({"ok": code == Exit.OK, **data})
    else:
        _print_result(data)
    return code
