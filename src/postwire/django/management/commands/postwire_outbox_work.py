"""``python manage.py postwire_outbox_work``: deliver what ``OutboxBackend`` queued.

The options of ``postwire outbox work`` (the same parser: :mod:`postwire.cli.outbox_work`),
and one difference: entries without a route go through the relay the project's own
``EMAIL_*`` settings and ``POSTWIRE_EMAIL`` describe, exactly where
:class:`~postwire.django.EmailBackend` would connect
(:func:`postwire.django.settings.relay_options`), unless ``--relay URL`` sends
everything elsewhere or ``--default-account`` takes the config file's default account.
An entry whose route names an account goes through that config-file account.  The
outbox is ``--db``, else ``POSTWIRE_OUTBOX``, else the outbox's default.  SIGTERM and
SIGINT stop the worker once the batches being sent are done.
"""

from __future__ import annotations

import argparse
import json
import logging
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...._core.errors import ConfigError, OutboxError
from ....cli.exits import CLIError, Exit
from ....cli.outbox_work import (
    add_work_options,
    exit_for,
    stats_line,
    stop_on_signals,
    work_arguments,
)
from ....outbox import Outbox
from ...settings import outbox_settings, relay_options


class Command(BaseCommand):  # type: ignore[misc]  # Django ships no type hints
    """A worker of the project's outbox."""

    help = (
        "Deliver the messages postwire.django.OutboxBackend queued, through the EMAIL_* "
        "settings (or --relay, or the config file's accounts for routed entries), until "
        "stopped (SIGTERM, SIGINT) or, with --until-empty, until nothing is ready."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        add_work_options(parser)
        parser.add_argument(
            "--db",
            metavar="URL",
            help="the outbox: sqlite:///PATH or postgresql://... (default: POSTWIRE_OUTBOX)",
        )
        parser.add_argument(
            "--default-account",
            action="store_true",
            help="send entries without a route through the config file's default account, "
            "not through the EMAIL_* settings",
        )
        parser.add_argument("--json", action="store_true", help="print the counts as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["verbosity"] >= 2:
            logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
        try:
            arguments = work_arguments(argparse.Namespace(**options))
            url = options["db"] or outbox_settings().url
            if options["relay"] is None and not options["default_account"]:
                # One place says what the EMAIL_* settings mean: the EmailBackend's.
                arguments["default_relay"] = relay_options()
        except CLIError as exc:
            raise CommandError(str(exc), returncode=exc.code) from None
        except (ImproperlyConfigured, ValueError, OSError) as exc:
            raise CommandError(str(exc), returncode=Exit.CONFIG) from exc
        try:
            with stop_on_signals() as stop, Outbox(url) as outbox:
                stats = outbox.work(stop=stop, **arguments)
        except (OutboxError, ConfigError) as exc:
            raise CommandError(str(exc), returncode=exit_for(exc)) from exc
        if options["json"]:
            self.stdout.write(json.dumps(stats, sort_keys=True))
        else:
            self.stdout.write(stats_line(stats))
