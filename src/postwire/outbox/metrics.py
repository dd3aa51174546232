"""A worker's metrics in the Prometheus text format (the ``prometheus_client`` package).

Counters count what this worker did since it started (Prometheus expects counters per
process and sums them across processes); gauges are read from the database at each scrape,
so any one worker shows the whole outbox:

=============================================  ==========================================
``postwire_outbox_deliveries_total``           recipients delivered
``postwire_outbox_deferrals_total``            recipients deferred (4xx, failed connection)
``postwire_outbox_bounces_total``              recipients bounced (5xx)
``postwire_outbox_uncertain_total``            recipients left possibly delivered
``postwire_outbox_expired_total``              recipients expired (lifetime over)
``postwire_outbox_lease_lost_total``           results not written: the lease was gone
``postwire_outbox_entries{state=...}``         entries in each state
``postwire_outbox_oldest_queued_age_seconds``  age of the oldest entry not yet delivered
``postwire_outbox_relay_connections{relay}``   open connections (live slots) per relay
``postwire_outbox_relay_window{relay}``        the relay's current concurrency window
=============================================  ==========================================
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

from .._core.errors import ConfigError, StorageError
from .policy import Decision
from .storage import Storage

__all__ = ["Metrics", "prometheus"]


def prometheus() -> Any:
    """The prometheus_client module, or a ConfigError saying how to install it."""
    try:
        import prometheus_client
    except ImportError:  # pragma: no cover - the outbox extra installs it
        raise ConfigError(
            "outbox metrics need prometheus_client: pip install 'postwire[outbox]'"
        ) from None
    return prometheus_client


class _Database:
    """A collector that reads the gauges from the database at each scrape."""

    def __init__(self, storage: Callable[[], Storage], lock: threading.Lock) -> None:
        self._storage = storage
        self._lock = lock

    def collect(self) -> Iterator[Any]:
        prometheus()
        from prometheus_client import core

        entries = core.GaugeMetricFamily(
            "postwire_outbox_entries", "Entries in the outbox, by state", labels=["state"]
        )
        oldest = core.GaugeMetricFamily(
            "postwire_outbox_oldest_queued_age_seconds",
            "Age of the oldest entry not yet delivered (queued, deferred, uncertain, sending)",
        )
        connections = core.GaugeMetricFamily(
            "postwire_outbox_relay_connections", "Open connections per relay", labels=["relay"]
        )
        window = core.GaugeMetricFamily(
            "postwire_outbox_relay_window", "Concurrency window per relay", labels=["relay"]
        )
        try:
            with self._lock:
                storage = self._storage()
                counts = storage.counts()
                first = storage.oldest_waiting()
                now = storage.now()
                relays = storage.relays()
        except StorageError:
            return  # the database is away: no gauges this time
        for state, n in counts.items():
            entries.add_metric([state.value], n)
        oldest.add_metric([], 0.0 if first is None else max(0.0, now - first))
        for relay in relays:
            connections.add_metric([relay.relay], relay.connections)
            window.add_metric([relay.relay], relay.window)
        yield from (entries, oldest, connections, window)


class Metrics:
    """One worker's counters and the database's gauges."""

    def __init__(self, storage: Callable[[], Storage]) -> None:
        client = prometheus()
        self.registry = client.CollectorRegistry()
        lock = threading.Lock()

        def counter(name: str, text: str) -> Any:
            return client.Counter(name, text, registry=self.registry)

        self.deliveries = counter("postwire_outbox_deliveries", "Recipients delivered")
        self.deferrals = counter(
            "postwire_outbox_deferrals", "Recipients deferred (4xx or a failed connection)"
        )
        self.bounces = counter("postwire_outbox_bounces", "Recipients bounced (5xx)")
        self.uncertain = counter(
            "postwire_outbox_uncertain", "Recipients left possibly delivered (RFC 1047)"
        )
        self.expired = counter("postwire_outbox_expired", "Recipients expired (lifetime over)")
        self.lease_lost = counter(
            "postwire_outbox_lease_lost", "Results not written because the lease was gone"
        )
        self.registry.register(_Database(storage, lock))
        self._server: Any = None

    def observe(self, decision: Decision) -> None:
        if decision.delivered:
            self.deliveries.inc(decision.delivered)
        if decision.deferred:
            self.deferrals.inc(decision.deferred)
        if decision.bounced:
            self.bounces.inc(decision.bounced)
        if decision.uncertain_recipients:
            self.uncertain.inc(decision.uncertain_recipients)
        if decision.expired:
            self.expired.inc(decision.expired)

    def text(self) -> bytes:
        """The metrics in the Prometheus text exposition format."""
        return bytes(prometheus().generate_latest(self.registry))

    def serve(self, port: int, host: str = "127.0.0.1") -> int:
        """Serve ``/metrics`` over HTTP on ``host:port`` (0: a free port); returns the port."""
        server, _ = prometheus().start_http_server(port, addr=host, registry=self.registry)
        self._server = server
        return int(server.server_address[1])

    def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
