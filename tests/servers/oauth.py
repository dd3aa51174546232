"""An OAuth 2.0 token introspection endpoint (RFC 7662) on 127.0.0.1, for Dovecot's oauth2 passdb.

The private Postfix hands XOAUTH2 and OAUTHBEARER to Dovecot, and Dovecot asks this endpoint
whether a bearer token is good (``introspection_mode = post``: a form with ``token=...``).  The
answer is the JSON RFC 7662 §2.2 describes: ``{"active": true, "username": ...}`` for a token
issued by :meth:`TokenIntrospection.issue` and not revoked since, ``{"active": false}`` for any
other.  Every token asked about is kept in :attr:`TokenIntrospection.asked`, in order, so a test
sees which token the server really checked.
"""

from __future__ import annotations

import json
import secrets
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["TokenIntrospection"]


class TokenIntrospection:
    """The endpoint; use as a context manager, or call :meth:`start` and :meth:`stop`."""

    host = "127.0.0.1"

    def __init__(self) -> None:
        self._tokens: dict[str, str] = {}
        self._lock = threading.Lock()
        #: Every token the endpoint was asked about, oldest first.
        self.asked: list[str] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the introspection endpoint is not started")
        return f"http://{self.host}:{self._server.server_address[1]}/introspect"

    def issue(self, username: str) -> str:
        """A new bearer token that the endpoint calls active for ``username``."""
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._tokens[token] = username
        return token

    def revoke(self, token: str) -> None:
        """From now on the token is inactive (as an expired one is)."""
        with self._lock:
            self._tokens.pop(token, None)

    def _introspect(self, token: str) -> dict[str, object]:
        with self._lock:
            self.asked.append(token)
            username = self._tokens.get(token)
        if username is None:
            return {"active": False}
        return {"active": True, "username": username, "token_type": "Bearer"}

    def start(self) -> None:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = urllib.parse.parse_qs(self.rfile.read(length).decode("ascii", "replace"))
                token = form.get("token", [""])[0]
                body = json.dumps(endpoint._introspect(token)).encode("ascii")
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass  # Dovecot's own log says what it asked and what it concluded

        self._server = ThreadingHTTPServer((self.host, 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def __enter__(self) -> TokenIntrospection:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
