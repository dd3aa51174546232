"""Which relay an entry goes through: its route names a config-file account, or one URL for all.

Entries without a route go through the config file's default account, or, when the worker
is given ``default`` client options (the Django command gives the project's ``EMAIL_*``
settings), through the relay those options describe.

A *relay* is where a worker connects (``host:port``) with the client options to use; the
per-relay limits are kept under that name, so two accounts on one server share them.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..config import from_account, from_url

__all__ = ["Relay", "Routes"]

#: Seconds for each network step, unless the account or URL says otherwise.
DEFAULT_TIMEOUT = 60.0


@dataclass(frozen=True)
class Relay:
    """A relay: its name (``host:port``) and the options of :class:`~postwire.Client`."""

    name: str
    options: Mapping[str, Any] = field(repr=False)


class Routes:
    """Routes to relays: one SMTP URL for every entry, or the config file's accounts.

    With ``url``, entries are claimed whatever their route (:attr:`single`).  Without
    it, a route is an account name of the config file (``config``, else the usual
    search, see :mod:`postwire.config`), and the empty route is the default account.
    ``default`` are the client options of the relay for the empty route, in place of the
    default account (options that no URL can say, such as an ``ssl_context`` or a token
    provider, are fine).  ``overrides`` are client options applied on top (a test's CA
    file, a timeout).
    """

    def __init__(
        self,
        *,
        url: str | None = None,
        config: str | None = None,
        overrides: Mapping[str, Any] | None = None,
        default: Mapping[str, Any] | None = None,
    ) -> None:
        self.url = url
        self.config = config
        self.overrides = dict(overrides or {})
        self.default = None if default is None else dict(default)
        self._relays: dict[str, Relay] = {}
        self._lock = threading.Lock()

    @property
    def single(self) -> bool:
        """Whether every entry goes to the one relay given as a URL."""
        return self.url is not None

    def relay_for(self, route: str) -> Relay:
        """The relay of ``route`` ('' for the default account); raises ConfigError."""
        key = "" if self.single else route
        with self._lock:
            found = self._relays.get(key)
        if found is not None:
            return found
        options: dict[str, Any] = {"timeout": DEFAULT_TIMEOUT}
        if self.url is not None:
            options.update(from_url(self.url).client_options())
        elif not route and self.default is not None:
            options.update(self.default)
        else:
            options.update(from_account(route or None, config=self.config).client_options())
        options.update(self.overrides)
        host, port = options["host"], options["port"]
        name = f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
        relay = Relay(name, options)
        with self._lock:
            self._relays[key] = relay
        return relay
