"""Streams: the only place where postwire touches sockets and TLS.

The drivers in :mod:`postwire.client` read and write
through these streams; OS and TLS errors become postwire errors here.
"""
