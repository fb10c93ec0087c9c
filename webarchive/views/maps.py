"""A map of who talks to whom: a thread's reply graph, a list's activity, as pages and as JSON."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, jsonify, render_template, url_for
from werkzeug.wrappers import Response

from listgate.models import MailingList, Thread
from webarchive.context import db, list_version, remembered
from webarchive.reading import talk
from webarchive.reading.access import readable_list, readable_thread
from webarchive.rendering import charts
from webarchive.rendering.bodies import display_name
from webarchive.security import current_address

bp = Blueprint("maps", __name__)


def _graph(thread_id: int) -> tuple[Thread, talk.Graph, list[str]]:
    """The readable thread, its reply graph and the names as this reader may see them."""
    session = db()
    thread = readable_thread(session, thread_id)
    graph = talk.thread_graph(session, thread.id)
    anonymous = current_address() is None
    return thread, graph, [display_name(p.name, anonymous) for p in graph.people]


@bp.get("/threads/<id:thread_id>/map")
def thread_map(thread_id: int) -> str:
    """The thread's participants and who replied to whom, drawn and as a table."""
    thread, graph, names = _graph(thread_id)
    return render_template(
        "maps/thread.html",
        thread=thread,
        mlist=thread.mailing_list,
        graph=graph,
        names=names,
        svg=charts.graph_svg(graph, names),
        shown=min(len(graph.people), charts.MAX_NODES),
    )


@bp.get("/api/threads/<id:thread_id>/graph")
def thread_graph(thread_id: int) -> Response:
    """The reply graph as JSON: people (names only, never addresses) and weighted edges."""
    thread, graph, names = _graph(thread_id)
    return jsonify(
        {
            "thread_id": thread.id,
            "subject": thread.subject,
            "people": [{"id": p.key, "name": names[p.key], "posts": p.posts} for p in graph.people],
            "edges": [
                {
                    "source": a,
                    "target": b,
                    "replies": ab + ba,
                    "source_to_target": ab,
                    "target_to_source": ba,
                }
                for a, b, ab, ba in graph.edges()
            ],
        }
    )


def activity(mlist: MailingList) -> talk.Activity:
    """The list's activity, kept until the list changes or the month turns."""
    now = datetime.now(UTC)
    return remembered(
        "activity",
        mlist.id,
        (list_version(mlist), now.year, now.month, now.isocalendar()[1]),
        lambda: talk.list_activity(db(), mlist, now),
    )


@bp.get("/lists/<name>/activity")
def list_activity(name: str) -> str:
    """Posts and new threads per week, and this month's busiest threads and people."""
    mlist = readable_list(db(), name)
    act = activity(mlist)
    anonymous = current_address() is None
    people = [(display_name(n, anonymous), posts, pk) for n, posts, pk in act.top_people]
    return render_template(
        "maps/activity.html",
        mlist=mlist,
        act=act,
        people=people,
        svg=charts.activity_svg(act.weeks),
    )


@bp.get("/api/lists/<name>/activity")
def list_activity_json(name: str) -> Response:
    """The same as JSON."""
    mlist = readable_list(db(), name)
    act = activity(mlist)
    anonymous = current_address() is None
    return jsonify(
        {
            "list": mlist.name,
            "weeks": [
                {"week": w.date().isoformat(), "posts": p, "new_threads": t}
                for w, p, t in act.weeks
            ],
            "month": act.month.strftime("%Y-%m"),
            "top_threads": [
                {"id": tid, "subject": s, "posts": n, "url": url_for("pages.thread", thread_id=tid)}
                for tid, s, n in act.top_threads
            ],
            "top_people": [
                {
                    "name": display_name(n, anonymous),
                    "posts": posts,
                    "url": url_for("pages.author", name=mlist.name, message_pk=pk),
                }
                for n, posts, pk in act.top_people
            ],
        }
    )
