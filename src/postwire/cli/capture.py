"""``postwire capture``: run the local capture server until Ctrl-C or SIGTERM.

Each message that arrives is printed as one summary line (time, envelope,
size, TLS, AUTH user, subject) on stdout, as it arrives.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from types import FrameType
from typing import TYPE_CHECKING, Any, cast

from .._core.chars import CONTROL
from .exits import CLIError, Exit

if TYPE_CHECKING:
    from ..capture import CapturedMessage, CaptureTLS

__all__ = ["add_parser", "run"]


def _user_password(text: str) -> tuple[str, str]:
    user, sep, password = text.partition(":")
    if not sep or not user:
        raise argparse.ArgumentTypeError(f"expected USER:PASSWORD, not {text!r}")
    return user, password


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}")
    return int(text)


def add_parser(sub: argparse._SubParsersAction[Any], epilog: str) -> None:
    """Add the ``capture`` command and its options to ``sub``."""
    parser = sub.add_parser(
        "capture",
        help="run a local SMTP capture server that keeps every message",
        description=__doc__,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    parser.add_argument(
        "--port", type=_port, default=2525, help="port to listen on (2525; 0 picks a free one)"
    )
    parser.add_argument("--maildir", metavar="PATH", help="also store each message in this Maildir")
    parser.add_argument(
        "--tls",
        choices=("starttls", "implicit", "none"),
        default="starttls",
        help="offer STARTTLS (default), implicit TLS, or no TLS; the CA is made at start-up",
    )
    parser.add_argument(
        "--auth",
        action="append",
        type=_user_password,
        metavar="USER:PASSWORD",
        help="offer AUTH PLAIN, LOGIN and CRAM-MD5 for this account (repeat for more)",
    )
    parser.add_argument("--require-auth", action="store_true", help="refuse mail before AUTH (530)")


class _StopSignal(Exception):
    """SIGINT or SIGTERM arrived: raised by the signal handler to stop the server."""


class _OneLine(logging.Formatter):
    """Log records on one line: a client's broken session is not worth a traceback."""

    def format(self, record: logging.LogRecord) -> str:
        text = f"capture: {record.getMessage()}"
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            cause = exc.__cause__ or exc
            text += f": {type(cause).__name__}: {cause}"
        # A client sending binary (a TLS hello to a plain port) must not garble the terminal.
        return CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", " / ".join(text.splitlines()))


def _quiet_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLine())
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.WARNING)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    raise _StopSignal


def run(args: argparse.Namespace) -> int:
    """Run ``postwire capture``; returns the exit code once stopped."""
    try:
        from ..capture import CaptureServer
    except ImportError as exc:
        raise CLIError(
            f"the capture server needs the 'capture' extra ({exc.name} is missing): "
            "pip install 'postwire[capture]'",
            Exit.UNAVAILABLE,
        ) from None
    if args.require_auth and not args.auth:
        raise CLIError("--require-auth needs --auth USER:PASSWORD", Exit.USAGE)
    _quiet_logging()
    lock = threading.Lock()

    def show(message: CapturedMessage) -> None:
        with lock:
            print(message.summary(), flush=True)

    server = CaptureServer(
        args.host,
        args.port,
        maildir=args.maildir,
        tls=cast("CaptureTLS", args.tls),
        auth=dict(args.auth) if args.auth else None,
        require_auth=args.require_auth,
        on_message=show,
    )
    old_term = signal.signal(signal.SIGTERM, _on_signal)
    old_int = signal.signal(signal.SIGINT, _on_signal)
    try:
        try:
            server.start()
        except OSError as exc:
            raise CLIError(
                f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", Exit.OSERR
            ) from None
        _announce(server, args)
        stop = threading.Event()
        while not stop.wait(0.5):  # short waits: the signal handler runs between them
            pass
    except _StopSignal:
        pass
    finally:
        signal.signal(signal.SIGTERM, old_term)
        signal.signal(signal.SIGINT, old_int)
        server.stop()
    count = len(server.messages)
    print(f"stopped; {count} message{'s' if count != 1 else ''} captured", file=sys.stderr)
    return Exit.OK


def _announce(server: object, args: argparse.Namespace) -> None:
    from ..capture import CaptureServer

    assert isinstance(server, CaptureServer)
    how = {"starttls": "STARTTLS", "implicit": "implicit TLS", "none": "no TLS"}[args.tls]
    extra = [how]
    if args.auth:
        extra.append("AUTH " + ", ".join(user for user, _ in args.auth))
    if args.maildir:
        extra.append(f"Maildir {args.maildir}")
    print(f"listening on {server.host}:{server.port} ({'; '.join(extra)})", flush=True)
    if args.tls != "none":
        print(f"CA certificate: {server.ca_file} (send with --cafile {server.ca_file})", flush=True)
    print("press Ctrl-C to stop", file=sys.stderr, flush=True)
