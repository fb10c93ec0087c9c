"""The search page and its Atom feed.

The search box's operators and the form's filters together; results grouped by thread on request.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

from flask import Blueprint, abort, render_template, request
from werkzeug.wrappers import Response

from listgate import lists
from listgate.threads import resolve
from webarchive.context import db
from webarchive.ids import day, whole
from webarchive.reading.access import readable_list_ids
from webarchive.reading.fulltext import Filters, Hit
from webarchive.reading.fulltext import search as run_search
from webarchive.reading.querylang import (
    HELP,
    MAX_AUTHOR,
    MAX_LIST,
    MAX_TEXT,
    Query,
    QueryError,
    parse,
    tighter,
    within,
)
from webarchive.urls import carried_args
from webarchive.views.feeds import atom_response

bp = Blueprint("search", __name__)
PER_PAGE = 20
MAX_PAGE = 50
GROUP_POOL = 200  # hits gathered to group by thread


def _date(name: str, end: bool = False) -> datetime | None:
    raw = request.args.get(name, "").strip()
    if not raw:
        return None
    start = day(raw)
    if start is None:
        abort(400, description=f"{name} must be a date like 2026-03-01")
    return start + timedelta(days=1) if end else start


def _list_ids(names: list[str]) -> set[int] | None:
    """Readable lists among names, all at once (every readable one when none; None: every list)."""
    session = db()
    allowed = readable_list_ids(session)
    for name in names:
        mlist = lists.get(session, name)
        readable = mlist is not None and (allowed is None or mlist.id in allowed)
        allowed = (
            ({mlist.id} & (allowed if allowed is not None else {mlist.id}))
            if readable and mlist
            else set()
        )
    return allowed


def _filters(query: Query) -> Filters:
    """The form's filters and the query's operators together (both must hold)."""
    names = [n for n in [request.args.get("list", "").strip().lower()] + list(query.lists) if n]
    thread = request.args.get("thread", "").strip()
    thread_id = whole(thread) if thread else None
    if thread and thread_id is None:
        abort(400, description="thread must be a thread number")
    if thread_id is not None:  # a thread merged since the link was made: the one it joined
        joined = resolve(db(), thread_id)
        thread_id = joined.id if joined is not None else thread_id
    author = request.args.get("author", "").strip()  # within MAX_AUTHOR: _query saw to it
    since = tighter(max, _date("since"), query.after)
    until = tighter(min, _date("until", end=True), query.before)
    return Filters(
        list_ids=_list_ids(names),
        authors=tuple(a for a in (author,) if a) + query.authors,
        subjects=query.subjects,
        since=since,
        until=until,
        thread_id=thread_id,
        attachments=query.has_attachment,
        not_list_ids=frozenset(
            mlist.id for name in query.not_lists if (mlist := lists.get(db(), name)) is not None
        ),
        not_authors=query.not_authors,
        not_subjects=query.not_subjects,
        no_attachments=query.no_attachment,
    )


def _page() -> int:
    page = whole(request.args.get("page", "1"), MAX_PAGE)
    if page is None:
        abort(400, description=f"page must be a number from 1 to {MAX_PAGE}")
    return page


def _query(text: str) -> tuple[Query, str]:
    """The parsed search and '', or an empty Query and the problem to show (box or form)."""
    try:
        within(MAX_LIST, request.args.get("list", "").strip(), "list")
        within(MAX_AUTHOR, request.args.get("author", "").strip(), "author")
        return parse(text), ""
    except QueryError as exc:
        return Query(), str(exc)


def group(hits: list[Hit]) -> list[tuple[Hit, int]]:
    """The best hit of each thread, in order, with how many hits its thread had."""
    best: dict[int, Hit] = {}
    counts: Counter[int] = Counter()
    for hit in hits:
        best.setdefault(hit.message.thread_id, hit)
        counts[hit.message.thread_id] += 1
    return [(hit, counts[thread_id]) for thread_id, hit in best.items()]


@bp.get("/search")
def search() -> tuple[str, int]:
    """Full-text search with operators and list, author, date and thread filters."""
    text = request.args.get("q", "").strip()
    page, (query, problem) = _page(), _query(text)
    by_date, grouped = request.args.get("sort") == "date", request.args.get("group") == "thread"
    filters = _filters(query)
    asked = not query.is_empty or bool(filters.authors)  # an author alone is a search too
    hits: list[Hit] = []
    groups: list[tuple[Hit, int]] = []
    more = False
    if asked and not problem:
        if grouped:
            pool, _ = run_search(db(), query, filters, 1, GROUP_POOL, by_date)
            everything = group(pool)
            groups, more = (
                everything[(page - 1) * PER_PAGE : page * PER_PAGE],
                len(everything) > page * PER_PAGE,
            )
        else:
            hits, more = run_search(db(), query, filters, page, PER_PAGE, by_date)
    args = {k: v for k, v in carried_args("page").items() if v}
    return render_template(
        "search/search.html",
        q=text,
        hits=hits,
        groups=groups,
        grouped=grouped,
        more=more,
        page=page,
        args=args,
        searched=asked or bool(problem),
        problem=problem,
        help=HELP,
        limits=(MAX_TEXT, MAX_AUTHOR, MAX_LIST),
    ), 400 if problem else 200


@bp.get("/search/feed")
def search_feed() -> Response:
    """The newest posts matching a search, as Atom."""
    text = request.args.get("q", "").strip()
    query, problem = _query(text)
    if problem:
        abort(400, description=problem)
    filters = _filters(query)
    asked = not query.is_empty or bool(filters.authors)
    hits, _ = run_search(db(), query, filters, 1, 50, by_date=True) if asked else ([], False)
    return atom_response(f"Search: {text}", [h.message for h in hits], request.full_path)
