"""The top-level parser of ``postwire`` and what each command runs.

Each command's parser and work live in its own module (``send``, ``probe``,
``capture``, ``outbox``, ``sendmail_mode``, ``demo``); modules are imported only when
their command runs, so ``postwire --help`` stays quick.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from .exits import EXIT_TABLE, CLIError, Exit
from .output import print_error

__all__ = ["build_parser", "main"]

ENVIRONMENT = """\
configuration (lowest to highest priority):
  config file   --config PATH, else $POSTWIRE_CONFIG, else
                $XDG_CONFIG_HOME/postwire/config.toml (~/.config/postwire/config.toml):
                default = "NAME"; [defaults] and [accounts.NAME] tables with the keys
                server, tls, cafile, tls_fingerprint, user, password_env, password_file,
                password_command, from, timeout, allow_plaintext_auth, lmtp, proxy,
                dkim_key, dkim_selector, dkim_domain, dkim_headers, dkim_canonicalization
  environment   POSTWIRE_ACCOUNT (account to use), POSTWIRE_SERVER (host[:port]),
                POSTWIRE_TLS, POSTWIRE_CAFILE, POSTWIRE_TLS_FINGERPRINT, POSTWIRE_USER,
                POSTWIRE_PASSWORD_ENV (name of the variable holding the password),
                POSTWIRE_PASSWORD_FILE, POSTWIRE_PASSWORD_COMMAND, POSTWIRE_FROM,
                POSTWIRE_TIMEOUT, POSTWIRE_PROXY, POSTWIRE_DKIM_KEY,
                POSTWIRE_DKIM_SELECTOR, POSTWIRE_DKIM_DOMAIN,
                POSTWIRE_OUTBOX (the outbox database URL of `postwire outbox`)
  options       --server, --tls, --cafile, --tls-fingerprint, --proxy, --lmtp,
                --timeout, --user, --password-*, --dkim-*

"""

EPILOG = ENVIRONMENT + EXIT_TABLE
#: A command's own help shows its options; the shared blocks are in `postwire --help` once.
COMMAND_EPILOG = "the config file, POSTWIRE_* variables and exit codes: see postwire --help"
SERVER_EPILOG = "exit codes: see postwire --help"


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error exits with EX_USAGE (64) as sendmail-like tools do."""

    def error(self, message: str) -> NoReturn:
        self.exit(Exit.USAGE, f"{self.prog}: {message} (see {self.prog} --help)\n")


# Options whose value may look like an option: an address such as "-x@example.org".
_ADDRESS_OPTIONS = ("--to", "--cc", "--bcc", "--from")


def _join_dash_values(argv: list[str]) -> list[str]:
    """``--to -x@y`` becomes ``--to=-x@y`` so that the address check, not argparse, refuses it."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("--") and arg.endswith("=--"):
            # argparse silently turns the value "--" into an empty list.
            option = arg[: -len("=--")]
            raise CLIError(f"{option}: '--' is not a value it can take", Exit.USAGE)
        nxt = argv[i + 1] if i + 1 < len(argv) else ""
        if arg in _ADDRESS_OPTIONS and len(nxt) > 1 and nxt[0] == "-" and nxt[1] != "-":
            out.append(f"{arg}={nxt}")
            i += 2
            continue
        if arg == "--":
            out.extend(argv[i:])
            break
        out.append(arg)
        i += 1
    return out


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``postwire`` (``sendmail`` has its own, sendmail-style)."""
    from . import capture, outbox, probe, send

    parser = _Parser(
        prog="postwire",
        description="Send e-mail over SMTP, probe servers, run a local capture server.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    send.add_parser(sub, COMMAND_EPILOG)
    sub.add_parser(
        "sendmail",
        help="sendmail-compatible: -t, -i, -f, -F, recipients; message on stdin",
        add_help=False,
    )
    probe.add_parser(sub, COMMAND_EPILOG)
    capture.add_parser(sub, SERVER_EPILOG)
    outbox.add_parser(sub, COMMAND_EPILOG)
    demo = sub.add_parser(
        "demo",
        help="send a sample message through an embedded local capture server",
        description="Send a sample message through an embedded local capture server "
        "(STARTTLS with a CA made on the spot, AUTH) and show the transcript.",
    )
    demo.add_argument("--maildir", help="keep the captured message in this Maildir")
    return parser


def _dispatch(argv: list[str]) -> int:
    if argv[:1] == ["sendmail"]:
        # sendmail's options (-oi, -t, -fADDR) are not argparse-shaped: its own parser.
        from .sendmail_mode import run_sendmail_mode

        return run_sendmail_mode(argv[1:])
    args = build_parser().parse_args(_join_dash_values(argv))
    if args.command == "demo":
        from .demo import run_demo

        return run_demo(args.maildir)
    if args.command == "send":
        from .send import run as run_send

        return run_send(args)
    if args.command == "probe":
        from .probe import run as run_probe

        return run_probe(args)
    if args.command == "capture":
        from .capture import run as run_capture

        return run_capture(args)
    if args.command == "outbox":
        from .outbox import run as run_outbox

        return run_outbox(args)
    return Exit.USAGE  # pragma: no cover - argparse refuses unknown commands


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (see ``postwire --help``)."""
    if argv is None:
        argv = sys.argv[1:]
        if os.path.basename(sys.argv[0] or "") == "sendmail":
            argv = ["sendmail", *argv]
    try:
        return _dispatch(list(argv))
    except CLIError as exc:
        print_error(exc)
        return exc.code
    except SystemExit as exc:
        # argparse exits on --help and on usage errors: return its code, so that
        # main() can be called as a function (the console script raises it again).
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except KeyboardInterrupt:
        print_error("interrupted")
        return 130
    except BrokenPipeError:
        # The reader of our output went away (| head): nothing more to say, and the
        # interpreter must not fail again flushing stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return Exit.IOERR
    except Exception as exc:
        if os.environ.get("POSTWIRE_DEBUG"):
            raise
        print_error(
            f"internal error: {type(exc).__name__}: {exc} (set POSTWIRE_DEBUG=1 for a traceback)"
        )
        return Exit.SOFTWARE
