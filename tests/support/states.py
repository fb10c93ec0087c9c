"""What the database holds in its state columns, read as raw words (past the enums' checks)."""

from __future__ import annotations

from enum import StrEnum
from functools import cache
from typing import Any

from sqlalchemy import Column, String, literal, select, type_coerce, union
from sqlalchemy.orm import Session

from listgate.db import Base
from listgate.models.columns import StateString


@cache
def state_columns() -> tuple[Column[Any], ...]:
    """Every column of the models typed with a listgate.states enum (the models do not change
    while the tests run: read once)."""
    return tuple(
        c for t in Base.metadata.sorted_tables for c in t.columns if isinstance(c.type, StateString)
    )


def enum_of(column: Column[Any]) -> type[StrEnum]:
    """The listgate.states enum a state column is typed with."""
    assert isinstance(column.type, StateString), f"{column} is not a state column"
    return column.type.states


def _name(column: Column[Any]) -> str:
    return f"{column.table.name}.{column.name}"


@cache
def _words_query() -> Any:
    """One statement for every state column: its distinct words, each named by its column."""
    return union(
        *(
            select(literal(_name(c), String).label("name"), type_coerce(c, String).label("word"))
            for c in state_columns()
        )
    )


def stored_words(session: Session) -> dict[str, set[str]]:
    """The distinct words stored in each state column ("table.column"), read without the enum
    (one statement: the model tests read them after every step)."""
    out: dict[str, set[str]] = {_name(c): set() for c in state_columns()}
    for name, word in session.execute(_words_query()):
        out[name].add(word)
    return out


def foreign_words(session: Session) -> dict[str, set[str]]:
    """The stored words that are not members of their
    column's enum, by column (empty when all are).
    """

    members = {_name(c): {m.value for m in enum_of(c)} for c in state_columns()}
    return {
        name: words - members[name]
        for name, words in stored_words(session).items()
        if words - members[name]
    }
