"""Racket's ``smtp^`` signature and ``smtp@`` unit for the ``net/smtp`` layer."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from ..._core.envelope import SendResult
from ..parameters import Parameter
from .send import (
    smtp_send_message,
    smtp_send_message_on_ports,
    smtp_sending_end_of_message,
    smtp_sending_server,
)

__all__ = ["SmtpSignature", "smtp_unit"]


class SmtpSignature(Protocol):
    """Racket's ``smtp^`` signature: the names a net/smtp unit provides."""

    @property
    def smtp_sending_server(self) -> Parameter[str | None]: ...
    @property
    def smtp_sending_end_of_message(self) -> Parameter[Callable[[], object]]: ...
    def smtp_send_message(
        self,
        server_address: str,
        from_: str,
        to: Sequence[str],
        header: str | bytes,
        message: Iterable[str | bytes],
        port_no: int = 25,
        **kwargs: Any,
    ) -> SendResult: ...
    def smtp_send_message_on_ports(self, *args: Any, **kwargs: Any) -> SendResult: ...


class _SmtpUnit:
    """``smtp@``: the functions of :mod:`postwire.smtp` as one object."""

    smtp_sending_server = smtp_sending_server
    smtp_sending_end_of_message = smtp_sending_end_of_message

    def smtp_send_message(self, *args: Any, **kwargs: Any) -> SendResult:
        return smtp_send_message(*args, **kwargs)

    def smtp_send_message_on_ports(self, *args: Any, **kwargs: Any) -> SendResult:
        return smtp_send_message_on_ports(*args, **kwargs)


#: Racket's ``smtp@`` unit: an object with the ``smtp^`` names.
smtp_unit: SmtpSignature = _SmtpUnit()
