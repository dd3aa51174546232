"""postwire: sending e-mail over SMTP.

The public API is what this module exports; submodules ``postwire.smtp``,
``postwire.head``, ``postwire.sendmail`` and ``postwire.capture`` are the
Racket-compatible layers and the development server.
"""

from ._core.envelope import Envelope, SendResult
from ._core.extensions import Extensions
from ._core.reply import EnhancedStatus, Reply
from ._core.timeouts import Timeouts
from .aio import AsyncClient
from .client import CancelHandle, Client, TLSMode
from .errors import (
    AuthenticationError,
    CancelledSend,
    CertificateError,
    ConnectError,
    ConnectTimeout,
    DataError,
    ExtensionNotSupported,
    GreetingError,
    HeloError,
    MessageTooLarge,
    NoCommonMechanism,
    PossiblyDelivered,
    ProtocolError,
    RecipientsRefused,
    ReplyError,
    SASLError,
    SenderRefused,
    SendmailError,
    ServerDisconnected,
    SMTPError,
    StartTLSError,
    Timeout,
    TLSError,
    TLSRequired,
)
from .parameters import Parameter
from .pool import AsyncPool, Pool

__version__ = "0.1.0"

__all__ = [
    "AsyncClient",
    "AsyncPool",
    "AuthenticationError",
    "CancelHandle",
    "CancelledSend",
    "CertificateError",
    "Client",
    "ConnectError",
    "ConnectTimeout",
    "DataError",
    "EnhancedStatus",
    "Envelope",
    "ExtensionNotSupported",
    "Extensions",
    "GreetingError",
    "HeloError",
    "MessageTooLarge",
    "NoCommonMechanism",
    "Parameter",
    "PlaintextAuthRefused",
    "Pool",
    "PossiblyDelivered",
    "ProtocolError",
    "RecipientsRefused",
    "Reply",
    "ReplyError",
    "SASLError",
    "SMTPError",
    "SendResult",
    "SenderRefused",
    "SendmailError",
    "ServerDisconnected",
    "StartTLSError",
    "TLSError",
    "TLSMode",
    "TLSRequired",
    "Timeout",
    "Timeouts",
    "__version__",
]
