"""``postwire capture``: run the local capture server (the mail catcher) until Ctrl-C or SIGTERM.

Each message that arrives is printed as one summary line (time, envelope,
size, TLS, AUTH user, subject) on stdout, as it arrives.  The web UI and the
HTTP API listen on 127.0.0.1:8025 unless told otherwise.  The TLS certificate
is signed by a CA created once in the user's data directory and reused, so
the CA file and the certificate fingerprint printed at start stay valid.
"""

from __future__ import annotations

import argparse
import logging
import signal
import ssl
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


def _address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, not {text!r}")
    return host.strip("[]"), _port(port)


DEFAULT_WEB = ("127.0.0.1", 8025)  # Mailpit's and MailHog's port: habits carry over


def add_parser(sub: argparse._SubParsersAction[Any], epilog: str) -> None:
    """Add the ``capture`` command and its options to ``sub``."""
    from ..capture.faults import FAULT_HELP

    parser = sub.add_parser(
        "capture",
        help="run a local SMTP capture server that keeps every message",
        description=__doc__,
        epilog=FAULT_HELP + "\n" + epilog,
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
        help="offer STARTTLS (default), implicit TLS, or no TLS (see certificate, below)",
    )
    parser.add_argument(
        "--auth",
        action="append",
        type=_user_password,
        metavar="USER:PASSWORD",
        help="offer AUTH PLAIN, LOGIN and CRAM-MD5 for this account (repeat for more)",
    )
    parser.add_argument("--require-auth", action="store_true", help="refuse mail before AUTH (530)")
    web = parser.add_mutually_exclusive_group()
    web.add_argument(
        "--web",
        type=_address,
        default=DEFAULT_WEB,
        metavar="HOST:PORT",
        help="where the web UI and HTTP API listen (127.0.0.1:8025; port 0 picks a free one)",
    )
    web.add_argument("--no-web", action="store_true", help="no web UI and no HTTP API")
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="SPEC",
        help="a fault script to follow (repeatable; see below)",
    )
    tls = parser.add_argument_group("certificate")
    tls.add_argument(
        "--ca-dir",
        metavar="DIR",
        help="the folder of the kept CA (default: $POSTWIRE_CAROOT, else "
        "$XDG_DATA_HOME/postwire/ca); mkcert's CAROOT works too",
    )
    tls.add_argument("--cert", metavar="PEM", help="serve this certificate (with --key)")
    tls.add_argument("--key", metavar="PEM", help="the private key of --cert")
    parser.add_argument(
        "--release-to",
        metavar="URL",
        help="where the UI's release button sends: smtp://, smtp+starttls:// or smtps://"
        "[user@]host[:port] (password in POSTWIRE_RELEASE_PASSWORD)",
    )


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
    from ..capture.certs import default_ca_dir
    from ..capture.faults import parse_faults
    from ..capture.release import parse_release_url

    if args.require_auth and not args.auth:
        raise CLIError("--require-auth needs --auth USER:PASSWORD", Exit.USAGE)
    if (args.cert is None) != (args.key is None):
        raise CLIError("--cert and --key go together", Exit.USAGE)
    try:
        faults = parse_faults(args.fault)
        release = parse_release_url(args.release_to) if args.release_to else None
    except ValueError as exc:
        raise CLIError(str(exc), Exit.USAGE) from None
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
        ca_dir=args.ca_dir or default_ca_dir(),
        certfile=args.cert,
        keyfile=args.key,
        web=None if args.no_web else args.web,
        faults=faults,
        release_to=release,
    )
    old_term = signal.signal(signal.SIGTERM, _on_signal)
    old_int = signal.signal(signal.SIGINT, _on_signal)
    try:
        try:
            server.start()
        except OSError as exc:
            where = f"{args.host}:{args.port}"
            if exc.filename == "web UI":
                where = f"{args.web[0]}:{args.web[1]} (web UI; --web HOST:PORT or --no-web)"
            raise CLIError(f"cannot listen on {where}: {exc.strerror or exc}", Exit.OSERR) from None
        except ssl.SSLError as exc:
            raise CLIError(f"cannot use the certificate: {exc}", Exit.CONFIG) from None
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
        if args.cert is None:
            ca = server.ca_file
            print(f"CA certificate: {ca} (send with --cafile {ca})", flush=True)
        pin = server.certificate_fingerprint
        print(f"certificate SHA-256: {pin} (or send with --tls-fingerprint {pin})", flush=True)
    if server.faults.active:
        print(f"fault scripts: {', '.join(args.fault)}", flush=True)
    if server.release_target is not None:
        print(f"release to: {server.release_target.address}", flush=True)
    if not args.no_web:
        print(f"web UI and API: {server.web_url}", flush=True)
    print("press Ctrl-C to stop", file=sys.stderr, flush=True)
