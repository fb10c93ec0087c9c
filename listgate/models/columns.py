"""Column types shared by the models."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Generic, TypeVar

from sqlalchemy import String
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

E = TypeVar("E", bound=StrEnum)


class StateString(TypeDecorator[E], Generic[E]):
    """A listgate.states enum stored as its plain word in a VARCHAR; read back as the member.

    Binding a word that is not a member raises ValueError (the statement fails, nothing is stored).
    """

    impl = String
    cache_ok = True

    def __init__(self, states: type[E], length: int = 16) -> None:
        super().__init__(length)
        self.states, self.length = states, length
        self._members: dict[str, E] = {m.value: m for m in states}

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        member = self._members.get(value) if isinstance(value, str) else None
        if member is None:
            raise ValueError(
                f"{value!r} is not a {self.states.__name__}: one of {', '.join(self._members)}"
            )
        return member.value

    def process_result_value(self, value: Any, dialect: Dialect) -> E | None:
        if value is None:
            return None
        member = self._members.get(value)
        if member is None:
            raise ValueError(f"the database holds {value!r}, which is not a {self.states.__name__}")
        return member
