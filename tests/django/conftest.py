"""The Django project of these tests (``mailsite/``), and the servers its mail goes to.

Django is configured here, in-process, with ``settings.configure()`` from
``mailsite/settings.py``, rather than with ``DJANGO_SETTINGS_MODULE`` or pytest-django: the
environment variable would be inherited by the pytester subprocesses of
``tests/capture/test_pytest_plugin.py`` (whose own project sets it with ``setdefault``), and
pytest-django would configure Django for the whole session.  Each test changes the settings it
needs with ``override_settings``, which Django restores afterwards.  Django's test runner is
not used either, so ``EMAIL_BACKEND`` is not swapped for the in-memory one: mail really goes
over SMTP, to the capture server or the test Postfix on 127.0.0.1.
"""

from __future__ import annotations

import django
import pytest
from django.conf import settings

from backend_helpers import PASSWORD, USER, StartCapture
from postwire.capture import CaptureServer

if not settings.configured:
    from mailsite import settings as site

    settings.configure(**{name: getattr(site, name) for name in dir(site) if name.isupper()})
    django.setup()


@pytest.fixture
def capture(start_capture: StartCapture) -> CaptureServer:
    """A capture server with STARTTLS and AUTH (user ``backend_helpers.USER``)."""
    return start_capture(tls="starttls", auth={USER: PASSWORD})
