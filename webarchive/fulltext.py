"""Full-text search over visible posts: FTS5 on SQLite, tsvector + GIN on PostgreSQL."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from markupsafe import Markup, escape
from sqlalchemy import Select, column, func, literal_column, select, table
from sqlalchemy.orm import Session

from listgate.models import Message
from listgate.models.archive import VISIBLE

START, STOP = "\x02", "\x03"
FTS = table("messages_fts", column("rowid"), column("rank"))
_WORD = re.compile(r"\w+", re.UNICODE)
# An address, possibly with highlight markers inside it (so a match cannot unmask it).
_MARKED_ADDRESS = re.compile(r"([\w.%+=\x02\x03-]{1,80})@([\w\x02\x03-]+(?:\.[\w\x02\x03-]+)+)")


@dataclass(frozen=True)
class Filters:
    """What narrows a search besides the words."""

    list_ids: set[int] | None = None  # None: every list
    author: str = ""
    since: datetime | None = None
    until: datetime | None = None
    thread_id: int | None = None


@dataclass(frozen=True)
class Hit:
    """One search result: the message and a highlighted snippet."""

    message: Message
    snippet: Markup


def fts5_query(words: str) -> str:
    """The user's words as an FTS5 query: every word must match, prefixes for the last one."""
    tokens = _WORD.findall(words)[:20]
    if not tokens:
        return ""
    quoted = [f'"{t}"' for t in tokens]
    quoted[-1] += "*"
    return " ".join(quoted)


def mask_snippet(snippet: str) -> str:
    """Hide address domains in a snippet, keeping highlight markers balanced."""
    masked = _MARKED_ADDRESS.sub(lambda m: f"{m.group(1)}@…", snippet)
    out, inside = [], False
    for ch in masked:
        if ch == START:
            if inside:
                continue
            inside = True
        elif ch == STOP:
            if not inside:
                continue
            inside = False
        out.append(ch)
    return "".join(out) + (STOP if inside else "")


def highlight(snippet: str) -> Markup:
    """Escape a snippet and turn the database's markers into <mark>."""
    safe = str(escape(mask_snippet(snippet).replace(STOP + START, "")))
    return Markup(safe.replace(START, "<mark>").replace(STOP, "</mark>"))


def _filtered(query: Select, filters: Filters) -> Select:  # type: ignore[type-arg]
    query = query.where(Message.status == VISIBLE)
    if filters.list_ids is not None:
        query = query.where(Message.list_id.in_(filters.list_ids or {-1}))
    if filters.author:
        like = f"%{filters.author.lower()}%"
        query = query.where(func.lower(Message.from_name).like(like) | (Message.from_addr == filters.author.lower()))
    if filters.since is not None:
        query = query.where(Message.date >= filters.since)
    if filters.until is not None:
        query = query.where(Message.date < filters.until)
    if filters.thread_id is not None:
        query = query.where(Message.thread_id == filters.thread_id)
    return query


def search(session: Session, words: str, filters: Filters, page: int = 1, per_page: int = 20,
           by_date: bool = False) -> tuple[list[Hit], bool]:
    """One page of hits (best first, or newest first) and whether there are more."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        query = _postgres(words, by_date)
    else:
        query = _sqlite(words, by_date)
    if query is None:
        return [], False
    query = _filtered(query, filters).limit(per_page + 1).offset((page - 1) * per_page)
    rows = session.execute(query).all()
    hits = [Hit(msg, highlight(snip or msg.body_text[:200])) for msg, snip in rows[:per_page]]
    return hits, len(rows) > per_page


def _sqlite(words: str, by_date: bool) -> Select | None:  # type: ignore[type-arg]
    match = fts5_query(words)
    if not match:
        return None
    snippet = literal_column(f"snippet(messages_fts, 2, '{START}', '{STOP}', '…', 24)")
    query = (select(Message, snippet)
             .join(FTS, FTS.c.rowid == Message.id)
             .where(literal_column("messages_fts").op("MATCH")(match)))
    order = (Message.date.desc(),) if by_date else (FTS.c.rank, Message.date.desc())
    return query.order_by(*order)


def _postgres(words: str, by_date: bool) -> Select | None:  # type: ignore[type-arg]
    if not _WORD.search(words):
        return None
    tsquery = func.websearch_to_tsquery(literal_column("'english'::regconfig"), words)
    vector = literal_column("messages.search_vector")
    options = f"StartSel={START}, StopSel={STOP}, MaxWords=35, MinWords=12, MaxFragments=2, FragmentDelimiter= … "
    snippet = func.ts_headline(literal_column("'english'::regconfig"), func.left(Message.body_text, 100000), tsquery, options)
    query = select(Message, snippet).where(vector.op("@@")(tsquery))
    order = (Message.date.desc(),) if by_date else (func.ts_rank(vector, tsquery).desc(), Message.date.desc())
    return query.order_by(*order)
