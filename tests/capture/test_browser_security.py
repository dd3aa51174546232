"""Security of the catcher UI in a real browser.

A hostile message must run no script and fetch nothing remote when viewed. Two independent
witnesses: a local HTTP server that counts every request it gets, and the browser's own log
(the console of the sandboxed preview reaches it: ``--disable-features=IsolateSandboxedIframes``
in ``conftest.py``). A control test shows that both witnesses do see a script that runs and an
image that loads, so their silence means something. Also: the UI cannot be framed by another
origin.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from catcher_support import WAIT, wait_until
from conftest import CountingServer
from postwire import Client
from postwire.capture import CaptureServer

MARK = "PWNED"  # every hostile script logs this; the page must never see it
SETTLE = 1.5  # seconds given to a page to make requests before they are counted


@pytest.fixture(scope="module")
def catcher() -> Iterator[CaptureServer]:
    with CaptureServer(tls="none", web=("127.0.0.1", 0)) as server:
        yield server


def hostile_html(base: str, *, refresh: bool = True) -> str:
    """Scripts, handlers, remote loads of every kind; ``refresh``: a meta refresh too (which
    no content security policy stops: only the sanitiser does)."""
    head = f'<meta http-equiv="refresh" content="0;url={base}/refresh">' if refresh else ""
    return f"""<html><head>{head}
<link rel="stylesheet" href="{base}/link.css"><link rel="preconnect" href="{base}/">
<link rel="prefetch" href="{base}/prefetch"><base href="{base}/base/">
<script src="{base}/script.js"></script>
<style>@import url({base}/import.css); body {{ background: url({base}/css-bg.png) }}
@font-face {{ font-family: x; src: url({base}/font.woff) }}</style>
</head><body onload="console.log('{MARK}-onload')">
<script>console.log('{MARK}-inline'); fetch('{base}/fetch'); window.top.pwned = 1;</script>
<img src="{base}/remote.png" onerror="console.log('{MARK}-onerror')">
<img src="x" onerror="console.log('{MARK}-onerror2')">
<img srcset="{base}/srcset.png 1x">
<a href="javascript:console.log('{MARK}-js')" id="jslink">click</a>
<a href="{base}/ping-target" ping="{base}/ping">pinged link</a>
<form action="{base}/form" method="post"><input name="a" value="b" autofocus
 onfocus="console.log('{MARK}-focus')"><button>go</button></form>
