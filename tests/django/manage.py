#!/usr/bin/env python
"""The test project's ``manage.py``, for tests that run management commands as a process.

Its settings are ``mailsite.process_settings``: the project's, with the test's servers from
``$MAILSITE_SETTINGS`` (the tests in this process use ``override_settings`` instead, which a
child process cannot see).
"""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailsite.process_settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
