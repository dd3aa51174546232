"""The SMTP clients: :class:`Client` and :class:`AsyncClient`, and their pools.

Both clients run the same sans-IO core (:mod:`postwire._core`) through one
driver.  The asyncio side (:mod:`postwire.client._async`) is the source; the
sync side (:mod:`postwire.client._sync`) is generated from it by
``scripts/unasync.py``, and what really differs (threads or tasks, blocking
or awaited calls, cancellation) is in :mod:`postwire.client._concurrency`.
"""

from ._async.client import AsyncClient
from ._async.pool import AsyncPool
from ._sync.client import Client
from ._sync.pool import Pool
from .base import TLS_MODES, BaseClient, OAuth2Token, TLSMode
from .cancel import CancelHandle

__all__ = [
    "TLS_MODES",
    "AsyncClient",
    "AsyncPool",
    "BaseClient",
    "CancelHandle",
    "Client",
    "OAuth2Token",
    "Pool",
    "TLSMode",
]
