"""The sans-IO protocol core: pure data in, pure data out.

Nothing in this package may import ``socket``, ``ssl``, ``asyncio`` or
``subprocess``: drivers in :mod:`postwire.client` move
the bytes.  ``tests/test_core_purity.py`` enforces it.
"""
