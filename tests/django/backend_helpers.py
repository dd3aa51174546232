"""Helpers of the Django backend tests: credentials, settings for a server, messages."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from postwire.capture import CaptureServer

StartCapture = Callable[..., CaptureServer]

USER = "django-app"
PASSWORD = "s3cret-Pa55"


def capture_settings(server: CaptureServer, **overrides: Any) -> dict[str, Any]:
    """EMAIL_* settings for ``server`` with STARTTLS verified against its CA and AUTH."""
    values: dict[str, Any] = {
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": server.port,
        "EMAIL_HOST_USER": USER,
        "EMAIL_HOST_PASSWORD": PASSWORD,
        "EMAIL_USE_TLS": True,
        "EMAIL_USE_SSL": False,
        "POSTWIRE_EMAIL": {"cafile": str(server.ca_file)},
    }
    values.update(overrides)
    return values


def postfix_settings(postfix: Any, port: int | None = None, **overrides: Any) -> dict[str, Any]:
    """EMAIL_* settings for the test Postfix: STARTTLS verified, AUTH as alice (submission)."""
    user = "alice@test.example"
    values: dict[str, Any] = {
        "EMAIL_HOST": postfix.host,
        "EMAIL_PORT": port or postfix.submission_port,
        "EMAIL_HOST_USER": user,
        "EMAIL_HOST_PASSWORD": postfix.users[user],
        "EMAIL_USE_TLS": True,
        "EMAIL_USE_SSL": False,
        "POSTWIRE_EMAIL": {"cafile": str(postfix.ca_file)},
    }
    values.update(overrides)
    return values
