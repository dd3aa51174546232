"""Fixtures of the logging handler's tests: handlers for capture servers, closed afterwards.

Capture servers come from ``start_capture`` (tests/conftest.py).  Every handler made here is
closed after its test (with a short bound); each test logs through a logger of its own
(``logging_support.logger_for``) that does not propagate, so nothing reaches pytest's
handlers or another test's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from logging_support import HOST, OPS, SENDER
from postwire.capture import CaptureServer
from postwire.logging import SMTPHandler


@pytest.fixture
def handler_for() -> Iterator[Callable[..., SMTPHandler]]:
    """Make handlers for a capture server (trusting its CA); all closed after the test.

    ``handler_for(server, **kwargs)``: ``mailhost`` is the server, ``client_options`` get
    its CA file unless they say otherwise; keyword arguments go to :class:`SMTPHandler`.
    """
    made: list[SMTPHandler] = []

    def make(server: CaptureServer | None = None, **kwargs: Any) -> SMTPHandler:
        if server is not None:
            kwargs.setdefault("mailhost", (HOST, server.port))
            options = dict(kwargs.pop("client_options", {}))
            if "ssl_context" not in options and "cafile" not in options:
                try:
                    options["cafile"] = str(server.ca_file)
                except RuntimeError:  # a server without TLS has no CA
                    pass
            kwargs["client_options"] = options
        kwargs.setdefault("fromaddr", SENDER)
        kwargs.setdefault("toaddrs", [OPS])
        kwargs.setdefault("subject", "app")
        kwargs.setdefault("flush_timeout", 20.0)
        handler = SMTPHandler(**kwargs)
        made.append(handler)
        return handler

    yield make
    for handler in made:
        handler.flush_timeout = 1.0
        handler.close()
