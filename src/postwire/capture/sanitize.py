"""The HTML part of a message made safe to preview in the web UI.

Defence in depth, three layers, because a captured message is hostile input:

1. this sanitiser keeps an allow-list of tags and attributes (no script, no event handler, no
   ``javascript:`` URL, no form, no ``<meta http-equiv=refresh>``, no ``<link>``: Chromium
   opens connections for ``<link rel=preconnect>`` whatever the content security policy says,
   and a refresh navigates without any script);
2. the document it builds starts with a Content-Security-Policy (``default-src 'none'``, so no
   script, no connection and, until the user asks, no remote image, style or font: CSP Level 3
   §6.1 directives; a policy given by ``<meta>`` applies to what follows it, HTML §4.2.5.3);
3. the web UI shows it in an ``<iframe sandbox srcdoc>`` without ``allow-scripts``,
   ``allow-forms`` or ``allow-same-origin`` (HTML §4.8.5: a unique origin, no script).

Images attached by Content-ID (``cid:``, RFC 2392) are inlined as ``data:`` URLs, so they show
without a request.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Callable
from html.parser import HTMLParser

__all__ = ["has_remote_content", "preview_document", "sanitize_html"]

_ALLOWED_TAGS = frozenset(
    [
        "a",
        "abbr",
        "address",
        "article",
        "aside",
        "b",
        "bdi",
        "bdo",
        "big",
        "blockquote",
        "br",
        "caption",
        "center",
        "cite",
        "code",
        "col",
        "colgroup",
        "dd",
        "del",
        "details",
        "dfn",
        "div",
        "dl",
        "dt",
        "em",
        "figcaption",
        "figure",
        "font",
        "footer",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hr",
        "i",
        "img",
        "ins",
        "kbd",
        "label",
        "li",
        "main",
        "mark",
        "nav",
        "ol",
        "p",
        "pre",
        "q",
        "s",
        "samp",
        "section",
        "small",
        "span",
        "strike",
        "strong",
        "style",
        "sub",
        "summary",
        "sup",
        "table",
        "tbody",
        "td",
        "tfoot",
        "th",
        "thead",
        "tr",
        "tt",
        "u",
        "ul",
        "var",
        "wbr",
    ]
)
# Dropped together with everything inside them.
_DROP_WITH_CONTENT = frozenset(
    [
        "script",
        "noscript",
        "iframe",
        "frame",
        "frameset",
        "object",
        "embed",
        "applet",
        "svg",
        "math",
        "template",
        "title",
        "audio",
        "video",
        "canvas",
        "select",
        "textarea",
        "button",
    ]
)
# HTML's void elements (HTML §13.1.2): they have no end tag, so none is waited for.
_VOID = frozenset(
    {"area", "base", "br", "col", "embed", "frame", "hr", "img", "input", "keygen", "link"}
    | {"meta", "param", "source", "track", "wbr"}
)
_ALLOWED_ATTRS = frozenset(
    [
        "align",
        "alt",
        "bgcolor",
        "border",
        "cellpadding",
        "cellspacing",
        "class",
        "color",
        "colspan",
        "dir",
        "face",
        "height",
        "href",
        "hspace",
        "id",
        "lang",
        "rowspan",
        "size",
        "span",
        "src",
        "start",
        "style",
        "summary",
        "title",
        "type",
        "valign",
        "vspace",
        "width",
        "background",
        "abbr",
        "scope",
        "headers",
        "reversed",
        "open",
    ]
)
_URL_ATTRS = frozenset(("href", "src", "background"))
_SAFE_LINK = re.compile(r"^(?:https?:|mailto:|tel:|#)", re.IGNORECASE)
_REMOTE = re.compile(r"^(?:https?:)?//", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x20\x7f]+")
_CSS_REMOTE = re.compile(r"url\(\s*['\"]?\s*(?:https?:)?//|@import", re.IGNORECASE)


def _clean_url(value: str) -> str:
    # Browsers ignore control characters and spaces inside a scheme ("java\tscript:").
    return _CONTROL.sub("", html.unescape(value))


class _Sanitizer(HTMLParser):
    def __init__(self, cid: Callable[[str], str | None]) -> None:
        super().__init__(convert_charrefs=False)
        self.out: list[str] = []
        self._drop_depth = 0
        self._drop_tag: list[str] = []
        self._cid = cid
        self.remote = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._start(tag, attrs, closed=False)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._start(tag, attrs, closed=True)

    def _start(self, tag: str, attrs: list[tuple[str, str | None]], *, closed: bool) -> None:
        if self._drop_depth:
            if tag == self._drop_tag[-1] and not closed and tag not in _VOID:
                self._drop_depth += 1
            return
        if tag in _DROP_WITH_CONTENT:
            if not closed and tag not in _VOID:
                self._drop_depth = 1
                self._drop_tag.append(tag)
            return
        if tag not in _ALLOWED_TAGS:
            return  # the tag goes, its content stays (html, body, form, input, link, meta...)
        kept: list[str] = []
        for name, value in attrs:
            value = value or ""
            if name not in _ALLOWED_ATTRS:
                continue  # on* handlers, srcset, ping, formaction, http-equiv...
            if name in _URL_ATTRS:
                url = _clean_url(value)
                if name == "src" and url.lower().startswith("cid:"):
                    inlined = self._cid(url[4:])
                    if inlined is None:
                        continue
                    value = inlined
                elif name == "src" and url.lower().startswith("data:image/"):
                    pass
                elif _REMOTE.match(url) and name in ("src", "background"):
                    self.remote = True
                elif name == "href" and _SAFE_LINK.match(url):
                    pass
                else:
                    continue  # javascript:, vbscript:, data: links, relative paths...
            if name == "style" and _CSS_REMOTE.search(value):
                self.remote = True
            kept.append(f' {name}="{html.escape(value, quote=True)}"')
        if tag == "a":
            kept.append(' target="_blank" rel="noopener noreferrer"')
        self.out.append(f"<{tag}{''.join(kept)}>")

    def handle_endtag(self, tag: str) -> None:
        if self._drop_depth:
            if tag == self._drop_tag[-1]:
                self._drop_depth -= 1
                if not self._drop_depth:
                    self._drop_tag.pop()
            return
        if tag in _ALLOWED_TAGS and tag not in _VOID:
            self.out.append(f"</{tag}>")

    def handle_data(self, data: str) -> None:
        if self._drop_depth:
            return
        if self.out and self.out[-1].startswith("<style") and _CSS_REMOTE.search(data):
            self.remote = True
        # Inside <style> the text is CSS; elsewhere escape what the parser handed back raw.
        last_open = self.out[-1] if self.out else ""
        self.out.append(data if last_open.startswith("<style") else html.escape(data, False))

    def handle_entityref(self, name: str) -> None:
        if not self._drop_depth:
            self.out.append(f"&{name};")

    def handle_charref(self, name: str) -> None:
        if not self._drop_depth:
            self.out.append(f"&#{name};")

    # Comments, declarations (<!doctype>), processing instructions: dropped (conditional
    # comments can hide markup for some clients).


def sanitize_html(source: str, cid: Callable[[str], str | None] | None = None) -> tuple[str, bool]:
    """``source`` with only safe markup left, and whether it refers to remote content.

    ``cid`` maps a Content-ID to a ``data:`` URL (or None to drop the image).
    """
    parser = _Sanitizer(cid or (lambda _: None))
    parser.feed(source)
    parser.close()
    # Close <style> explicitly if the message left it open, so our own markup after it is HTML.
    return "".join(parser.out), parser.remote


def has_remote_content(source: str) -> bool:
    """Whether the HTML refers to remote images, styles or fonts (after sanitising)."""
    return sanitize_html(source)[1]


def data_url(content_type: str, payload: bytes) -> str:
    """A ``data:`` URL (RFC 2397) for an inline image."""
    return f"data:{content_type};base64,{base64.b64encode(payload).decode('ascii')}"


def preview_document(
    source: str, *, remote: bool, cid: Callable[[str], str | None] | None = None
) -> tuple[str, bool]:
    """The document for the preview ``srcdoc``, and whether the message has remote content.

    Without ``remote``, the policy allows only inline styles and ``data:`` images and fonts;
    with it, http(s) images, styles and fonts too. Never scripts, connections, forms or frames.
    """
    body, has_remote = sanitize_html(source, cid)
    extra = " http: https:" if remote else ""
    policy = (
        "default-src 'none'; "
        f"style-src 'unsafe-inline'{extra}; img-src data:{extra}; font-src data:{extra}; "
        "form-action 'none'; base-uri 'none'"
    )
    document = (
        '<!DOCTYPE html><html><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{policy}">'
        '<meta http-equiv="x-dns-prefetch-control" content="off">'
        '<meta name="referrer" content="no-referrer">'
        "<style>body{font-family:sans-serif;margin:8px;overflow-wrap:anywhere}</style>"
        f"</head><body>{body}</body></html>"
    )
    return document, has_remote
