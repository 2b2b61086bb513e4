"""A registry of pluggable pieces by their stable name (pure; scorers and strategies use it)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar, Generic, Protocol, TypeVar


class Named(Protocol):
    """Anything with a stable name that a registry files it under."""

    @property
    def name(self) -> str:
        """The name callers use to pick it."""
        ...


N = TypeVar("N", bound=Named)


class NamedRegistry(Generic[N]):
    """Pieces by name; a subclass names what it holds (`kind`) and the error of an unknown name."""

    kind: ClassVar[str]
    unknown: ClassVar[type[LookupError]]

    def __init__(self, members: Iterable[N] = ()) -> None:
        self._members: dict[str, N] = {}
        for member in members:
            self.register(member)

    def register(self, member: N) -> None:
        """Add one; a second one with the same name is a mistake."""
        if member.name in self._members:
            raise ValueError(f"a {self.kind} named {member.name!r} is already registered")
        self._members[member.name] = member

    def get(self, name: str) -> N:
        """The one with this name; raise `unknown` naming the ones there are."""
        try:
            return self._members[name]
        except KeyError:
            raise self.unknown(
                f"no {self.kind} named {name!r}; registered: {', '.join(self.names()) or 'none'}"
            ) from None

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._members)
