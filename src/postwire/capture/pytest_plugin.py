"""The pytest plugin: a session-wide mail catcher and a mailbox per test.

Registered through the ``pytest11`` entry point, so installing ``postwire[capture]`` is enough.
Nothing starts unless a test asks for a fixture, and nothing is imported until then (a project
without the ``capture`` extra is not affected).

Fixtures:

- ``mail_catcher`` (session): a :class:`~postwire.capture.CaptureServer` on 127.0.0.1 without
  TLS, started at first use. With ``--mail-catcher-web HOST:PORT`` it also serves the web UI
  there, to watch the tests' mail while they run.
- ``mailbox`` (per test): a :class:`~postwire.capture.Mailbox`, a port of its own on the session
  catcher that sees only the mail sent to it during this test, with ``wait_for``, ``latest``,
  ``links``, ``code``, ``assert_sent_to``, ``assert_header``, ``faulty`` (fault scripts) and
  settings for frameworks (``django_settings()``, ``flask_config()``).
- ``django_mailbox`` (per test): ``mailbox`` with Django's settings overridden to send to it
  (Django's test runner otherwise swaps in its in-memory backend).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .mailbox import Mailbox
    from .server import CaptureServer

__all__ = ["django_mailbox", "mail_catcher", "mailbox"]

_names = itertools.count(2)


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--mail-catcher-web HOST:PORT``: serve the session catcher's web UI there."""
    group = parser.getgroup("postwire", "postwire mail catcher")
    group.addoption(
        "--mail-catcher-web",
        metavar="HOST:PORT",
        default=None,
        help="serve the mail catcher's web UI there while the tests run (e.g. 127.0.0.1:8025)",
    )


def _web_address(text: str | None) -> tuple[str, int] | None:
    if not text:
        return None
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise pytest.UsageError(f"--mail-catcher-web wants HOST:PORT, not {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


@pytest.fixture(scope="session")
def mail_catcher(request: pytest.FixtureRequest) -> Iterator[CaptureServer]:
    """The session's capture server (127.0.0.1, no TLS), started at first use."""
    from .server import CaptureServer

    web = _web_address(request.config.getoption("--mail-catcher-web"))
    server = CaptureServer("127.0.0.1", 0, tls="none", web=web)
    server.start()
    if web is not None:
        plugins = request.config.pluginmanager
        reporter = plugins.get_plugin("terminalreporter")
        capture = plugins.get_plugin("capturemanager")
        if reporter is not None and capture is not None:
            with capture.global_and_fixture_disabled():  # shown even while output is captured
                reporter.write_line(f"mail catcher web UI: {server.web_url}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def mailbox(mail_catcher: CaptureServer, request: pytest.FixtureRequest) -> Iterator[Mailbox]:
    """A mailbox of this test's own: send to ``mailbox.host``, ``mailbox.port``."""
    name = request.node.nodeid
    if any(m.mailbox == name for m in mail_catcher.messages):
        name = f"{name}#{next(_names)}"  # the same test run again (reruns): a new mailbox
    box = mail_catcher.open_mailbox(name)
    try:
        yield box
    finally:
        box.close()


@pytest.fixture
def django_mailbox(mailbox: Mailbox) -> Iterator[Mailbox]:
    """``mailbox``, with Django's EMAIL_* settings pointing at it for this test."""
    from django.test import override_settings

    with override_settings(**mailbox.django_settings()):
        yield mailbox
