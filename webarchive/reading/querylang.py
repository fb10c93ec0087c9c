"""The search box's language.

Words, "phrases", -excluded, from:, subject:, list:, before:, after:, has:attachment; a minus
before an operator leaves out what the operator would find (-after: is before:, -before: is after:).

Parsed once into a Query that both engines turn into their own syntax (an FTS5 MATCH
expression, a websearch_to_tsquery string), so every operator means the same on SQLite
and on PostgreSQL. Operators that are not about words (from:, subject:, has:, dates)
become plain column filters, identical on both.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from listgate import limits
from listgate.limits import Limit, TooLong
from webarchive.ids import day

_TOKEN = re.compile(r'(-?)(?:([A-Za-z]+):)?("[^"]*"?|[^\s"]+)')
_WORD = re.compile(r"\w+", re.UNICODE)
OPERATORS = ("from", "subject", "list", "before", "after", "has")
MAX_TERMS = 20
MAX_TEXT = 1000  # characters a search may have (the spaces around it not counted)
# A value is read whole up to the longest thing it can find, refused past it, never cut:
MAX_AUTHOR = 320  # an address, 64@255 (RFC 5321), as Message.from_addr holds it; a name, 255
MAX_LIST = 64  # a list name as MailingList.name holds it (new ones: addresses.MAX_LIST_NAME)
# subject: has no limit of its own: a stored subject has up to 2,000 characters, a search 1,000
HELP = (
    ('"exact phrase"', "the words next to each other, in this order"),
    ("-word", 'leave out posts with this word (or -"phrase")'),
    (
        "from:ann",
        "posts by someone whose name or address starts with or contains it; "
        "from:ann@example.org for one address",
    ),
    ("subject:release", 'the subject contains it (subject:"release date" for several words)'),
    ("list:dev", "only this list"),
    ("after:2026-03-01", "on or after that day (UTC)"),
    ("before:2026-04-01", "before that day (UTC)"),
    ("has:attachment", "posts with a file attached"),
    (
        "-from:ann",
        "leave out what the operator finds: -from:, -subject:, -list:, -has:attachment",
    ),
    (
        "-after:2026-03-01",
        "leave out that day and later, as before:2026-03-01 does (and -before: is after:)",
    ),
)


class QueryError(ValueError):
    """A search the user must fix; the message says how."""


@dataclass(frozen=True)
class Query:
    """A parsed search: the text terms and the filters the operators asked for."""

    words: tuple[str, ...] = ()
    phrases: tuple[tuple[str, ...], ...] = ()
    excluded: tuple[tuple[str, ...], ...] = ()  # each a word or a phrase, as words
    authors: tuple[str, ...] = ()
    subjects: tuple[str, ...] = ()
    lists: tuple[str, ...] = ()
    after: datetime | None = None
    before: datetime | None = None
    has_attachment: bool = False
    # a minus before an operator: posts the operator would find are left out
    not_authors: tuple[str, ...] = ()
    not_subjects: tuple[str, ...] = ()
    not_lists: tuple[str, ...] = ()
    no_attachment: bool = False

    @property
    def has_text(self) -> bool:
        """True when some words or phrases must match (relevance applies)."""
        return bool(self.words or self.phrases)

    @property
    def is_empty(self) -> bool:
        """True when nothing at all was asked."""
        return not (
            self.has_text
            or self.excluded
            or self.authors
            or self.subjects
            or self.lists
            or self.after
            or self.before
            or self.has_attachment
            or self.not_authors
            or self.not_subjects
            or self.not_lists
            or self.no_attachment
        )

    def tokens(self) -> list[str]:
        """Every positive word, lowercased, plain words last (for scoring and highlighting)."""
        return [w.lower() for p in self.phrases for w in p] + [w.lower() for w in self.words]

    def fts5(self, prefix: bool) -> str:
        """The positive terms as an FTS5 expression; the last plain word as a prefix when asked."""
        parts = ['"' + " ".join(p) + '"' for p in self.phrases]
        words = [f'"{w}"' for w in self.words]
        if prefix and words:
            words[-1] += "*"
        return " ".join(words + parts)

    def fts5_excluded(self) -> str:
        """The excluded terms as one FTS5 OR expression ('' when none)."""
        return " OR ".join('"' + " ".join(p) + '"' for p in self.excluded)

    def websearch_excluded(self) -> str:
        """The excluded terms as one websearch_to_tsquery OR string ('' when none)."""
        return " or ".join('"' + " ".join(p) + '"' for p in self.excluded)

    def websearch(self) -> str:
        """The positive and excluded terms as a PostgreSQL websearch_to_tsquery string."""
        parts = list(self.words) + ['"' + " ".join(p) + '"' for p in self.phrases]
        parts += ['-"' + " ".join(p) + '"' if len(p) > 1 else f"-{p[0]}" for p in self.excluded]
        return " ".join(parts)


def _day(name: str, value: str) -> datetime:
    start = day(value.replace("/", "-"))
    if start is None:
        raise QueryError(f"{name}: wants a date like 2026-03-01, not {value[:40]!r}")
    return start


def within(limit: int, value: str, name: str = "") -> str:
    """value, or QueryError naming the field and its limit: never read in part, its end counts."""
    try:
        return limits.within(Limit(name, limit), value)
    except TooLong as exc:
        raise QueryError(str(exc)) from None


def parse(text: str) -> Query:
    """The search box's text as a Query, or QueryError naming what to fix."""
    within(MAX_TEXT, text.strip())
    reading = _Reading()
    for token in _tokens(text):
        reading.add(token)
    return reading.query()


