"""The pieces of the ``postwire`` command line (see :mod:`postwire.cli`)."""
