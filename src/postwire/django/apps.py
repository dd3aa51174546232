"""The Django application ``postwire.django``: system checks, the outbox worker command.

Listing ``"postwire.django"`` in ``INSTALLED_APPS`` is optional for the backends;
it adds ``manage.py postwire_outbox_work`` (:mod:`.management.commands.postwire_outbox_work`)
and makes ``manage.py check`` (and ``runserver``, ``migrate``...) report, before
any mail is sent, settings that :class:`~postwire.django.EmailBackend` cannot
work with:

- ``postwire.E001``: the backend cannot be made from the settings (a bad
  ``POSTWIRE_EMAIL`` key, an unimportable ``EMAIL_OAUTH2_TOKEN``, both
  ``EMAIL_USE_TLS`` and ``EMAIL_USE_SSL``, a bad ``POSTWIRE_OUTBOX`` for
  :class:`~postwire.django.OutboxBackend`...);
- ``postwire.E002``: a user name and password over a connection without TLS,
  which postwire refuses to send them on.
"""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

__all__ = ["PostwireConfig", "check_email_settings"]


class PostwireConfig(AppConfig):  # type: ignore[misc]  # Django ships no type hints
    """postwire's Django application (label ``postwire``)."""

    name = "postwire.django"
    # The default label would be "django", the package's last name.
    label = "postwire"
    verbose_name = "postwire"

    def ready(self) -> None:
        checks.register(check_email_settings)


def check_email_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Errors in the settings of ``EMAIL_BACKEND`` when it is postwire's backend."""
    from .backend import EmailBackend
    from .outbox import OutboxBackend

    try:
        backend_class = import_string(settings.EMAIL_BACKEND)
    except ImportError:
        return []  # Django reports an unimportable backend when it is used
    if isinstance(backend_class, type) and issubclass(backend_class, OutboxBackend):
        try:
            backend_class()
        except (ImproperlyConfigured, TypeError) as exc:
            return [checks.Error(str(exc), obj=settings.EMAIL_BACKEND, id="postwire.E001")]
        return []
    if not (isinstance(backend_class, type) and issubclass(backend_class, EmailBackend)):
        return []
    try:
        backend = backend_class()
    except (ImproperlyConfigured, ValueError, TypeError) as exc:
        return [checks.Error(str(exc), obj=settings.EMAIL_BACKEND, id="postwire.E001")]
    config = backend.config
    if config.logs_in and config.tls == "none" and not config.options.get("allow_plaintext_auth"):
        return [
            checks.Error(
                "a user name and password are set, but the connection to the mail server is "
                "not encrypted: postwire will not send them",
                hint=(
                    "set EMAIL_USE_TLS = True (STARTTLS) or EMAIL_USE_SSL = True; or, to send "
                    'them in clear text anyway, POSTWIRE_EMAIL = {"allow_plaintext_auth": True}'
                ),
                obj=settings.EMAIL_BACKEND,
                id="postwire.E002",
            )
        ]
    return []
