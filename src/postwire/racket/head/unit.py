"""Racket's ``head^`` signature and ``head@`` unit for the ``net/head`` layer."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import AnyStr, Literal, Protocol, overload

from . import addresses, fields

__all__ = ["HeadSignature", "head_unit"]


class HeadSignature(Protocol):
    """Racket's ``head^``: the twelve names of ``net/head``."""

    @property
    def empty_header(self) -> str: ...
    def validate_header(self, candidate: str | bytes) -> None: ...
    def extract_field(self, field: AnyStr, header: AnyStr) -> AnyStr | None: ...
    def remove_field(self, field: AnyStr, header: AnyStr) -> AnyStr: ...
    def insert_field(self, field: AnyStr, value: AnyStr, header: AnyStr) -> AnyStr: ...
    def replace_field(self, field: AnyStr, value: AnyStr | None, header: AnyStr) -> AnyStr: ...
    def extract_all_fields(self, header: AnyStr) -> list[tuple[AnyStr, AnyStr]]: ...
    def append_headers(self, a: AnyStr, b: AnyStr) -> AnyStr: ...
    def standard_message_header(
        self,
        from_: str,
        tos: Sequence[str],
        ccs: Sequence[str],
        bccs: Sequence[str],
        subject: str,
        *,
        now: datetime | None = None,
    ) -> str: ...
    def data_lines_to_data(self, lines: Iterable[str]) -> str: ...
    @overload
    def extract_addresses(
        self, line: str | None, kind: Literal["name", "address", "full"]
    ) -> list[str]: ...
    @overload
    def extract_addresses(
        self, line: str | None, kind: Literal["all"]
    ) -> list[tuple[str, str, str]]: ...
    def assemble_address_field(self, addresses: Iterable[str]) -> str: ...


class _HeadUnit:
    """``head@``: the functions of :mod:`postwire.head` as one object (a :class:`HeadSignature`)."""

    empty_header = fields.empty_header
    validate_header = staticmethod(fields.validate_header)
    extract_field = staticmethod(fields.extract_field)
    remove_field = staticmethod(fields.remove_field)
    insert_field = staticmethod(fields.insert_field)
    replace_field = staticmethod(fields.replace_field)
    extract_all_fields = staticmethod(fields.extract_all_fields)
    append_headers = staticmethod(fields.append_headers)
    standard_message_header = staticmethod(fields.standard_message_header)
    data_lines_to_data = staticmethod(fields.data_lines_to_data)
    assemble_address_field = staticmethod(addresses.assemble_address_field)

    @overload
    @staticmethod
    def extract_addresses(
        line: str | None, kind: Literal["name", "address", "full"]
    ) -> list[str]: ...
    @overload
    @staticmethod
    def extract_addresses(line: str | None, kind: Literal["all"]) -> list[tuple[str, str, str]]: ...
    @staticmethod
    def extract_addresses(line: str | None, kind: str) -> list[str] | list[tuple[str, str, str]]:
        return addresses.extract_addresses_any(line, kind)

    def __repr__(self) -> str:
        return "<unit head@>"


#: Racket's ``head@`` unit: an object with the twelve ``head^`` names.
head_unit: HeadSignature = _HeadUnit()
