"""Racket's ``net/sendmail``: hand a message to the local ``sendmail`` program.

:func:`send_mail_message` writes a whole message; :func:`send_mail_message_port`
writes the header and returns a text stream for the body.  The header is
Racket's, line for line (``X-Mailer``, ``From``, ``To``, ``CC``, ``Subject``,
the extra headers, a blank line; LF line endings, since sendmail converts them;
non-ASCII text RFC 2047-encoded by :func:`encode_for_header`; Bcc recipients
never written), and sendmail runs as ``sendmail -i -- RECIPIENT...``.

Deliberate differences from Racket (each one a fix):

1. The program is looked up in ``/usr/sbin``, ``/sbin``, ``/usr/local/sbin``,
   ``/usr/lib`` and then on ``PATH``; the :data:`sendmail_program` parameter
   overrides the search, and nothing is cached, so a sendmail installed after a
   failed lookup is found by the next call.
2. Recipients follow ``--`` on the command line; one that starts with ``-`` is
   a :class:`ValueError` (no option injection).
3. CR, LF or NUL in ``from_``, the subject, a recipient or an extra header is a
   :class:`ValueError` (no header injection); so is an empty extra header,
   which would end the header early.
4. The end of the message (closing the port, or the end of
   :func:`send_mail_message`) waits for sendmail and raises
   :class:`~postwire.errors.SendmailError` with its exit status and stderr when
   it fails.  Recipients on the command line are not RFC 2047-encoded.

Smaller choices: the ``X-Mailer`` line keeps Racket's place and layout but
names postwire (:data:`X_MAILER`); a failed lookup raises
:class:`FileNotFoundError` (Racket's ``exn:fail:unsupported``) with Racket's
text; every wait on sendmail is bounded by ``timeout``.

Modules: ``program`` (finding sendmail), ``unihead`` (Racket's RFC 2047
encoder), ``header`` (Racket's header), ``job`` (the sendmail process),
``port`` (the text stream onto it) and ``send`` (the API and the unit).
"""

from __future__ import annotations

from .header import X_MAILER
from .port import SendmailPort
from .program import find_sendmail, sendmail_program, sendmail_search_path
from .send import (
    SendmailSignature,
    run_sendmail,
    send_mail_message,
    send_mail_message_port,
    sendmail_unit,
)
from .unihead import encode_for_header

__all__ = [
    "X_MAILER",
    "SendmailPort",
    "SendmailSignature",
    "encode_for_header",
    "find_sendmail",
    "run_sendmail",
    "send_mail_message",
    "send_mail_message_port",
    "sendmail_program",
    "sendmail_search_path",
    "sendmail_unit",
]
