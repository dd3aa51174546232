"""Django integration: ``EMAIL_BACKEND = "postwire.django.EmailBackend"`` (or ``OutboxBackend``).

:class:`~postwire.django.EmailBackend` is a drop-in for Django's SMTP backend
that sends with :class:`postwire.Client` (verified TLS, pipelined batches,
typed errors that are also ``smtplib`` exceptions, OAuth 2.0 tokens, DKIM,
per-recipient results).  :class:`~postwire.django.OutboxBackend` puts messages
into postwire's durable outbox instead, for ``manage.py postwire_outbox_work`` to
deliver.  Django is an optional dependency (``postwire[django]``): importing
:mod:`postwire` never imports it.  Adding ``"postwire.django"`` to
``INSTALLED_APPS`` adds system checks of the e-mail settings
(:mod:`postwire.django.apps`) and the management command; the backends work
without it.

The backends are imported on first use (PEP 562), so that Django can import this
package while it loads its applications, before they are ready.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .backend import EmailBackend
    from .outbox import OutboxBackend

__all__ = ["EmailBackend", "OutboxBackend"]


def __getattr__(name: str) -> Any:
    if name == "EmailBackend":
        from .backend import EmailBackend

        return EmailBackend
    if name == "OutboxBackend":
        from .outbox import OutboxBackend

        return OutboxBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
