"""The client side of one SASL exchange: the base class every mechanism extends."""

from __future__ import annotations

from abc import ABC, abstractmethod

from ..errors import SASLError

__all__ = ["MAX_CHALLENGES", "Mechanism"]

#: How many 334 challenges one mechanism answers before giving up.
MAX_CHALLENGES = 5


class Mechanism(ABC):
    """One client side of a SASL exchange.

    ``name`` is the IANA mechanism name sent on the AUTH line.  Subclasses
    implement :meth:`_step`; :meth:`respond` adds the cap on challenges.
    ``error_details`` holds the decoded JSON error an OAuth server sent, if any.
    """

    name: str

    def __init__(self) -> None:
        self._challenges = 0
        self.error_details: dict[str, object] | None = None

    def initial_response(self) -> bytes | None:
        """The decoded initial response for the AUTH line, or None if there is none.

        ``b""`` means an empty initial response (sent as ``=``).
        """
        return None

    def respond(self, challenge: bytes) -> bytes:
        """Answer the decoded payload of a 334 reply with the decoded response.

        Raises :class:`SASLError` when the exchange cannot go on.
        """
        self._challenges += 1
        if self._challenges > MAX_CHALLENGES:
            raise SASLError(f"{self.name}: too many challenges (more than {MAX_CHALLENGES})")
        return self._step(challenge)

    @abstractmethod
    def _step(self, challenge: bytes) -> bytes:
        """Answer one challenge (the cap is already checked)."""

    def verify_success(self, data: bytes | None) -> None:
        """Check the exchange once the server has replied 235.

        Only mechanisms that authenticate the server (SCRAM) do anything here.
        """
        return None

    def __repr__(self) -> str:
        # Deliberately no user name, password or token (architecture: credentials
        # never appear in logs, reprs or exceptions).
        return f"<{type(self).__name__} SASL {self.name} mechanism, credentials hidden>"
