"""Helpers of the catcher tests: messages to send and bounded waits."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any, TypeVar

T = TypeVar("T")
WAIT = 15.0  # seconds any wait in these tests may last


def wait_until(check: Callable[[], T | None], timeout: float = WAIT, what: str = "") -> T:
    """Call ``check`` until it returns something truthy; AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {what or check}")
        time.sleep(0.05)


def get_json(url: str, **headers: str) -> Any:
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=WAIT) as response:
        return json.load(response)


def call(url: str, method: str, body: object | None = None, **headers: str) -> tuple[int, bytes]:
    """An HTTP request; returns (status, body) whatever the status."""
    data = None if body is None else json.dumps(body).encode()
    if data is not None:
        headers.setdefault("Content-Type", "application/json")
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=WAIT) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


#: Every byte value, so a download that changed any byte would show.
BINARY = bytes(range(256)) * 40
#: A 1x1 PNG for the inline image.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201e2bd0b"
    "ea0000000049454e44ae426082"
)


def rich_message(subject: str = "Quarterly report") -> EmailMessage:
    """Text, HTML with an inline image by Content-ID, and a binary attachment."""
    msg = EmailMessage()
    msg["From"] = "Ada Lovelace <ada@example.org>"
    msg["To"] = "Bob <bob@example.org>"
    msg["Cc"] = "carol@example.org"
    msg["Subject"] = subject
    msg["Message-ID"] = "<report-1@example.org>"
    msg["X-Custom"] = "custom value"
    msg.set_content("Plain text body.\nYour code is 482913.\n")
    msg.add_alternative(
        '<p>HTML <b>body</b> with <img id="logo" src="cid:logo@example.org" alt="logo"></p>',
        subtype="html",
    )
    html_part = msg.get_payload()[1]
    html_part.add_related(PNG, "image", "png", cid="<logo@example.org>", filename="logo.png")
    msg.add_attachment(BINARY, maintype="application", subtype="octet-stream", filename="data.bin")
    return msg
