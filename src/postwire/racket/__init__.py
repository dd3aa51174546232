"""The Racket-compatible layers: ``net/smtp``, ``net/head`` and ``net/sendmail``.

One package per Racket library (``smtp/``, ``head/``, ``sendmail/``) and the
Racket-style :class:`~postwire.racket.parameters.Parameter` they share.  Their
public import paths are :mod:`postwire.smtp`, :mod:`postwire.head`,
:mod:`postwire.sendmail` and :class:`postwire.Parameter`; this package imports
nothing itself, so that reaching one layer does not load the others.
"""
