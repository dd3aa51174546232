"""The catcher's web face: the browser UI and the HTTP API, on aiohttp.

It runs on the capture server's own event loop (aiosmtpd's), so a message is in the store,
in the API and on its way to the browser in one thread, without locks between loops.
``app`` builds the application and its security headers, ``api`` answers ``/api/v1``, and
``static/`` holds the page, its script and its style (package data: no CDN, no build step).

Needs the ``capture`` extra (``aiohttp`` on top of ``aiosmtpd``).
"""

from __future__ import annotations

from .app import WebServer

__all__ = ["WebServer"]
