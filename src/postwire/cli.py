"""The ``postwire`` command line."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="postwire", description="Send e-mail over SMTP.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo", help="send a sample message through an embedded local capture server"
    )
    demo.add_argument("--maildir", help="keep the captured message in this Maildir")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        from .demo import run_demo

        return run_demo(args.maildir)
    return 2  # pragma: no cover - argparse refuses unknown commands
