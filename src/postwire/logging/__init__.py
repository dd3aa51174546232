"""Logging by e-mail: :class:`SMTPHandler`, the stdlib handler's arguments without its waits.

::

    import logging
    from postwire.logging import SMTPHandler

    handler = SMTPHandler(("smtp.example.org", 587), "app@example.org", ["ops@example.org"],
                          "app errors", credentials=("app", password))
    handler.setLevel(logging.ERROR)
    logging.getLogger().addHandler(handler)

``emit()`` only formats and queues; a background thread batches, rate-limits and sends over
verified TLS.  The modules, one concept each: :mod:`.records` (the bounded queue and its drop
policy), :mod:`.pacing` (rate window, back-off), :mod:`.batching` (what goes when),
:mod:`.compose` (the message), :mod:`.destination` (where to send, from the stdlib's
arguments or postwire's), :mod:`.delivery` (the seam to the network), :mod:`.worker` (the
thread) and :mod:`.handler`.  Reference: ``docs/logging.md``.

This package is ``postwire.logging``; inside postwire, ``import logging`` is still the
standard library's (imports are absolute).
"""

from .batching import BatchSettings
from .handler import SMTPHandler
from .records import DropPolicy

__all__ = ["BatchSettings", "DropPolicy", "SMTPHandler"]
