"""Racket-style parameters on top of :mod:`contextvars`.

A :class:`Parameter` is read by calling it with no argument and set by calling
it with one.  Setting it changes the value for the current context only (the
current thread, or the current asyncio task), and ``parameterize`` sets it for
a ``with`` block, as Racket's ``parameterize`` does.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar, overload

__all__ = ["Parameter"]

T = TypeVar("T")

_UNSET: object = object()


class Parameter(Generic[T]):
    """A value with a default that can be changed per context.

    ``guard``, when given, is called with every new value (including the
    default) and returns the value to store; it raises ``TypeError`` or
    ``ValueError`` to refuse a value.
    """

    __slots__ = ("_default", "_guard", "_var", "name")

    def __init__(self, name: str, default: T, guard: Callable[[object], T] | None = None) -> None:
        self.name = name
        self._guard = guard
        self._default = guard(default) if guard is not None else default
        self._var: contextvars.ContextVar[T] = contextvars.ContextVar(name)

    def _check(self, value: object) -> T:
        if self._guard is not None:
            return self._guard(value)
        return value  # type: ignore[return-value]

    @overload
    def __call__(self) -> T: ...
    @overload
    def __call__(self, value: T) -> None: ...
    def __call__(self, value: object = _UNSET) -> T | None:
        if value is _UNSET:
            return self._var.get(self._default)
        self._var.set(self._check(value))
        return None

    @contextmanager
    def parameterize(self, value: T) -> Iterator[T]:
        """Set the parameter to ``value`` for the duration of a ``with`` block."""
        token = self._var.set(self._check(value))
        try:
            yield self._var.get()
        finally:
            self._var.reset(token)

    def __repr__(self) -> str:
        return f"<Parameter {self.name}={self()!r}>"
