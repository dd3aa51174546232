"""``/api/v1``: a Mailpit-compatible subset, plus postwire's own paths.

Mailpit's paths, methods and JSON field names (for what is implemented):

- ``GET /api/v1/messages?start=&limit=``: newest first (``MessagesSummary``);
- ``DELETE /api/v1/messages``: all, or ``{"IDs": [...]}``; ``PUT /api/v1/messages``:
  ``{"IDs": [...], "Read": bool}`` (no IDs: all);
- ``GET /api/v1/search?query=&start=&limit=``, ``DELETE /api/v1/search?query=``;
- ``GET /api/v1/message/{ID}`` (``latest`` for the newest; marks it read),
  ``.../raw`` (``?dl=1`` to download), ``.../headers``, ``.../part/{PartID}``;
- ``POST /api/v1/message/{ID}/release`` with ``{"To": [...]}``;
- ``GET /api/v1/info``.

postwire's own: ``GET /api/v1/events`` (server-sent events, see ``events.py``),
``GET /api/v1/message/{ID}/session`` (envelope, transcript, TLS, AUTH), ``.../tree`` (MIME
tree), ``.../preview?remote=0|1`` (the sanitised HTML document for the UI's sandboxed
preview), and ``GET``/``PUT``/``DELETE /api/v1/faults`` (the fault script of the main port).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from aiohttp import web

from ... import __version__
from ..._core.errors import SMTPError
from ..events import EventHub
from ..faults import FaultScript
from ..release import ReleaseTarget
from ..sanitize import data_url, preview_document
from ..store import MessageStore, StoredMessage

__all__ = ["CONTEXT", "ApiContext", "add_routes"]

MAX_LIMIT = 1000


@dataclass
class ApiContext:
    """What the API works on."""

    store: MessageStore
    get_faults: Callable[[], FaultScript]
    set_faults: Callable[[FaultScript], None]
    release_target: ReleaseTarget | None = None
    smtp_address: str = ""
    hub: EventHub | None = field(default=None)


#: Where the application keeps its :class:`ApiContext`.
CONTEXT: web.AppKey[ApiContext] = web.AppKey("context", ApiContext)


def _ctx(request: web.Request) -> ApiContext:
    return request.app[CONTEXT]


def _int(request: web.Request, name: str, default: int, high: int) -> int:
    text = request.query.get(name, "")
    if not text:
        return default
    if not text.isdigit():
        raise web.HTTPBadRequest(text=f"{name} must be a whole number\n")
    return min(int(text), high)


async def _json_body(request: web.Request) -> Any:
    if not request.can_read_body:
        return {}
    try:
        return await request.json()
    except json.JSONDecodeError:
        raise web.HTTPBadRequest(text="the body is not valid JSON\n") from None


def _ids(body: Any) -> list[str] | None:
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="expected a JSON object\n")
    ids = body.get("IDs")
    if ids is None or ids == []:
        return None
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise web.HTTPBadRequest(text="IDs is a list of strings\n")
    return ids


def _message(request: web.Request) -> StoredMessage:
    found = _ctx(request).store.get(request.match_info["id"])
    if found is None:
        raise web.HTTPNotFound(text="message not found\n")
    return found


def _listing(request: web.Request, query: str) -> web.Response:
    store = _ctx(request).store
    start = _int(request, "start", 0, 10**9)
    limit = _int(request, "limit", 50, MAX_LIMIT)
    matched, page = store.page(start, limit, query)
    total, unread = store.counts()
    return web.json_response(
        {
            "total": total,
            "unread": unread,
            "count": len(page),
            "messages_count": matched,
            "messages_unread": unread if not query else sum(1 for m in page if not m.read),
            "start": start,
            "tags": [],
            "messages": [m.parsed.summary_json(m.read) for m in page],
        }
    )


async def list_messages(request: web.Request) -> web.Response:
    """``GET /api/v1/messages``."""
    return _listing(request, "")


async def search(request: web.Request) -> web.Response:
    """``GET /api/v1/search?query=``."""
    return _listing(request, request.query.get("query", ""))


async def delete_messages(request: web.Request) -> web.Response:
    """``DELETE /api/v1/messages`` (all, or the IDs given)."""
    ids = _ids(await _json_body(request))
    _ctx(request).store.delete(ids)
    return web.Response(text="ok")


async def delete_search(request: web.Request) -> web.Response:
    """``DELETE /api/v1/search?query=``: delete what the query finds."""
    query = request.query.get("query", "")
    if not query.strip():
        raise web.HTTPBadRequest(text="query is required\n")
    store = _ctx(request).store
    _, found = store.page(0, len(store), query)
    store.delete([m.id for m in found])
    return web.Response(text="ok")


async def set_read(request: web.Request) -> web.Response:
    """``PUT /api/v1/messages``: ``{"IDs": [...], "Read": true|false}``."""
    body = await _json_body(request)
    ids = _ids(body)
    read = body.get("Read", True)
    if not isinstance(read, bool):
        raise web.HTTPBadRequest(text="Read is true or false\n")
    _ctx(request).store.mark_read(ids, read)
    return web.Response(text="ok")


async def message(request: web.Request) -> web.Response:
    """``GET /api/v1/message/{ID}``; marks the message read."""
    found = _message(request)
    _ctx(request).store.mark_read([found.id])
    return web.json_response(found.parsed.message_json(True))


async def raw(request: web.Request) -> web.Response:
    """``GET /api/v1/message/{ID}/raw``: the bytes as received."""
    found = _message(request)
    response = web.Response(body=found.captured.data, content_type="text/plain", charset="utf-8")
    if request.query.get("dl") == "1":
        response.headers["Content-Disposition"] = f'attachment; filename="{found.id}.eml"'
    return response


async def headers(request: web.Request) -> web.Response:
    """``GET /api/v1/message/{ID}/headers``."""
    return web.json_response(_message(request).parsed.headers_json())


async def part(request: web.Request) -> web.Response:
    """``GET /api/v1/message/{ID}/part/{PartID}``: the decoded part, as an attachment."""
    found = _message(request)
    wanted = found.parsed.part(request.match_info["part"])
    if wanted is None or wanted.children:
        raise web.HTTPNotFound(text="part not found\n")
    response = web.Response(body=wanted.payload(), content_type=wanted.content_type)
    # Always a download: an HTML or SVG attachment must never render on the UI's origin.
    name = (wanted.filename or f"part-{wanted.part_id}").replace('"', "").replace("\\", "")
    ascii_name = name.encode("ascii", "replace").decode("ascii").replace("?", "_")
    response.headers["Content-Disposition"] = (
        f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}"  # RFC 6266
    )
    return response


async def preview(request: web.Request) -> web.Response:
    """``GET /api/v1/message/{ID}/preview?remote=0|1``: the sandboxed preview document."""
    found = _message(request)
    parsed = found.parsed
    by_cid = {p.content_id: p for p in parsed.inline() + parsed.attachments() if p.content_id}

    def cid(content_id: str) -> str | None:
        target = by_cid.get(content_id.strip("<>"))
        if target is None or not target.content_type.startswith("image/"):
            return None
        return data_url(target.content_type, target.payload())

    document, has_remote = preview_document(
        parsed.html, remote=request.query.get("remote") == "1", cid=cid
    )
    return web.json_response({"HTML": document, "HasRemote": has_remote})


async def session(request: web.Request) -> web.Response:
    """``GET /api/v1/message/{ID}/session``: envelope, transcript, TLS and AUTH facts."""
    return web.json_response(_message(request).parsed.session_json())


async def tree(request: web.Request) -> web.Response:
    """``GET /api/v1/message/{ID}/tree``: the MIME tree."""
    return web.json_response(_message(request).parsed.tree.tree_json())


async def release(request: web.Request) -> web.Response:
    """``POST /api/v1/message/{ID}/release`` with ``{"To": [...]}``."""
    found = _message(request)
    target = _ctx(request).release_target
    if target is None:
        raise web.HTTPBadRequest(text="release is not configured (start with --release-to)\n")
    body = await _json_body(request)
    to = body.get("To") if isinstance(body, dict) else None
    if not to or not isinstance(to, list) or not all(isinstance(a, str) and a for a in to):
        raise web.HTTPBadRequest(text="To is a non-empty list of addresses\n")
    try:
        result = await target.release(found.captured.data, found.captured.mail_from, to)
    except (SMTPError, OSError, ValueError) as exc:
        raise web.HTTPBadGateway(text=f"release to {target.address} failed: {exc}\n") from None
    return web.json_response(
        {
            "Accepted": list(result.accepted),
            "Refused": {a: str(r) for a, r in result.refused.items()},
            "Server": target.address,
        }
    )


async def info(request: web.Request) -> web.Response:
    """``GET /api/v1/info``."""
    ctx = _ctx(request)
    total, unread = ctx.store.counts()
    return web.json_response(
        {
            "Version": f"postwire {__version__}",
            "Messages": total,
            "Unread": unread,
            "SMTP": ctx.smtp_address,
            "Release": ctx.release_target.address if ctx.release_target else "",
        }
    )


async def events(request: web.Request) -> web.StreamResponse:
    """``GET /api/v1/events``: the server-sent event stream."""
    hub = _ctx(request).hub
    if hub is None:
        raise web.HTTPServiceUnavailable()
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    await response.write(b"retry: 1000\n\n")
    async for data in hub.stream():
        await response.write(data)
    return response


async def get_faults(request: web.Request) -> web.Response:
    """``GET /api/v1/faults``."""
    return web.json_response(_ctx(request).get_faults().to_json())


async def put_faults(request: web.Request) -> web.Response:
    """``PUT /api/v1/faults``: replace the script (missing keys: no fault)."""
    try:
        script = FaultScript.from_json(await _json_body(request))
    except ValueError as exc:
        raise web.HTTPBadRequest(text=f"{exc}\n") from None
    _ctx(request).set_faults(script)
    return web.json_response(script.to_json())


async def delete_faults(request: web.Request) -> web.Response:
    """``DELETE /api/v1/faults``: no more faults."""
    _ctx(request).set_faults(FaultScript())
    return web.json_response(FaultScript().to_json())


def add_routes(app: web.Application) -> None:
    """Add every ``/api/v1`` route to ``app``."""
    r = app.router
    r.add_get("/api/v1/messages", list_messages)
    r.add_delete("/api/v1/messages", delete_messages)
    r.add_put("/api/v1/messages", set_read)
    r.add_get("/api/v1/search", search)
    r.add_delete("/api/v1/search", delete_search)
    r.add_get("/api/v1/message/{id}", message)
    r.add_get("/api/v1/message/{id}/raw", raw)
    r.add_get("/api/v1/message/{id}/headers", headers)
    r.add_get("/api/v1/message/{id}/part/{part}", part)
    r.add_get("/api/v1/message/{id}/preview", preview)
    r.add_get("/api/v1/message/{id}/session", session)
    r.add_get("/api/v1/message/{id}/tree", tree)
    r.add_post("/api/v1/message/{id}/release", release)
    r.add_get("/api/v1/info", info)
    r.add_get("/api/v1/events", events)
    r.add_get("/api/v1/faults", get_faults)
    r.add_put("/api/v1/faults", put_faults)
    r.add_delete("/api/v1/faults", delete_faults)
