"""The outbox's peers, django-mailer and django-post_office, driven for the benchmark.

Runs inside the peers' own virtual environment (Django and both packages from PyPI, made by
benchmarks/outbox.py under .work/), never in postwire's.  One action per process; prints
one JSON object.  Each peer is used in its best documented mode:

- django-mailer: ``mailer.send_mail`` queues (one row per message; ``send_mass_mail`` is the
  same loop), ``send_all()`` (the ``send_mail`` command) sends over one SMTP connection, one
  transaction per message with ``SELECT ... FOR UPDATE NOWAIT``.  On PostgreSQL several
  senders share the queue with ``MAILER_USE_FILE_LOCK = False`` (the row locks distribute
  it); on SQLite, which has no row locks, the file lock lets one sender run at a time.
  Idle latency: ``runmailer_pg`` (LISTEN/NOTIFY) on PostgreSQL, ``runmailer`` (polling every
  ``MAILER_EMPTY_QUEUE_SLEEP`` = 1 s) on SQLite.
- django-post_office: ``mail.send`` queues one message, ``mail.send_many`` many with
  ``bulk_create``; ``send_queued_mail --processes N`` sends (N forked processes, each with
  ``THREADS_PER_PROCESS`` = 5 threads and connections), ``BATCH_SIZE`` 1000, log level 1
  (errors only).  It has no idle worker (cron or Celery), so no latency figure.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from typing import Any

BODY = ("X" * 78 + "\r\n") * 13  # about 1 KiB, like the other benchmarks' messages
SENDER = "bench@test.example"
RECIPIENT = "rcpt@discard.test"


def setup(peer: str, db: str, port: int, workdir: str) -> None:
    import django
    from django.conf import settings

    if db.startswith("postgresql://"):
        from urllib.parse import urlparse

        u = urlparse(db)
        database = {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": u.path.lstrip("/"),
            "USER": u.username,
            "HOST": u.hostname,
            "PORT": str(u.port),
        }
    else:
        database = {"ENGINE": "django.db.backends.sqlite3", "NAME": db, "OPTIONS": {"timeout": 60}}
    apps = ["django.contrib.contenttypes", "mailer" if peer == "mailer" else "post_office"]
    extra: dict[str, Any] = {}
    if peer == "mailer":
        extra = {
            "MAILER_EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "EMAIL_BACKEND": "mailer.backend.DbBackend",
            "MAILER_USE_FILE_LOCK": not db.startswith("postgresql://"),
            "MAILER_LOCK_PATH": os.path.join(workdir, "mailer"),
            "MAILER_EMPTY_QUEUE_SLEEP": 1,
        }
    else:
        extra = {
            "EMAIL_BACKEND": "post_office.EmailBackend",
            "POST_OFFICE": {
                "BACKENDS": {"default": "django.core.mail.backends.smtp.EmailBackend"},
                "BATCH_SIZE": 1000,
                "THREADS_PER_PROCESS": 5,
                "LOG_LEVEL": 1,
                "DEFAULT_PRIORITY": "medium",
            },
        }
    settings.configure(
        DATABASES={"default": database},
        INSTALLED_APPS=apps,
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=port,
        EMAIL_USE_TLS=False,
        USE_TZ=True,
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
        LOGGING_CONFIG=None,
        TEMPLATES=[{"BACKEND": "django.template.backends.django.DjangoTemplates"}],
        **extra,
    )
    django.setup()


def queued(peer: str) -> int:
    if peer == "mailer":
        from mailer.models import Message

        return int(Message.objects.count())
    from post_office.models import STATUS, Email

    return int(Email.objects.filter(status__in=[STATUS.queued, STATUS.requeued]).count())


def put(peer: str, n: int, start: int, bulk: bool) -> float:
    """Queue ``n`` messages; returns the seconds it took."""
    subjects = [f"bench {start + i}" for i in range(n)]
    began = time.perf_counter()
    if peer == "mailer":
        import mailer

        if bulk:
            mailer.send_mass_mail([(s, BODY, SENDER, [RECIPIENT]) for s in subjects])
        else:
            for s in subjects:
                mailer.send_mail(s, BODY, SENDER, [RECIPIENT])
    else:
        from post_office import mail

        if bulk:
            for i in range(0, n, 1000):
                mail.send_many(
                    [
                        {"sender": SENDER, "recipients": [RECIPIENT], "subject": s, "message": BODY}
                        for s in subjects[i : i + 1000]
                    ]
                )
        else:
            for s in subjects:
                mail.send([RECIPIENT], SENDER, subject=s, message=BODY)
    return time.perf_counter() - began


def drain_mailer(workers: int, argv: list[str]) -> None:
    """``workers`` processes running send_all() until the queue is empty."""
    procs = [
        subprocess.Popen([sys.executable, __file__, *argv, "--action", "send-all"])
        for _ in range(workers)
    ]
    for proc in procs:
        proc.wait(1200)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--peer", choices=("mailer", "post_office"), required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workdir", required=True)
    parser.add_argument(
        "--action",
        choices=("migrate", "put", "put-bulk", "drain", "send-all", "count", "idle", "put-timed"),
        required=True,
    )
    parser.add_argument("--n", type=int, default=0)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--interval", type=float, default=0.05)
    args = parser.parse_args()
    setup(args.peer, args.db, args.port, args.workdir)
    from django.core.management import call_command

    out: dict[str, Any] = {}
    if args.action == "migrate":
        call_command("migrate", verbosity=0)
    elif args.action in ("put", "put-bulk"):
        out["seconds"] = put(args.peer, args.n, args.start, args.action == "put-bulk")
    elif args.action == "count":
        out["queued"] = queued(args.peer)
    elif args.action == "send-all":
        from mailer.engine import send_all
        from mailer.models import Message

        while Message.objects.non_deferred().exists():
            send_all()
    elif args.action == "drain":
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        began = time.perf_counter()
        if args.peer == "mailer":
            base = ["--peer", "mailer", "--db", args.db, "--port", str(args.port),
                    "--workdir", args.workdir]  # fmt: skip
            drain_mailer(args.workers, base)
        else:
            call_command("send_queued_mail", processes=args.workers, log_level=1)
        out["seconds"] = time.perf_counter() - began
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        own = resource.getrusage(resource.RUSAGE_SELF)
        out["cpu"] = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) + (
            own.ru_utime + own.ru_stime
        )
        out["left"] = queued(args.peer)
    elif args.action == "idle":
        # An idle sender, as it runs in production, until killed.
        if args.peer == "mailer":
            name = "runmailer_pg" if args.db.startswith("postgresql://") else "runmailer"
            call_command(name)
    elif args.action == "put-timed":
        # One message every `interval` seconds; prints the monotonic time of each put.
        import mailer

        stamps = []
        for i in range(args.n):
            stamps.append(time.monotonic())
            mailer.send_mail(f"latency {args.start + i}", BODY, SENDER, [RECIPIENT])
            time.sleep(args.interval)
        out["stamps"] = stamps
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
