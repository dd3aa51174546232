"""The handler as applications set it up: ``dictConfig``, exit, ``fork``, the package's name.

``dictConfig``, exit and ``fork`` run in child interpreters (so the test session's own
logging set-up is left alone, and exit is a real exit), sending to a capture server of this
process.
"""

from __future__ import annotations

import importlib
import json
import logging
import pkgutil
import subprocess
import sys
import textwrap
import types
from collections.abc import Callable

import postwire
from logging_support import HOST, records_in
from postwire.capture import CaptureServer, FaultScript

StartCapture = Callable[..., CaptureServer]
GUARD = 60.0  # seconds a child interpreter may take before the test fails: a guard, not a goal


def run_python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=GUARD,
        check=False,
    )


DICT_CONFIG = """
    import json, logging, logging.config, sys

    port, cafile = int(sys.argv[1]), sys.argv[2]
    logging.config.dictConfig({
        "version": 1,
        "formatters": {"mail": {"format": "%(levelname)s %(name)s: %(message)s"}},
        "handlers": {
            "by_class": {
                "class": "postwire.logging.SMTPHandler",
                "level": "ERROR",
                "formatter": "mail",
                "mailhost": ["127.0.0.1", port],
                "fromaddr": "app@example.org",
                "toaddrs": ["ops@example.org"],
                "subject": "by class",
                "client_options": {"cafile": cafile},
                "batch_delay": 3600,
                "rate_limit": None,
            },
            "by_factory": {
                "()": "postwire.logging.SMTPHandler",
                "level": "WARNING",
                "formatter": "mail",
                "url": f"smtp://127.0.0.1:{port}?cafile={cafile}&from=factory%40example.org",
                "toaddrs": "ops@example.org",
                "subject": "by factory",
                "batch_delay": 3600,
            },
        },
        "loggers": {"app": {"handlers": ["by_class", "by_factory"], "level": "DEBUG"}},
    })
    log = logging.getLogger("app.db")
    log.info("not mailed")
    log.warning("a warning")
    log.error("an error")
    handlers = logging.getLogger("app").handlers
    # A new configuration closes the old handlers: what they hold is sent then.
    logging.config.dictConfig({"version": 1})
    print(json.dumps([[type(h).__module__, h.messages_sent, h.records_sent] for h in handlers]))
"""


def test_dict_config_with_the_class_key_and_the_factory_key(start_capture: StartCapture) -> None:
    server = start_capture()
    done = run_python(DICT_CONFIG, str(server.port), str(server.ca_file))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [
        ["postwire.logging.handler", 1, 1],
        ["postwire.logging.handler", 1, 2],
    ]
    by_subject = {m.subject: m for m in server.messages}
    assert sorted(by_subject) == ["by class (1 record)", "by factory (2 records)"]
    assert records_in(by_subject["by class (1 record)"]) == ["ERROR app.db: an error"]
    factory = by_subject["by factory (2 records)"]
    assert records_in(factory) == ["WARNING app.db: a warning", "ERROR app.db: an error"]
    assert factory.mail_from == "factory@example.org"
    assert done.stderr == ""


AT_EXIT = """
    import logging, sys
    from postwire.logging import SMTPHandler

    port, cafile, client_timeout = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
    handler = SMTPHandler(
        ("127.0.0.1", port), "app@example.org", "ops@example.org", "at exit",
        timeout=client_timeout, client_options={"cafile": cafile},
        batch_delay=3600, flush_timeout=1.0,
    )
    log = logging.getLogger("app")
    log.addHandler(handler)
    for i in range(3):
        log.error("r%d", i)
    # No flush and no close: the exit (logging.shutdown) must deal with what is queued.
"""


def test_records_still_queued_at_exit_are_sent(start_capture: StartCapture) -> None:
    server = start_capture()
    done = run_python(AT_EXIT, str(server.port), str(server.ca_file), "5")
    assert (done.returncode, done.stderr) == (0, "")
    (message,) = server.messages
    assert message.subject == "at exit (3 records)"
    assert records_in(message) == ["r0", "r1", "r2"]


def test_a_hung_server_holds_exit_for_flush_timeout_at_most(start_capture: StartCapture) -> None:
    server = start_capture(faults=FaultScript(delay_data_reply=3600))
    # The client would wait ten minutes for the reply; the exit waits flush_timeout (1 s).
    done = run_python(AT_EXIT, str(server.port), str(server.ca_file), "600")
    assert done.returncode == 0
    assert done.stderr.splitlines() == [
        f"postwire.logging.SMTPHandler: closed with 3 log records not yet sent to "
        f"{HOST}:{server.port}: no answer within flush_timeout=1s"
    ]
    (stored,) = server.messages  # the server had it; its answer never came in time
    assert records_in(stored) == ["r0", "r1", "r2"]


FORK = """
    import logging, os, sys
    from postwire.logging import SMTPHandler

    port, cafile = int(sys.argv[1]), sys.argv[2]
    handler = SMTPHandler(
        ("127.0.0.1", port), "app@example.org", "ops@example.org", "forked",
        client_options={"cafile": cafile}, batch_delay=3600, rate_limit=None,
    )
    log = logging.getLogger("app")
    log.addHandler(handler)
    log.error("parent, before the fork")
    assert handler.send_pending()  # the parent's sending thread is running
    log.error("parent, queued at the fork")
    pid = os.fork()
    if pid == 0:  # the child: no thread was copied; its first record starts its own
        log.error("child")
        os._exit(0 if handler.send_pending() else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert handler.send_pending()
"""


def test_a_forked_child_sends_its_own_records_and_not_the_parents(
    start_capture: StartCapture,
) -> None:
    server = start_capture()
    done = run_python(FORK, str(server.port), str(server.ca_file))
    assert (done.returncode, done.stderr) == (0, "")
    records = sorted(tuple(records_in(m)) for m in server.messages)
    assert records == [
        ("child",),
        ("parent, before the fork",),
        ("parent, queued at the fork",),
    ]


def test_import_logging_in_postwire_modules_is_the_standard_library() -> None:
    # postwire.logging is a package of postwire's; every postwire module that imports
    # ``logging`` must still get the standard library's (absolute imports).
    for info in pkgutil.walk_packages(postwire.__path__, "postwire."):
        if not info.name.endswith("__main__"):
            importlib.import_module(info.name)
    checked = []
    for name, module in list(sys.modules.items()):
        if not name.startswith("postwire.") or name == "postwire.logging":
            continue
        imported = getattr(module, "logging", None)
        if isinstance(imported, types.ModuleType):
            assert imported is logging, name
            checked.append(name)
    assert {"postwire.client.base", "postwire.logging.handler"} <= set(checked)
    assert postwire.logging is sys.modules["postwire.logging"] is not logging

    done = run_python(
        """
        import postwire.logging, logging, logging.handlers
        assert logging.__name__ == "logging" and "postwire" not in logging.__file__
        assert postwire.logging.SMTPHandler.__mro__[1] is logging.Handler
        print("ok")
        """
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "ok\n", "")
