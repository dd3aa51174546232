"""``postwire_outbox_work``: a worker of the outbox, relaying through the project's settings."""
