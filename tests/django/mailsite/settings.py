"""Settings of the test project: a site that sends mail with postwire's backend.

The tests point the EMAIL_* settings at their servers with ``override_settings``; the host
below must never be reached.
"""

SECRET_KEY = "tests-only"
DEBUG = False
INSTALLED_APPS = ["postwire.django"]  # the system checks of the e-mail settings
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True
TIME_ZONE = "UTC"

EMAIL_BACKEND = "postwire.django.EmailBackend"
EMAIL_HOST = "smtp.invalid"
EMAIL_PORT = 25
EMAIL_TIMEOUT = 10
DEFAULT_FROM_EMAIL = "webmaster@test.example"
SERVER_EMAIL = "django@test.example"
ADMINS = [("Ada", "ada@test.example"), ("Bob", "bob@test.example")]
EMAIL_SUBJECT_PREFIX = "[mailsite] "
