"""A value built on first use and kept for the container's life, with a reset for tests.

The shape of aws-lambda-handler-cookbook's cached factory (``@lru_cache`` on a builder), as an object so
a test can also *inject* a prebuilt value. Nothing is built at import; a factory that raises caches
nothing, so the next invocation tries again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Lazy(Generic[T]):
    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._value: T | None = None

    def get(self) -> T:
        if self._value is None:
            self._value = self._factory()
        return self._value

    @property
    def current(self) -> T | None:
        """What is held now, without building it (for tests: 'was it built once?')."""
        return self._value

    def reset(self, value: T | None = None) -> None:
        """Start a fresh 'cold' container (``None``) or hold a value a test built itself."""
        self._value = value
