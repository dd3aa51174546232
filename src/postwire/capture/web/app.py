"""The aiohttp application of the web UI and API, its security rules and its life cycle.

Security rules, for every response:

- ``Content-Security-Policy`` with ``frame-ancestors 'none'`` and ``X-Frame-Options: DENY``
  (RFC 7034): no other page may frame the UI (click-jacking); scripts only from the UI itself;
- requests whose ``Host`` is not the address the server was given (or ``localhost``) are
  refused: a page on another site that rebinds its DNS name to 127.0.0.1 cannot read the API
  (DNS rebinding);
- requests that change something (POST, PUT, DELETE) are refused when the browser says they
  come from another site (``Origin`` not ours, or ``Sec-Fetch-Site: cross-site``), and a body
  must be JSON, which a cross-site form cannot send without a CORS preflight that we never
  answer (Fetch standard §3.2.2);
- the server listens only on the address it was given (127.0.0.1 by default).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable
from importlib import resources

from aiohttp import web

from ..events import EventHub
from ..store import MessageStore
from . import api

__all__ = ["WebServer"]

log = logging.getLogger("postwire.capture")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: The UI page's policy. Images, styles and fonts may be remote only because the message
#: preview (a srcdoc iframe) inherits this policy and its own, stricter one decides (see
#: ``sanitize.py``); the page itself puts no message content in its own DOM as markup.
PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; connect-src 'self'; "
    "style-src 'self' 'unsafe-inline' http: https:; img-src 'self' data: http: https:; "
    "font-src 'self' data: http: https:; frame-src 'self'; frame-ancestors 'none'; "
    "form-action 'self'; base-uri 'none'; object-src 'none'"
)
#: Everything else (JSON, raw messages, parts): nothing may run, even if opened directly.
OTHER_POLICY = "default-src 'none'; frame-ancestors 'none'; sandbox"
_STATIC = {"app.js": "text/javascript", "app.css": "text/css", "index.html": "text/html"}
_UNSAFE = ("POST", "PUT", "DELETE", "PATCH")


def _host_names(host: str, port: int) -> set[str]:
    names = {f"{host}:{port}", f"localhost:{port}"}
    try:
        if ipaddress.ip_address(host).version == 6:
            names.add(f"[{host}]:{port}")
    except ValueError:
        pass
    if host in ("127.0.0.1", "::1", "localhost"):
        names |= {f"127.0.0.1:{port}", f"[::1]:{port}"}
    return {n.lower() for n in names}


class WebServer:
    """The web UI and API for ``store``, served on ``sock`` by the loop ``loop``."""

    def __init__(
        self,
        store: MessageStore,
        sock: socket.socket,
        loop: asyncio.AbstractEventLoop,
        context: api.ApiContext,
    ) -> None:
        self._sock = sock
        self._loop = loop
        self.host, self.port = sock.getsockname()[:2]
        self._allowed_hosts = _host_names(self.host, self.port)
        self.hub = EventHub(store, loop)
        context.hub = self.hub
        self._context = context
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        """The UI's address."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def _app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard], client_max_size=1024 * 1024)
        app[api.CONTEXT] = self._context
        app.router.add_get("/", self._page)
        app.router.add_get("/static/{name}", self._static)
        api.add_routes(app)
        app.on_shutdown.append(self._on_shutdown)
        app.on_response_prepare.append(self._headers)
        return app

    async def _on_shutdown(self, app: web.Application) -> None:
        self.hub.close()

    async def start(self) -> None:
        """Start serving (on the loop)."""
        runner = web.AppRunner(
            self._app(), access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        await runner.setup()
        site = web.SockSite(runner, self._sock)
        await site.start()
        self._runner = runner

    async def stop(self) -> None:
        """Stop serving and end the event streams (on the loop)."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.host.lower() not in self._allowed_hosts:
            return web.Response(status=421, text="unknown host name\n")  # RFC 9110 §15.5.20
        if request.method in _UNSAFE:
            origin = request.headers.get("Origin")
            site = request.headers.get("Sec-Fetch-Site", "same-origin")
            if (origin is not None and origin.lower() != f"http://{request.host}".lower()) or (
                site not in ("same-origin", "none")
            ):
                return web.Response(status=403, text="cross-site request refused\n")
            if request.can_read_body and request.content_type != "application/json":
                return web.Response(status=415, text="send JSON\n")
        try:
            return await handler(request)
        except web.HTTPException as exc:  # answered as a plain response (with our headers)
            return web.Response(status=exc.status, reason=exc.reason, text=exc.text or "")

    @staticmethod
    async def _headers(request: web.Request, response: web.StreamResponse) -> None:
        # on_response_prepare: every response, streams (the event stream) included, gets
        # these before its headers are sent.
        headers = response.headers
        headers.setdefault("Content-Security-Policy", OTHER_POLICY)
        headers["X-Frame-Options"] = "DENY"
        headers["X-Content-Type-Options"] = "nosniff"
        headers["Referrer-Policy"] = "no-referrer"
        headers["Cross-Origin-Opener-Policy"] = "same-origin"
        headers["Cross-Origin-Resource-Policy"] = "same-origin"
        headers.setdefault("Cache-Control", "no-store")

    async def _page(self, request: web.Request) -> web.StreamResponse:
        return self._file("index.html", PAGE_POLICY)

    async def _static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in _STATIC or name == "index.html":
            raise web.HTTPNotFound()
        return self._file(name, OTHER_POLICY)

    def _file(self, name: str, policy: str) -> web.Response:
        data = resources.files(__package__).joinpath("static").joinpath(name).read_bytes()
        response = web.Response(body=data, content_type=_STATIC[name], charset="utf-8")
        response.headers["Content-Security-Policy"] = policy
        return response