class _Token(NamedTuple):
    """One piece of the box: text (op '') or the value of a known operator."""

    negated: bool
    op: str
    value: str
    quoted: bool


def _tokens(text: str) -> Iterator[_Token]:
    """The box's pieces in order, those with nothing in them left out."""
    for negate, given_op, raw in _TOKEN.findall(text):
        quoted = raw.startswith('"')
        value = raw.strip('"').strip()
        op = given_op.lower()
        if op and op not in OPERATORS:  # "re:" or "http:" are words, not operators
            value, op, quoted = f"{op} {value}", "", False
        if value:
            yield _Token(bool(negate), op, value, quoted)


@dataclass
class _Reading:
    """A Query as it is read, token by token."""

    words: list[str] = field(default_factory=list)
    phrases: list[tuple[str, ...]] = field(default_factory=list)
    excluded: list[tuple[str, ...]] = field(default_factory=list)  # each a word or a phrase
    authors: list[str] = field(default_factory=list)
    subjects: list[str] = field(default_factory=list)
    lists: list[str] = field(default_factory=list)
    after: datetime | None = None
    before: datetime | None = None
    has_attachment: bool = False
    not_authors: list[str] = field(default_factory=list)
    not_subjects: list[str] = field(default_factory=list)
    not_lists: list[str] = field(default_factory=list)
    not_after: datetime | None = None  # -after:D, the posts before D
    not_before: datetime | None = None  # -before:D, the posts on or after D
    no_attachment: bool = False

    def add(self, token: _Token) -> None:
        """Take one piece in: an operator's value to its filter, text to the terms."""
        if token.op:
            self._add_filter(token.op, token.value, token.negated)
        else:
            self._add_text(token)

    def _add_filter(self, op: str, value: str, negated: bool) -> None:
        """An operator's value, to what it finds or (after a minus) to what it leaves out."""
        if op == "from":
            author = within(MAX_AUTHOR, value, "from").lower()
            (self.not_authors if negated else self.authors).append(author)
        elif op == "subject":
            (self.not_subjects if negated else self.subjects).append(value.lower())
        elif op == "list":
            name = within(MAX_LIST, value, "list").lower()
            (self.not_lists if negated else self.lists).append(name)
        elif op == "after" and negated:
            self.not_after = _day("after", value)
        elif op == "after":
            self.after = _day("after", value)  # the last one given counts (each way)
        elif op == "before" and negated:
            self.not_before = _day("before", value)
        elif op == "before":
            self.before = _day("before", value)
        elif op == "has":
            if value.lower() not in ("attachment", "attachments"):
                raise QueryError(f"has: knows only has:attachment, not has:{value[:40]}")
            if negated:
                self.no_attachment = True
            else:
                self.has_attachment = True

    def _add_text(self, token: _Token) -> None:
        terms = tuple(_WORD.findall(token.value))
        if not terms:
            return
        if token.negated:
            self.excluded.append(terms)
        elif token.quoted and len(terms) > 1:
            self.phrases.append(terms)
        else:
            self.words.extend(terms)

    def query(self) -> Query:
        """What was read, once every piece is in; QueryError when it holds too many terms."""
        if len(self.words) + len(self.phrases) + len(self.excluded) > MAX_TERMS:
            raise QueryError(f"too many words: at most {MAX_TERMS}")
        return Query(
            words=tuple(self.words),
            phrases=tuple(self.phrases),
            excluded=tuple(self.excluded),
            authors=tuple(self.authors),
            subjects=tuple(self.subjects),
            lists=tuple(self.lists),
            after=tighter(max, self.after, self.not_before),
            before=tighter(min, self.before, self.not_after),
            has_attachment=self.has_attachment,
            not_authors=tuple(self.not_authors),
            not_subjects=tuple(self.not_subjects),
            not_lists=tuple(self.not_lists),
            no_attachment=self.no_attachment,
        )


def tighter(
    pick: Callable[[list[datetime]], datetime], *bounds: datetime | None
) -> datetime | None:
    """The bound within every given one (pick: max for a start, min for an end), or None."""
    given = [b for b in bounds if b is not None]
    return pick(given) if given else None
