"""The catcher's web UI in a real browser: headless Chromium driven by Selenium.

Mail is sent over SMTP to a real capture server on 127.0.0.1; the page is loaded from its web
server and checked as a person would use it: live list, search, paging, every view of a
message, attachment download, delete, release.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from catcher_support import BINARY, WAIT, rich_message, wait_until
from postwire import Client
from postwire.capture import CaptureServer

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "catcher.png"


@pytest.fixture(scope="module")
def catcher() -> Iterator[CaptureServer]:
    """One catcher (STARTTLS, AUTH, web UI) for the module's tests."""
    with CaptureServer(
        tls="starttls", auth={"ada": "pw"}, auth_require_tls=True, web=("127.0.0.1", 0)
    ) as server:
        yield server


@pytest.fixture
def ui(catcher: CaptureServer, browser: Any) -> Any:
    """The UI loaded on an empty catcher."""
    catcher.store.delete()
    browser.get(catcher.web_url)
    WebDriverWait(browser, WAIT).until(
        lambda d: d.execute_script("return document.body.dataset.ready")
    )
    return browser


def send(catcher: CaptureServer, *messages: Any, rcpt: str = "bob@example.org") -> None:
    with Client(
        catcher.host,
        catcher.port,
        tls="starttls",
        ssl_context=catcher.client_ssl_context(),
        username="ada",
        password="pw",
        timeout=WAIT,
    ) as client:
        for message in messages:
            client.send(message, sender="ada@example.org", recipients=[rcpt, "carol@example.org"])


def rows(driver: Any) -> list[str]:
    # Read in one script: the list may be re-rendered between two WebDriver calls.
    script = "return [...document.querySelectorAll('#list tbody tr')].map(r => r.innerText)"
    return list(driver.execute_script(script))


def click_row(driver: Any, containing: str = "") -> None:
    """Click the first row holding ``containing``; retried while the list is re-rendered."""

    def attempt() -> bool:
        try:
            xpath = f"//table[@id='list']/tbody/tr[contains(., '{containing}')]"
            driver.find_element(By.XPATH, xpath).click()
        except (StaleElementReferenceException, NoSuchElementException):
            return False
        return True

    wait_until(attempt, what=f"click on a row with {containing!r}")


def text_of(driver: Any, css: str) -> str:
    return str(driver.execute_script("return document.querySelector(arguments[0]).innerText", css))


def simple(subject: str) -> bytes:
    return (
        f"From: ada@example.org\r\nTo: bob@example.org\r\nSubject: {subject}\r\n\r\n"
        f"body of {subject}\r\n"
    ).encode()


def test_new_mail_appears_live_then_search_and_paging(catcher: CaptureServer, ui: Any) -> None:
    assert rows(ui) == []
    send(catcher, simple("first live message"))
    wait_until(lambda: any("first live message" in r for r in rows(ui)), what="live row")
    assert "1 message, 1 unread" in text_of(ui, "#counts")
    # 119 more over one connection; the list follows without a reload.
    send(catcher, *(simple(f"number {i:03d}") for i in range(119)))
    wait_until(lambda: text_of(ui, "#pager-info") == "1\u201350 of 120", what="pager")
    assert "number 118" in rows(ui)[0]
    ui.find_element(By.ID, "next").click()
    wait_until(lambda: text_of(ui, "#pager-info") == "51\u2013100 of 120", what="page 2")
    assert "number 068" in rows(ui)[0]
    ui.find_element(By.ID, "next").click()
    wait_until(lambda: text_of(ui, "#pager-info") == "101\u2013120 of 120", what="page 3")
    assert "first live message" in rows(ui)[-1]
    # Search from the box: a word, then a filter.
    box = ui.find_element(By.ID, "search")
    box.send_keys('"number 07"')  # a phrase: 070 to 079
    wait_until(lambda: text_of(ui, "#pager-info") == "1\u201310 of 10", what="search")
    assert all("number 07" in r for r in rows(ui))
    box.clear()
    box.send_keys("subject:live")
    wait_until(lambda: len(rows(ui)) == 1 and "first live" in rows(ui)[0], what="filter")
    # A message matching the search arrives: the filtered list updates live.
    send(catcher, simple("second live message"))
    wait_until(lambda: len(rows(ui)) == 2, what="live row in a search")


