"""Management commands of the ``postwire.django`` application."""
