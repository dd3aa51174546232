"""Django integration: ``EMAIL_BACKEND = "postwire.django.EmailBackend"``.

:class:`~postwire.django.EmailBackend` is a drop-in for Django's SMTP backend
that sends with :class:`postwire.Client` (verified TLS, pipelined batches,
typed errors that are also ``smtplib`` exceptions, OAuth 2.0 tokens, DKIM,
per-recipient results).  Django is an optional dependency (``postwire[django]``):
importing :mod:`postwire` never imports it.  Adding ``"postwire.django"`` to
``INSTALLED_APPS`` is optional; it adds system checks of the e-mail settings
(:mod:`postwire.django.apps`).

The backend is imported on first use (PEP 562), so that Django can import this
package while it loads its applications, before they are ready.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .backend import EmailBackend

__all__ = ["EmailBackend"]


def __getattr__(name: str) -> Any:
    if name == "EmailBackend":
        from .backend import EmailBackend

        return EmailBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
