"""The preview's sanitiser and document, on strings (the browser tests check the result)."""

from __future__ import annotations

import pytest

from postwire.capture.sanitize import preview_document, sanitize_html


@pytest.mark.parametrize(
    ("source", "forbidden"),
    [
        ("<script>alert(1)</script>x", "alert"),
        ('<img src="x" onerror="alert(1)">', "onerror"),
        ('<a href="javascript:alert(1)">x</a>', "javascript"),
        ('<a href="java\tscript:alert(1)">x</a>', "script:"),
        ('<a href="&#106;avascript:alert(1)">x</a>', "alert"),
        ('<meta http-equiv="refresh" content="0;url=http://x/">', "refresh"),
        ('<link rel="preconnect" href="http://x/">', "preconnect"),
        ('<base href="http://x/">', "base"),
        ('<form action="http://x/"><input name="a"></form>', "action"),
        ('<iframe src="http://x/"></iframe>after', "iframe"),
        ("<svg><script>alert(1)</script></svg>", "alert"),
        ('<object data="http://x/"></object>', "object"),
        ('<img srcset="http://x/a.png 1x">', "srcset"),
        ('<a href="http://x/" ping="http://x/p">x</a>', "ping"),
        ('<embed src="http://x/">visible', "embed"),
        ('<a href="data:text/html,<script>alert(1)</script>">x</a>', "data:"),
    ],
)
def test_dangerous_markup_is_removed(source: str, forbidden: str) -> None:
    cleaned, _ = sanitize_html(source)
    assert forbidden not in cleaned.lower()


def test_content_after_a_void_element_is_kept() -> None:
    cleaned, _ = sanitize_html('<embed src="x"><p>still here</p><input><b>and here</b>')
    assert cleaned == "<p>still here</p><b>and here</b>"


def test_safe_markup_and_links_are_kept() -> None:
    cleaned, remote = sanitize_html(
        '<p style="color:red">Hi <a href="https://example.org/?a=1&amp;b=2">link</a></p>'
        '<table><tr><td bgcolor="#eee">cell</td></tr></table>'
    )
    assert '<p style="color:red">' in cleaned
    assert 'href="https://example.org/?a=1&amp;b=2" target="_blank" rel="noopener noreferrer"' in (
        cleaned
    )
    assert '<td bgcolor="#eee">cell</td>' in cleaned
    assert remote is False


@pytest.mark.parametrize(
    "source",
    [
        '<img src="https://x.example/p.gif">',
        '<div style="background:url(https://x.example/b.png)">',
        "<style>@import url(//x.example/s.css);</style>",
        '<table background="http://x.example/t.png">',
    ],
)
def test_remote_content_is_detected(source: str) -> None:
    assert sanitize_html(source)[1] is True


def test_cid_images_are_inlined() -> None:
    cleaned, _ = sanitize_html(
        '<img src="cid:logo@x"><img src="cid:unknown@x">',
        cid=lambda c: "data:image/png;base64,AAAA" if c == "logo@x" else None,
    )
    assert cleaned == '<img src="data:image/png;base64,AAAA"><img>'


def test_document_policy_blocks_remote_content_until_asked() -> None:
    blocked, has_remote = preview_document('<img src="https://x.example/p.gif">', remote=False)
    assert has_remote
    assert "img-src data:;" in blocked and "default-src 'none'" in blocked
    allowed, _ = preview_document('<img src="https://x.example/p.gif">', remote=True)
    assert "img-src data: http: https:;" in allowed
    for document in (blocked, allowed):
        assert "script-src" not in document  # default-src 'none' covers scripts, always
        # The policy comes before any content of the message (a meta policy covers what follows).
        assert document.index("Content-Security-Policy") < document.index("<body>")