def test_message_views_and_attachment_download(
    catcher: CaptureServer, ui: Any, browser_downloads: Path
) -> None:
    message = rich_message()
    send(catcher, message)
    wait_until(lambda: rows(ui), what="row")
    click_row(ui)
    wait_until(lambda: ui.execute_script("return document.body.dataset.open"), what="open")
    assert text_of(ui, "#subject") == "Quarterly report"
    addresses = text_of(ui, "#addresses")
    assert "Ada Lovelace <ada@example.org>" in addresses
    assert "carol@example.org" in addresses
    # The HTML part in its sandboxed frame, the inline image shown from the message itself.
    frame = ui.find_element(By.ID, "preview")
    assert frame.get_attribute("sandbox") == ""
    ui.switch_to.frame(frame)
    try:
        wait_until(lambda: "HTML body with" in ui.find_element(By.TAG_NAME, "body").text)
        wait_until(
            lambda: ui.execute_script("return document.getElementById('logo').naturalWidth"),
            what="inline image",
        )
    finally:
        ui.switch_to.default_content()
    tabs = {
        b.get_attribute("data-tab"): b for b in ui.find_elements(By.CSS_SELECTOR, "#tabs button")
    }
    tabs["text"].click()
    assert "Your code is 482913." in text_of(ui, "#text")
    tabs["headers"].click()
    assert "X-Custom\tcustom value" in text_of(ui, "#headers")
    tabs["raw"].click()
    stored = catcher.messages[-1].data.decode()
    assert text_of(ui, "#raw").split() == stored.split()
    tabs["mime"].click()
    tree = text_of(ui, "#mime")
    for line in ("multipart/mixed", "multipart/alternative", "multipart/related", "image/png"):
        assert line in tree
    tabs["session"].click()
    session = text_of(ui, "#session")
    assert "TLSv1.3" in session or "TLSv1.2" in session
    assert "AUTH user\nada" in session
    assert "bob@example.org, carol@example.org" in session
    transcript = text_of(ui, "#transcript")
    assert "C: STARTTLS" in transcript and "C: AUTH CRAM-MD5\nS: 334 " in transcript
    assert "C: <redacted>" in transcript  # the answer to the challenge is never kept
    assert "pw" not in transcript.split()
    tabs["attachments"].click()
    link = ui.find_element(By.LINK_TEXT, "data.bin")
    for old in browser_downloads.iterdir():
        old.unlink()
    link.click()
    target = browser_downloads / "data.bin"
    wait_until(lambda: target.exists() and target.read_bytes() == BINARY, what="download")


def test_delete_one_and_all(catcher: CaptureServer, ui: Any) -> None:
    send(catcher, simple("keep me"), simple("delete me"))
    wait_until(lambda: len(rows(ui)) == 2)
    click_row(ui, "delete me")
    wait_until(lambda: text_of(ui, "#subject") == "delete me")
    ui.find_element(By.ID, "delete-button").click()
    wait_until(lambda: len(rows(ui)) == 1 and "keep me" in rows(ui)[0])
    assert [m.email()["Subject"] for m in catcher.messages] == ["keep me"]
    ui.find_element(By.ID, "delete-all").click()
    ui.switch_to.alert.accept()
    wait_until(lambda: not rows(ui) and ui.find_element(By.ID, "empty").is_displayed())
    assert catcher.messages == []


