"""postwire: sending e-mail over SMTP.

The public API is what this module exports: the clients and pools, the
values they return, and every exception (:mod:`postwire.errors`).  The
submodules ``postwire.smtp``, ``postwire.head`` and ``postwire.sendmail`` are
Racket's ``net`` layers, and ``postwire.capture`` the development server.
"""

from . import errors as errors  # names the exception classes' module (postwire.errors)
from ._core import errors as _core_errors
from ._core.dsn import DSN
from ._core.envelope import Envelope, SendResult
from ._core.errors import *  # noqa: F403 (every exception class)
from ._core.extensions import Extensions
from ._core.reply import EnhancedStatus, Reply
from ._core.timeouts import Timeouts
from .client import AsyncClient, AsyncPool, CancelHandle, Client, Pool, TLSMode
from .racket.parameters import Parameter
from .signing import DKIMSigner

__version__ = "0.1.0"

__all__ = [
    "AsyncClient",
    "AsyncPool",
    "CancelHandle",
    "Client",
    "DKIMSigner",
    "DSN",
    "EnhancedStatus",
    "Envelope",
    "Extensions",
    "Parameter",
    "Pool",
    "Reply",
    "SendResult",
    "TLSMode",
    "Timeouts",
    "__version__",
    *_core_errors.__all__,
]
