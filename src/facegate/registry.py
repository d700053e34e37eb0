"""A tiny named registry, used for detectors, embedding models and metrics.

A registry also keeps the shared instances (:meth:`Registry.shared`) and can name an
entry whose code lives elsewhere (:meth:`Registry.register_lazy`): the module is
imported the first time the entry is asked for, and registers itself then. That is how
the PyTorch models of :mod:`facegate.learn` appear in the core's model registry
without the core importing them (or torch).
"""

from __future__ import annotations

import importlib
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
        self._lazy: dict[str, str] = {}
        self._shared: dict[tuple[str, tuple[tuple[str, object], ...]], T] = {}

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        def decorator(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._factories:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._factories[name] = factory
            self._lazy.pop(name, None)
            return factory

        return decorator

    def register_lazy(self, name: str, module: str) -> None:
        """Name entry ``name`` now; ``module`` (which registers it) is imported when it is first used."""
        if name in self._factories or name in self._lazy:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._lazy[name] = module

    def get(self, name: str) -> Callable[..., T]:
        if name not in self._factories and name in self._lazy:
            importlib.import_module(self._lazy[name])
        try:
            return self._factories[name]
        except KeyError:
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}; choose one of: {', '.join(self) or 'none'}"
            ) from None

    def create(self, name: str, /, **kwargs: object) -> T:
        return self.get(name)(**kwargs)

    def shared(self, name: str, /, **options: object) -> T:
        """The one instance of ``name`` per set of options, built on first use."""
        key = (name, tuple(sorted(options.items())))
        if key not in self._shared:
            self._shared[key] = self.create(name, **options)
        return self._shared[key]

    def clear_shared(self) -> None:
        """Forget the shared instances (tests; a changed environment)."""
        self._shared.clear()

    def names(self) -> list[str]:
        return sorted({*self._factories, *self._lazy})

    def __contains__(self, name: object) -> bool:
        return name in self._factories or name in self._lazy

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def modules(self) -> set[str]:
        """The modules that registered entries (a worker process imports them to see the same registry)."""
        return {getattr(f, "__module__", "") for f in self._factories.values()} - {"", "__main__"}
