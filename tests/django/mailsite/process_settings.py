"""The settings of ``manage.py`` run as a process: ``settings.py`` with ``$MAILSITE_SETTINGS``.

``$MAILSITE_SETTINGS`` is a JSON object of settings (``EMAIL_PORT``, ``POSTWIRE_OUTBOX``...)
that replace the project's, so a test can point a child process at its servers.
"""

import json
import os

from mailsite.settings import *  # noqa: F403  (every setting of the project, then the test's)

globals().update(json.loads(os.environ.get("MAILSITE_SETTINGS", "{}")))