def test_release_to_a_real_server(browser: Any) -> None:
    with (
        CaptureServer(tls="none") as downstream,
        CaptureServer(
            tls="none",
            web=("127.0.0.1", 0),
            release_to=f"smtp://{downstream.host}:{downstream.port}",
        ) as catcher,
    ):
        with Client(catcher.host, catcher.port, tls="none", timeout=WAIT) as client:
            client.send(simple("to release"), sender="ada@example.org", recipients=["x@y.org"])
        browser.get(catcher.web_url)
        click_row(browser, "to release")
        form_input = browser.find_element(By.ID, "release-to")
        wait_until(lambda: form_input.is_displayed(), what="release form")
        form_input.send_keys("dave@example.org, erin@example.org")
        browser.find_element(By.ID, "release-button").click()
        wait_until(lambda: "released to" in text_of(browser, "#release-result"))
        (released,) = downstream.wait_for(1)
        # Byte for byte, from the captured sender, to the recipients chosen in the page.
        assert released.rcpt_tos == ["dave@example.org", "erin@example.org"]
        assert released.data == catcher.messages[0].data
        assert released.mail_from == "ada@example.org"


WELCOME_HTML = """\
<div style="font-family:Georgia,serif;max-width:520px;margin:auto;border:1px solid #ddd;
 border-radius:8px;padding:24px">
<h2 style="color:#213547;margin-top:0">Welcome to Analytical Engines, Charles!</h2>
<p>Your account is ready. Confirm your address to start computing Bernoulli numbers.</p>
<p><a href="https://engines.example/confirm?token=5Zr8kQ" style="background:#2f7d4f;color:#fff;
 padding:10px 18px;border-radius:4px;text-decoration:none">Confirm my address</a></p>
<table style="border-collapse:collapse;margin-top:16px">
<tr><td style="padding:4px 12px 4px 0;color:#777">Plan</td><td>Difference Engine No. 2</td></tr>
<tr><td style="padding:4px 12px 4px 0;color:#777">Code</td><td><b>482913</b></td></tr>
</table>
<p style="color:#777;font-size:12px">Remote image, blocked until asked:
<img src="https://tracker.example/pixel.gif" width="1" height="1"></p>
</div>"""


def test_ui_screenshot(catcher: CaptureServer, ui: Any) -> None:
    """Real-looking mail in the UI; with POSTWIRE_UPDATE_SCREENSHOT=1 it becomes the README's
    picture (docs/catcher.png)."""
    from email.message import EmailMessage

    subjects = [
        "Your invoice #1042",
        "Password reset requested",
        "Weekly digest: 12 new engines",
        "Re: punched cards for the loom",
        "Build #881 failed on main",
    ]
    send(catcher, *(simple(s) for s in subjects))
    send(catcher, rich_message("Quarterly report"))
    welcome = EmailMessage()
    welcome["From"] = "Analytical Engines <hello@engines.example>"
    welcome["To"] = "Charles Babbage <charles@example.org>"
    welcome["Subject"] = "Welcome aboard, Charles"
    welcome.set_content("Confirm: https://engines.example/confirm?token=5Zr8kQ\nCode: 482913\n")
    welcome.add_alternative(WELCOME_HTML, subtype="html")
    send(catcher, welcome, rcpt="charles@example.org")
    wait_until(lambda: len(rows(ui)) == 7, what="seven rows")
    click_row(ui, "Welcome aboard")
    wait_until(lambda: text_of(ui, "#subject") == "Welcome aboard, Charles")
    wait_until(lambda: ui.find_element(By.ID, "remote-note").is_displayed(), what="remote note")
    if os.environ.get("POSTWIRE_UPDATE_SCREENSHOT"):
        SCREENSHOT.parent.mkdir(exist_ok=True)
        assert ui.save_screenshot(str(SCREENSHOT))
    assert ui.get_screenshot_as_png().startswith(b"\x89PNG")


def test_screenshot_file_is_a_png() -> None:
    # The README shows docs/catcher.png, taken by test_ui_screenshot.
    data = SCREENSHOT.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000
