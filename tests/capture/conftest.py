"""Fixtures of the catcher tests: a headless Chromium (one per session) and helpers.

The browser is Debian's ``chromium`` driven through Debian's ``chromium-driver`` by Selenium
(``./run tests`` installs both; nothing is downloaded). It is started once, at the first test
that asks for it, and its version is printed in the test log.
"""

from __future__ import annotations

import http.server
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


@pytest.fixture(scope="session")
def browser_downloads() -> Iterator[Path]:
    """The folder the browser downloads into."""
    folder = Path(tempfile.mkdtemp(prefix="postwire-downloads-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def browser(browser_downloads: Path) -> Iterator[Any]:
    """Headless Chromium under Selenium, with the browser log enabled."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="postwire-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        # The console of a sandboxed iframe reaches the browser log only without this feature.
        "--disable-features=IsolateSandboxedIframes",
        f"--user-data-dir={profile}",
        "--window-size=1400,900",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    options.page_load_strategy = "eager"
    options.add_experimental_option(
        "prefs",
        {
            "download.default_directory": str(browser_downloads),
            "download.prompt_for_download": False,
        },
    )
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        driver.execute_cdp_cmd(
            "Browser.setDownloadBehavior",
            {"behavior": "allow", "downloadPath": str(browser_downloads)},
        )
        driver.set_page_load_timeout(20)
        driver.set_script_timeout(20)
        print(f"browser: Chromium {driver.capabilities.get('browserVersion')}")
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


class CountingServer:
    """An HTTP server on 127.0.0.1 that counts every request (path by path) and serves pages."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.pages: dict[str, bytes] = {}
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                outer.requests.append(self.path)
                body = outer.pages.get(self.path.split("?")[0])
                if body is None:
                    self.send_response(200)
                    self.send_header("Content-Type", "image/gif")
                    body = (
                        b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04"
                        b"\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D"
                        b"\x01\x00;"
                    )
                else:
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_HEAD = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def counting_server() -> Iterator[CountingServer]:
    """A fresh request-counting HTTP server for one test."""
    server = CountingServer()
    yield server
    server.close()
