"""The search page and its Atom feed."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from flask import Blueprint, abort, render_template, request

from listgate import lists
from webarchive.access import readable_list_ids
from webarchive.context import db
from webarchive.feeds import atom_response
from webarchive.fulltext import Filters, search as run_search

bp = Blueprint("search", __name__)
PER_PAGE = 20
MAX_PAGE = 50


def _date(name: str, end: bool = False) -> datetime | None:
    raw = request.args.get(name, "").strip()
    if not raw:
        return None
    try:
        day = datetime.strptime(raw, "%Y-%m-%d").replace(tzinfo=timezone.utc)
    except ValueError:
        abort(400, description=f"{name} must be a date like 2026-03-01")
    return day + timedelta(days=1) if end else day


def _filters() -> Filters:
    """Filters from the query string; a list the visitor may not read matches nothing."""
    session = db()
    allowed = readable_list_ids(session)
    name = request.args.get("list", "").strip()
    if name:
        mlist = lists.get(session, name)
        ok = mlist is not None and (allowed is None or mlist.id in allowed)
        allowed = {mlist.id} if ok and mlist is not None else set()
    thread = request.args.get("thread", "").strip()
    if thread and not thread.isdigit():
        abort(400, description="thread must be a thread number")
    return Filters(list_ids=allowed, author=request.args.get("author", "").strip()[:200],
                   since=_date("since"), until=_date("until", end=True),
                   thread_id=int(thread) if thread else None)


def _page() -> int:
    raw = request.args.get("page", "1")
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
        abort(400, description=f"page must be a number from 1 to {MAX_PAGE}")
    return int(raw)


@bp.get("/search")
def search():  # type: ignore[no-untyped-def]
    """Full-text search with list, author, date and thread filters."""
    words = request.args.get("q", "").strip()[:500]
    page, filters = _page(), _filters()
    by_date = request.args.get("sort") == "date"
    hits, more = run_search(db(), words, filters, page, PER_PAGE, by_date) if words else ([], False)
    args = {k: v for k, v in request.args.items() if k != "page" and v}
    return render_template("search/search.html", q=words, hits=hits, more=more, page=page, args=args,
                           searched=bool(words))


@bp.get("/search/feed")
def search_feed():  # type: ignore[no-untyped-def]
    """The newest posts matching a search, as Atom."""
    words = request.args.get("q", "").strip()[:500]
    hits, _ = run_search(db(), words, _filters(), 1, 50, by_date=True) if words else ([], False)
    return atom_response(f"Search: {words}", [h.message for h in hits], request.full_path)