<iframe src="{base}/iframe"></iframe><object data="{base}/object"></object>
<embed src="{base}/embed"><video poster="{base}/poster.png" src="{base}/video.mp4"></video>
<audio src="{base}/audio.mp3" autoplay></audio>
<svg><script>console.log('{MARK}-svg')</script><image href="{base}/svg.png"/></svg>
<div style="background-image:url('{base}/inline-bg.png')">styled</div>
<table background="{base}/table-bg.png"><tr><td>cell</td></tr></table>
<details open ontoggle="console.log('{MARK}-toggle')"><summary>s</summary>d</details>
<p id="marker">Hostile body marker</p>
</body></html>"""


def hostile_message(base: str) -> bytes:
    html = hostile_html(base)
    text = (
        f"From: \"<script>console.log('{MARK}-from')</script>\" <evil@example.org>\r\n"
        f"To: \"<img src=x onerror=console.log('{MARK}-to')>\" <bob@example.org>\r\n"
        f"Subject: <img src={base}/subject.png onerror=console.log('{MARK}-subject')>"
        f"<script>console.log('{MARK}-subject2')</script>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/html; charset=utf-8\r\n"
        "\r\n" + html.replace("\n", "\r\n") + "\r\n"
    )
    return text.encode()


def log_messages(driver: Any) -> list[str]:
    return [str(entry["message"]) for entry in driver.get_log("browser")]


def test_the_witnesses_see_a_script_that_runs_and_an_image_that_loads(
    browser: Any, counting_server: CountingServer
) -> None:
    # A sandboxed frame WITH allow-scripts, on a page of the counting server.
    base = counting_server.base
    counting_server.pages["/control"] = (
        '<iframe sandbox="allow-scripts" srcdoc="<script>console.log(&quot;CONTROL-MARK&quot;)'
        f'</script><img src=&quot;{base}/control.png&quot;>"></iframe>'
    ).encode()
    log_messages(browser)  # empty the log
    browser.get(f"{base}/control")
    wait_until(lambda: "/control.png" in counting_server.requests, what="control image")
    seen = wait_until(
        lambda: [m for m in log_messages(browser) if "CONTROL-MARK" in m], what="control log"
    )
    assert seen


def test_hostile_message_runs_no_script_and_fetches_nothing(
    catcher: CaptureServer, browser: Any, counting_server: CountingServer
) -> None:
    base = counting_server.base
    catcher.store.delete()
    with Client(catcher.host, catcher.port, tls="none", timeout=WAIT) as client:
        client.send(
            hostile_message(base), sender="evil@example.org", recipients=["bob@example.org"]
        )
    log_messages(browser)
    browser.get(catcher.web_url)
    wait_until(lambda: browser.execute_script("return document.body.dataset.ready"))
    wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, "#list tbody tr"))
    # The subject and addresses are shown as text, markup and all.
    row = browser.find_element(By.CSS_SELECTOR, "#list tbody tr")
    assert "<img src=" in row.text and "<script>" not in row.get_attribute("innerHTML")
    row.click()
    wait_until(lambda: browser.execute_script("return document.body.dataset.open"))
    frame = browser.find_element(By.ID, "preview")
    browser.switch_to.frame(frame)
    try:
        wait_until(lambda: browser.find_elements(By.ID, "marker"), what="hostile body shown")
        browser.find_element(By.ID, "jslink").click()  # a javascript: link does nothing
    finally:
        browser.switch_to.default_content()
    for tab in browser.find_elements(By.CSS_SELECTOR, "#tabs button"):
        tab.click()  # every view of the message: text, headers, raw source...
    time.sleep(SETTLE)
    assert counting_server.requests == []
    logs = log_messages(browser)
    assert not [m for m in logs if MARK in m and "console-api" in m.lower()], logs
    assert not [m for m in logs if MARK in m and "Refused" not in m and "violat" not in m], logs
    assert browser.execute_script(
        "return window.pwned === undefined && !document.title.includes('PWN')"
    )
    assert browser.current_url.startswith(catcher.web_url)  # no refresh, no navigation

    # Remote content is fetched only when the user asks, and still no script runs.
    browser.find_element(By.CSS_SELECTOR, "#tabs button[data-tab=html]").click()
    browser.find_element(By.ID, "remote-button").click()
    wait_until(lambda: "/remote.png" in counting_server.requests, what="remote image on request")
    time.sleep(SETTLE)
    fetched = set(counting_server.requests)
    assert fetched <= {
        "/remote.png",
        "/css-bg.png",
        "/inline-bg.png",
        "/table-bg.png",
        "/font.woff",
        "/import.css",
    }, fetched
    logs = log_messages(browser)
    assert not [m for m in logs if MARK in m and "console-api" in m.lower()], logs


def test_ui_cannot_be_framed_by_another_origin(
    catcher: CaptureServer, browser: Any, counting_server: CountingServer
) -> None:
    counting_server.pages["/framer"] = (
        f'<iframe id="victim" src="{catcher.web_url}" width="800" height="600"></iframe>'
    ).encode()
    log_messages(browser)
    browser.get(f"{counting_server.base}/framer")
    WebDriverWait(browser, WAIT).until(lambda d: d.find_elements(By.ID, "victim"))
    blocked = wait_until(
        lambda: [
            m for m in log_messages(browser) if "frame-ancestors" in m or "X-Frame-Options" in m
        ],
        what="the browser refusing to frame the UI",
    )
    assert blocked
    browser.switch_to.frame(browser.find_element(By.ID, "victim"))
    try:
        assert browser.find_elements(By.ID, "list") == []  # the UI did not render in the frame
    finally:
        browser.switch_to.default_content()


def test_policy_and_sandbox_hold_without_the_sanitiser(
    catcher: CaptureServer, browser: Any, counting_server: CountingServer
) -> None:
    """The preview's second and third layers alone: the raw hostile HTML (less the meta
    refresh, which only the sanitiser stops) behind the preview's policy, in the UI's frame."""
    from postwire.capture.sanitize import preview_document

    base = counting_server.base
    document, _ = preview_document("", remote=False)
    raw = document.replace("<body></body>", f"<body>{hostile_html(base, refresh=False)}</body>")
    browser.get(catcher.web_url)
    wait_until(lambda: browser.execute_script("return document.body.dataset.ready"))
    log_messages(browser)
    browser.execute_script(
        "document.getElementById('detail').hidden = false;"
        "document.getElementById('preview').srcdoc = arguments[0];",
        raw,
    )
    browser.switch_to.frame(browser.find_element(By.ID, "preview"))
    try:
        wait_until(lambda: browser.find_elements(By.ID, "marker"), what="raw body shown")
    finally:
        browser.switch_to.default_content()
    time.sleep(SETTLE)
    # Only <link rel=preconnect> may open a connection, without a request (servers.md).
    assert counting_server.requests == []
    logs = log_messages(browser)
    assert not [m for m in logs if MARK in m and "console-api" in m.lower()], logs
    assert [m for m in logs if "Content Security Policy" in m], logs  # the policy did act
