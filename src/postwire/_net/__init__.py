"""Streams: the only place where postwire touches sockets and TLS.

Drivers in :mod:`postwire.client` and :mod:`postwire.aio` read and write
through these streams; OS and TLS errors become postwire errors here.
"""
