"""What the database holds in its state columns, read as raw words (past the enums' checks)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from sqlalchemy import Column, String, select, type_coerce
from sqlalchemy.orm import Session

from listgate.db import Base
from listgate.models.columns import StateString


def state_columns() -> list[Column[Any]]:
    """Every column of the models typed with a listgate.states enum."""
    return [
        c for t in Base.metadata.sorted_tables for c in t.columns if isinstance(c.type, StateString)
    ]


def enum_of(column: Column[Any]) -> type[StrEnum]:
    """The listgate.states enum a state column is typed with."""
    assert isinstance(column.type, StateString), f"{column} is not a state column"
    return column.type.states


def stored_words(session: Session) -> dict[str, set[str]]:
    """The distinct words stored in each state column ("table.column"), read without the enum."""
    return {
        f"{c.table.name}.{c.name}": set(session.scalars(select(type_coerce(c, String)).distinct()))
        for c in state_columns()
    }


def foreign_words(session: Session) -> dict[str, set[str]]:
    """The stored words that are not members of their
    column's enum, by column (empty when all are).
    """

    members = {f"{c.table.name}.{c.name}": {m.value for m in enum_of(c)} for c in state_columns()}
    return {
        name: words - members[name]
        for name, words in stored_words(session).items()
        if words - members[name]
    }
