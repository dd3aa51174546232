"""The ``postwire`` command line (also ``python -m postwire``).

Commands: ``send``, ``sendmail``, ``probe``, ``capture`` and ``demo``.  When
the program is called ``sendmail`` (a symlink to ``postwire``), it runs
``postwire sendmail`` with its arguments, so it can stand in for
``/usr/sbin/sendmail``.  Exit codes follow sysexits.h (see ``--help``).

Modules: ``dispatch`` (the parser and the commands), one module per command
(``send`` with ``many``, ``sendmail_mode``, ``probe``, ``capture``, ``demo``),
and what they share: ``config``, ``connection``, ``message``, ``output``,
``exits`` and ``x509``.
"""

from __future__ import annotations

from .dispatch import build_parser, main

__all__ = ["build_parser", "main"]
