"""postwire's errors, catchable as the ``smtplib`` exceptions Django code already expects.

Django documents that with ``fail_silently=False`` sending "will raise an
``smtplib.SMTPException`` if an error occurs", and existing code catches
``smtplib.SMTPException``, ``SMTPRecipientsRefused`` or
``SMTPAuthenticationError``.  :class:`~postwire.django.EmailBackend` therefore
raises, for each postwire error, an instance of a class defined here that
derives from both the postwire class of the same name and its ``smtplib``
counterpart: ``postwire.django.errors.SenderRefused`` is a
:class:`postwire.errors.SenderRefused` *and* an ``smtplib.SMTPSenderRefused``.
Code may catch either; the text, ``reply`` and ``step`` are postwire's, and the
``smtplib`` attributes (``smtp_code``, ``smtp_error``, ``sender``,
``recipients``) are filled from the server's reply.

Both families derive from ``OSError`` (``smtplib.SMTPException`` is one since
Python 3.4; postwire's connection errors are ``ConnectionError`` and its
timeouts ``TimeoutError``), so the combined classes are ordinary exceptions.
"""

from __future__ import annotations

import smtplib

from .. import errors

__all__ = ["COUNTERPARTS", "as_smtplib_error"]

#: The ``smtplib`` class each postwire error class is also an instance of: the entry of the
#: first class along the postwire class's MRO that has one (``PossiblyDelivered`` takes
#: ``ServerDisconnected``'s).  Errors with no closer match are plain ``smtplib.SMTPException``.
COUNTERPARTS: dict[type[BaseException], type[smtplib.SMTPException]] = {
    errors.SenderRefused: smtplib.SMTPSenderRefused,
    errors.RecipientsRefused: smtplib.SMTPRecipientsRefused,
    errors.DataError: smtplib.SMTPDataError,
    errors.AuthenticationError: smtplib.SMTPAuthenticationError,
    errors.HeloError: smtplib.SMTPHeloError,
    # smtplib raises SMTPConnectError when the greeting is not 220.
    errors.GreetingError: smtplib.SMTPConnectError,
    errors.ConnectError: smtplib.SMTPConnectError,
    errors.ServerDisconnected: smtplib.SMTPServerDisconnected,
    # Credentials held back: no smtplib analogue (smtplib would have sent them).
    errors.PlaintextAuthRefused: smtplib.SMTPException,
    # smtplib: "STARTTLS extension not supported by server" is SMTPNotSupportedError.
    errors.TLSRequired: smtplib.SMTPNotSupportedError,
    errors.ExtensionNotSupported: smtplib.SMTPNotSupportedError,
    errors.ReplyError: smtplib.SMTPResponseException,
    errors.SMTPError: smtplib.SMTPException,
    # No mechanism in common is a ValueError in postwire; smtplib says SMTPException
    # ("No suitable authentication method found").
    errors.NoCommonMechanism: smtplib.SMTPException,
    errors.SASLError: smtplib.SMTPException,
}

_COMBINED: dict[type[BaseException], type[BaseException]] = {}


def _counterpart(cls: type[BaseException]) -> type[smtplib.SMTPException] | None:
    for base in cls.__mro__:
        if base in COUNTERPARTS:
            return COUNTERPARTS[base]
    return None


def _define(cls: type[BaseException], counterpart: type[smtplib.SMTPException]) -> None:
    name = cls.__name__
    doc = (
        f"A :class:`postwire.errors.{name}` that is also an ``smtplib."
        f"{counterpart.__name__}`` (raised by :class:`postwire.django.EmailBackend`)."
    )
    combined = type(name, (cls, counterpart), {"__module__": __name__, "__doc__": doc})
    combined.__qualname__ = name
    # A module attribute, so that pickle finds the class (SMTPError.__reduce__ names it).
    globals()[name] = combined
    _COMBINED[cls] = combined


for _name in errors.__all__:
    _cls = getattr(errors, _name)
    _match = _counterpart(_cls)
    if _match is not None:
        _define(_cls, _match)
del _name, _cls, _match


def as_smtplib_error(exc: BaseException, *, sender: str | None = None) -> BaseException:
    """``exc`` as an instance of its combined class, or ``exc`` itself when it has none.

    The new exception keeps the message, the attributes (``reply``, ``step``,
    ``refused``...), the traceback and the cause of ``exc``; ``sender`` is the
    envelope sender, for ``SMTPSenderRefused.sender``.
    """
    combined = _COMBINED.get(type(exc))
    if combined is None:
        return exc
    # No __init__ runs (the two families' signatures differ): the state is copied instead.
    # Every combined class is laid out as an OSError (smtplib's side), so OSError makes the
    # instance (ValueError.__new__ would refuse NoCommonMechanism's); it leaves ``args`` to
    # __init__ for subclasses that define one, so they are set here.
    new = OSError.__new__(combined)
    new.args = exc.args
    new.__dict__.update(exc.__dict__)
    _add_smtplib_attributes(new, sender)
    new.__cause__ = exc.__cause__
    new.__context__ = exc.__context__
    new.__suppress_context__ = exc.__suppress_context__
    return new.with_traceback(exc.__traceback__)


def _add_smtplib_attributes(new: BaseException, sender: str | None) -> None:
    """The attributes smtplib's classes carry, from postwire's reply (bytes, as smtplib has)."""
    reply = getattr(new, "reply", None)
    if isinstance(new, smtplib.SMTPResponseException):
        if reply is not None:
            new.smtp_code = reply.code
            new.smtp_error = reply.text.encode("utf-8", "replace")
        else:
            # smtplib's own code for "no reply": the connection closed (-1).
            new.smtp_code = -1
            new.smtp_error = str(new).encode("utf-8", "replace")
    if isinstance(new, smtplib.SMTPSenderRefused):
        new.sender = sender or ""
    if isinstance(new, smtplib.SMTPRecipientsRefused) and isinstance(new, errors.RecipientsRefused):
        # smtplib: {recipient: (code, text)}, as SMTP.sendmail() reports partial refusals.
        new.recipients = {
            address: (refusal.code, refusal.text.encode("utf-8", "replace"))
            for address, refusal in new.refused.items()
        }
