"""The asyncio driver, client and pool: the one source of both clients.

``scripts/unasync.py`` generates :mod:`postwire.client._sync` from these
modules; the real differences between the two sit in
:mod:`postwire.client._concurrency`.
"""
