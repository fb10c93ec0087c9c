"""Full-text search over visible posts: FTS5 on SQLite, tsvector + GIN on PostgreSQL.

Rare words are ranked by the database over every match. FTS5's bm25 costs time in proportion
to how many posts hold each word (3 s for two words in 70% of a million posts), so for a
common word the newest CANDIDATES matches (newest first by archive number, which FTS5
delivers without sorting) are scored in Python and older matches follow newest first.
Snippets are made only for the posts shown.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar, TypeVarTuple

from markupsafe import Markup, escape
from sqlalchemy import (
    ColumnClause,
    ColumnElement,
    Row,
    Select,
    SQLColumnExpression,
    column,
    exists,
    func,
    literal_column,
    not_,
    or_,
    select,
    table,
)
from sqlalchemy.orm import Session

from listgate import store
from listgate.models import Attachment, Message
from listgate.states import PostState
from webarchive.reading.querylang import Query
from webarchive.reading.snippets import SCORE_CHARS, START, STOP, make_snippet, score, token_pattern

CANDIDATES = 100  # newest matches of common words, ranked by relevance; older ones follow by date
COMMON = 5_000  # posts holding a word, above which it is common
FTS = table("messages_fts", column("rowid"), column("rank"))
_COMMON_WORDS: dict[str, set[str]] = {}  # database URL -> words known to be common
_MARKER = re.compile("[\x02\x03]")
# An address, possibly with highlight markers inside it (so a match cannot unmask it).
_MARKED_ADDRESS = re.compile(r"([\w.%+=\x02\x03-]{1,80})@([\w\x02\x03-]+(?:\.[\w\x02\x03-]+)+)")
Columns = TypeVarTuple("Columns")
Candidate = TypeVar("Candidate", bound=Row[*tuple[Any, ...]])  # (id, date, …) of a match


@dataclass(frozen=True)
class Filters:
    """What narrows a search besides the words."""

    list_ids: set[int] | None = None  # None: every list
    # any of them: an address, or part of a name or the start of an address
    authors: tuple[str, ...] = ()
    subjects: tuple[str, ...] = ()  # all of them, each part of the subject
    since: datetime | None = None
    until: datetime | None = None
    thread_id: int | None = None
    attachments: bool = False
    # what a minus before an operator leaves out, by the same rules as the operator
    not_list_ids: frozenset[int] = frozenset()
    not_authors: tuple[str, ...] = ()  # none of them
    not_subjects: tuple[str, ...] = ()  # none of them
    no_attachments: bool = False


@dataclass(frozen=True)
class Hit:
    """One search result: the message and a highlighted snippet."""

    message: Message
    snippet: Markup


def mask_snippet(snippet: str) -> str:
    """Hide address domains in a snippet, keeping highlight markers balanced."""
    masked = _MARKED_ADDRESS.sub(lambda m: f"{m.group(1)}@…", snippet)
    out, pos, inside = [], 0, False
    for marker in _MARKER.finditer(masked):
        out.append(masked[pos : marker.start()])
        pos = marker.end()
        if (marker.group() == START) != inside:  # an opening outside a mark, or a closing inside
            out.append(marker.group())
            inside = not inside
    out.append(masked[pos:])
    return "".join(out) + (STOP if inside else "")


def highlight(snippet: str) -> Markup:
    """Escape a snippet and turn the markers into <mark>."""
    safe = str(escape(mask_snippet(snippet).replace(STOP + START, "")))
    return Markup(safe.replace(START, "<mark>").replace(STOP, "</mark>"))


def _like(value: str) -> str:
    """value as a LIKE pattern matching it literally."""
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _author(author: str, ids: SQLColumnExpression[int]) -> ColumnElement[bool]:
    """One from: value: an address through its index, else part of the name or start of address."""
    if "@" in author:  # checked through the from_addr index before a row is loaded
        return ids.in_(select(Message.id).where(Message.from_addr == author).scalar_subquery())
    return or_(
        func.lower(Message.from_name).like(f"%{_like(author)}%", escape="\\"),
        Message.from_addr.like(f"{_like(author)}%", escape="\\"),
    )


def _subject(subject: str) -> ColumnElement[bool]:
    """One subject: value: part of the subject, in any case."""
    return func.lower(Message.subject).like(f"%{_like(subject.lower())}%", escape="\\")


def _attached() -> ColumnElement[bool]:
    """The post has a file attached."""
    return exists(select(Attachment.id).where(Attachment.message_pk == Message.id))


def _filtered(
    query: Select[*Columns], filters: Filters, ids: SQLColumnExpression[int]
) -> Select[*Columns]:
    """Filters on messages, the same SQL on both databases (ids is the matched post's id)."""
    query = _left_out(query.where(Message.status == PostState.VISIBLE), filters, ids)
    if filters.list_ids is not None:
        query = query.where(Message.list_id.in_(filters.list_ids or {-1}))
    if filters.authors:
        query = query.where(or_(*(_author(a.lower(), ids) for a in filters.authors)))
    for subject in filters.subjects:
        query = query.where(_subject(subject))
    if filters.attachments:
        query = query.where(_attached())
    if filters.since is not None:
        query = query.where(Message.date >= filters.since)
    if filters.until is not None:
        query = query.where(Message.date < filters.until)
    if filters.thread_id is not None:
        query = query.where(Message.thread_id == filters.thread_id)
    return query


def _left_out(
    query: Select[*Columns], filters: Filters, ids: SQLColumnExpression[int]
) -> Select[*Columns]:
    """Leave out what the operators after a minus would find, matched as those operators match."""
    if filters.not_list_ids:
        query = query.where(Message.list_id.not_in(filters.not_list_ids))
    if filters.not_authors:
        query = query.where(not_(or_(*(_author(a.lower(), ids) for a in filters.not_authors))))
    for subject in filters.not_subjects:
        query = query.where(not_(_subject(subject)))
    if filters.no_attachments:
        query = query.where(not_(_attached()))
    return query


def search(
    session: Session,
    query: Query,
    filters: Filters,
    page: int = 1,
    per_page: int = 20,
    by_date: bool = False,
) -> tuple[list[Hit], bool]:
    """One page of hits (best or newest first; newest without words) and whether there are more."""
    postgres = store.of(session).ranked_search
    offset = (page - 1) * per_page
    tokens = query.tokens()
    if not query.has_text:
        ids = _newest(session, query, filters, offset, per_page + 1, postgres)
    elif postgres:
        rows = _pg_candidates(session, query, filters, max(CANDIDATES, offset + per_page + 1))
        ids = [r[0] for r in _order(rows, tokens, by_date, True)[offset : offset + per_page + 1]]
    else:
        ids = _sqlite_page(session, query, tokens, filters, offset, per_page + 1, by_date)
    shown = ids[:per_page]
    snippets = _pg_headlines(session, query, shown) if postgres and query.has_text else {}
    pattern = token_pattern(tokens, prefix_last=bool(query.words))
    messages = (
        {m.id: m for m in session.scalars(select(Message).where(Message.id.in_(shown)))}
        if shown
        else {}
    )
    hits = [
        Hit(
            messages[pk],
            highlight(snippets.get(pk) or make_snippet(messages[pk].body_text, pattern)),
        )
        for pk in shown
        if pk in messages
    ]
    return hits, len(ids) > per_page


def _newest(
    session: Session, query: Query, filters: Filters, offset: int, limit: int, postgres: bool
) -> list[int]:
    """Ids of the posts matching only operators (from:, dates…) and exclusions, newest first."""
    stmt = _filtered(select(Message.id), filters, Message.id)
    if query.excluded:
        stmt = stmt.where(_excluded(query, postgres))
    return list(
        session.scalars(
            stmt.order_by(Message.date.desc(), Message.id.desc()).limit(limit).offset(offset)
        )
    )


def _excluded(query: Query, postgres: bool) -> ColumnElement[bool]:
    """A condition leaving out posts holding any excluded word or phrase."""
    if postgres:
        vector: ColumnClause[Any] = literal_column("messages.search_vector")
        return not_(
            vector.op("@@")(func.websearch_to_tsquery(_tsquery(), query.websearch_excluded()))
        )
    match = select(FTS.c.rowid).where(
        literal_column("messages_fts").op("MATCH")(query.fts5_excluded())
    )
    return Message.id.not_in(match.scalar_subquery())


def _order(
    rows: Sequence[Candidate], tokens: list[str], by_date: bool, postgres: bool
) -> list[Candidate]:
    """The first CANDIDATES rows best (or newest) first, then the rest as found (newest first)."""
    head, tail = list(rows[:CANDIDATES]), list(rows[CANDIDATES:])
    if by_date:
        head = sorted(head, key=lambda r: (r[1], r[0]), reverse=True)
    elif postgres:
        head = sorted(head, key=lambda r: (r[2], r[1], r[0]), reverse=True)
    else:
        avg = sum(len(r[4] or "") for r in head) / max(len(head), 1)
        scored = [(score(tokens, r[2] or "", r[3] or "", r[4] or "", avg), r) for r in head]
        head = [r for _, r in sorted(scored, key=lambda s: (s[0], s[1][1], s[1][0]), reverse=True)]
    return head + tail


def _fts_query(
    match: str, filters: Filters, *columns: SQLColumnExpression[Any]
) -> Select[*tuple[Any, ...]]:
    query = (
        select(*columns)
        .select_from(FTS)
        .join(Message, Message.id == FTS.c.rowid)
        .where(literal_column("messages_fts").op("MATCH")(match))
    )
    # "+": the address filter must not become an FTS5 rowid lookup per post of the author
    return _filtered(query, filters, literal_column("+messages_fts.rowid"))


def _common(session: Session, tokens: list[str]) -> bool:
    """Whether a word is in more than COMMON posts (FTS5 ranks cost time in proportion to that).

    A word once common stays so (posts are seldom deleted): remembered per process.
    """
    known = _COMMON_WORDS.setdefault(str(session.get_bind().engine.url), set())
    if any(t in known for t in tokens):
        return True
    probes = [
        select(FTS.c.rowid)
        .where(literal_column("messages_fts").op("MATCH")('"' + t.replace('"', "") + '"'))
        .limit(1)
        .offset(COMMON)
        .scalar_subquery()
        for t in tokens
    ]
    probed = session.execute(select(*probes)).one()  # one probe per token
    found = [t for t, v in zip(tokens, probed, strict=True) if v is not None]
    if found and len(known) < 10_000:
        known.update(found)
    return bool(found)


def _sqlite_page(
    session: Session,
    query: Query,
    tokens: list[str],
    filters: Filters,
    offset: int,
    limit: int,
    by_date: bool,
) -> list[int]:
    """Ids of one page: whole words, and the last word as a prefix too if whole words fill no page.

    Rare words: FTS5 ranks every match (bm25). Common words: the newest CANDIDATES matches
    are scored here and older ones follow newest first.
    """
    common, ids = _common(session, tokens), []
    for prefix in (False, True) if query.words else (False,):
        match = _match(query, prefix)
        if common:
            want = max(CANDIDATES, offset + limit)
            rows = session.execute(
                _fts_query(
                    match,
                    filters,
                    Message.id,
                    Message.date,
                    Message.subject,
                    Message.from_name,
                    func.substr(Message.body_text, 1, SCORE_CHARS),
                )
                .order_by(FTS.c.rowid.desc())
                .limit(want)
            ).all()
            ids, enough = (
                [r[0] for r in _order(rows, tokens, by_date, False)[offset : offset + limit]],
                len(rows),
            )
        else:
            order = (
                (Message.date.desc(), Message.id.desc())
                if by_date
                else (FTS.c.rank, Message.date.desc())
            )
            ids = list(
                session.scalars(
                    _fts_query(match, filters, Message.id)
                    .order_by(*order)
                    .limit(limit)
                    .offset(offset)
                )
            )
            enough = (
                len(ids)
                if offset == 0
                else len(session.execute(_fts_query(match, filters, Message.id).limit(limit)).all())
            )
        if prefix or enough >= limit:
            break
    return ids


def _match(query: Query, prefix: bool) -> str:
    """The FTS5 MATCH expression: every positive term, none of the excluded ones."""
    positive = query.fts5(prefix)
    return f"({positive}) NOT ({query.fts5_excluded()})" if query.excluded else positive


def _tsquery() -> ColumnClause[Any]:
    return literal_column("'english'::regconfig")


def _pg_candidates(
    session: Session, query: Query, filters: Filters, want: int
) -> Sequence[Row[int, datetime, float]]:
    """(id, date, rank) of the newest matches on PostgreSQL."""
    tsquery = func.websearch_to_tsquery(_tsquery(), query.websearch())
    vector: ColumnClause[Any] = literal_column("messages.search_vector")
    stmt = select(Message.id, Message.date, func.ts_rank(vector, tsquery)).where(
        vector.op("@@")(tsquery)
    )
    return session.execute(
        _filtered(stmt, filters, Message.id).order_by(Message.id.desc()).limit(want)
    ).all()


def _pg_headlines(session: Session, query: Query, ids: list[int]) -> dict[int, str]:
    """ts_headline snippets (stemmed matches marked) for the posts shown only."""
    if not ids:
        return {}
    tsquery = func.websearch_to_tsquery(_tsquery(), query.websearch())
    options = (
        f"StartSel={START}, StopSel={STOP}, "
        "MaxWords=35, MinWords=12, MaxFragments=2, FragmentDelimiter= … "
    )
    snippet = func.ts_headline(_tsquery(), func.left(Message.body_text, 100000), tsquery, options)
    return dict(session.execute(select(Message.id, snippet).where(Message.id.in_(ids))).all())
