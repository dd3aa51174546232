"""Every exception postwire raises (see :mod:`postwire._core.errors`).

The classes live at the bottom of the layers, in the pure core, so that
every layer can raise them; this is their public import path, and the name
they show in tracebacks.
"""

from __future__ import annotations

from ._core.errors import (
    AuthenticationError,
    CancelledSend,
    CertificateError,
    ConnectError,
    ConnectTimeout,
    DataError,
    ExtensionNotSupported,
    GreetingError,
    HeloError,
    LocalProtocolError,
    MessageTooLarge,
    NoCommonMechanism,
    PlaintextAuthRefused,
    PossiblyDelivered,
    ProtocolError,
    RecipientsRefused,
    ReplyError,
    ReplySyntaxError,
    SASLError,
    SenderRefused,
    SendmailError,
    ServerDisconnected,
    SMTPError,
    StartTLSError,
    Timeout,
    TLSError,
    TLSRequired,
    describe,
)

__all__ = [
    "AuthenticationError",
    "CancelledSend",
    "CertificateError",
    "ConnectError",
    "ConnectTimeout",
    "DataError",
    "ExtensionNotSupported",
    "GreetingError",
    "HeloError",
    "LocalProtocolError",
    "MessageTooLarge",
    "NoCommonMechanism",
    "PlaintextAuthRefused",
    "PossiblyDelivered",
    "ProtocolError",
    "RecipientsRefused",
    "ReplyError",
    "ReplySyntaxError",
    "SASLError",
    "SMTPError",
    "SenderRefused",
    "SendmailError",
    "ServerDisconnected",
    "StartTLSError",
    "TLSError",
    "TLSRequired",
    "Timeout",
    "describe",
]

# Tracebacks and reprs name the public module, not the core one.
for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type):
        _obj.__module__ = __name__
del _name, _obj
