"""A tiny named registry, used for detectors, embedding models and metrics."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from facegate.errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to factories (classes or functions) of one kind of component.

    >>> metrics = Registry[int]("metric")
    >>> @metrics.register("one")
    ... def one() -> int:
    ...     return 1
    >>> metrics.create("one")
    1
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._factories: dict[str, Callable[..., T]] = {}

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        def decorator(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._factories:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._factories[name] = factory
            return factory

        return decorator

    def get(self, name: str) -> Callable[..., T]:
        try:
            return self._factories[name]
        except KeyError:
            known = ", ".join(sorted(self._factories)) or "none"
            raise UnknownNameError(f"unknown {self.kind} {name!r}; choose one of: {known}") from None

    def create(self, name: str, /, **kwargs: object) -> T:
        return self.get(name)(**kwargs)

    def names(self) -> list[str]:
        return sorted(self._factories)

    def __contains__(self, name: object) -> bool:
        return name in self._factories

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def modules(self) -> set[str]:
        """The modules that registered entries (a worker process imports them to see the same registry)."""
        return {getattr(f, "__module__", "") for f in self._factories.values()} - {"", "__main__"}
