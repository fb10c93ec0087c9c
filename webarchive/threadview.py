"""What the thread page adds around the posts: its outline, the threads before and after it, unread posts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from markupsafe import Markup, escape
from sqlalchemy import and_, bindparam, or_, select
from sqlalchemy.orm import Session, sessionmaker

from listgate import store
from listgate.db import transaction
from listgate.models import ReadMark, Thread
from listgate.models.archive import utcnow
from webarchive.clock import ago, local
from webarchive.queries import Node
from webarchive.render import display_name

_OUTLINE_ROW = '<li class="d{depth}"><a href="#m{pk}">#{num} {name}</a> <span class="muted">{when}</span>{mark}</li>'


def outline_html(nodes: list[Node], anonymous: bool, tz, now: datetime) -> Markup:  # type: ignore[no-untyped-def]
    """The thread's skeleton (who, when, how deep), one row per post in tree order."""
    rows = []
    for n in nodes:
        m = n.message
        name = "(hidden post)" if n.hidden else display_name(m.from_name, anonymous)
        when = ago(m.date, now) or local(m.date, tz)
        rows.append(_OUTLINE_ROW.format(depth=min(n.depth, 12), pk=m.id, num=n.number, name=escape(name),
                                        when=escape(when), mark=' <span class="new">new</span>' if n.new else ""))
    return Markup("".join(rows))


def neighbours(session: Session, thread: Thread) -> tuple[tuple[int, str] | None, tuple[int, str] | None]:
    """(newer, older) threads of the same list by last activity, as (id, subject), or None at either end."""
    base = select(Thread.id, Thread.subject).where(Thread.list_id == thread.list_id, Thread.merged_into_id.is_(None),
                                                   Thread.message_count > 0, Thread.id != thread.id)
    at, pk = thread.last_activity, thread.id
    newer = session.execute(base.where(or_(Thread.last_activity > at, and_(Thread.last_activity == at, Thread.id > pk)))
                            .order_by(Thread.last_activity, Thread.id).limit(1)).first()
    older = session.execute(base.where(or_(Thread.last_activity < at, and_(Thread.last_activity == at, Thread.id < pk)))
                            .order_by(Thread.last_activity.desc(), Thread.id.desc()).limit(1)).first()
    return (tuple(newer) if newer else None), (tuple(older) if older else None)  # type: ignore[return-value]


_MARK = select(ReadMark.last_seen_pk, ReadMark.visited_at).where(ReadMark.address == bindparam("address"),
                                                                ReadMark.thread_id == bindparam("thread_id"))


def visit(reader: Session, writer: sessionmaker[Session], address: str, thread_id: int,
          nodes: list[Node]) -> datetime | None:
    """Mark posts newer than the reader's last visit as new, remember this visit; the last visit's time or None."""
    mark = reader.execute(_MARK, {"address": address, "thread_id": thread_id}).first()
    newest = max((n.message.id for n in nodes), default=0)
    if mark is not None:
        for n in nodes:
            n.new = n.message.id > mark.last_seen_pk and not n.hidden
        if newest <= mark.last_seen_pk:
            return mark.visited_at
    with transaction(writer) as session:
        stmt = store.of(session).insert(ReadMark).values(address=address, thread_id=thread_id, last_seen_pk=newest, visited_at=utcnow())
        session.execute(stmt.on_conflict_do_update(index_elements=[ReadMark.address, ReadMark.thread_id],
                                                   set_={"last_seen_pk": newest, "visited_at": utcnow()}))
    return mark.visited_at if mark is not None else None


_VOTE_FORM = ('<form method="post" action="{root}/messages/{pk}/vote" class="inline">'
              '<input type="hidden" name="csrf_token" value="{token}">'
              '<button type="submit" name="valuable" value="yes"{yes}>Yes</button> / '
              '<button type="submit" name="valuable" value="no"{no}>No</button></form>')
_CHOSEN = ' aria-pressed="true" class="chosen"'
_VARIANT = ('<p class="notice variant">A different message with the same Message-ID arrived on {when} '
            '(<a href="{root}/messages/{pk}/variants/{id}.eml">raw</a>).</p>')


@dataclass(frozen=True)
class Reader:
    """Who reads the page, as the end of each post needs it (root is HTML-escaped already)."""

    root: str
    signed_in: bool
    token: str
    signin_here: str
    moderator: bool
    zone: ZoneInfo | None


def end_html(node: Node, prev: Node | None, nxt: Node | None, reader: Reader) -> str:
    """The per-reader end of a post: new since the last visit, the steps to the posts around it, the vote line,
    the moderators' link, then the close of its footer, its variants and the close of the post."""
    pk, root = node.message.id, reader.root
    parts = ['<span class="new">New since your last visit</span>'] if node.new else []
    steps = []
    if prev is not None:
        steps.append(f'<a href="#m{prev.message.id}" title="previous post">↑ #{prev.number}</a>')
    if nxt is not None:
        steps.append(f'<a href="#m{nxt.message.id}" title="next post">↓ #{nxt.number}</a>')
    if steps:
        parts.append(f'<span class="step">{" ".join(steps)}</span>')
    sentence = (f"{node.votes_yes} out of {node.votes_total} found this valuable. Do you?" if node.votes_total
                else "Do you find this valuable?")
    if reader.signed_in:
        answer = _VOTE_FORM.format(root=root, pk=pk, token=escape(reader.token),
                                   yes=_CHOSEN if node.my_vote is True else "", no=_CHOSEN if node.my_vote is False else "")
    else:
        link = f"{escape(reader.signin_here)}%23m{pk}"
        answer = f'<a href="{link}">Yes</a> / <a href="{link}">No</a>'
    parts.append(f'<span class="votes">{sentence} {answer}</span>')
    if reader.moderator:
        parts.append(f'<a href="{root}/moderation/messages/{pk}/remove">Take down</a>')
    variants = "".join(_VARIANT.format(when=escape(local(v.received_at, reader.zone)), root=root, pk=pk, id=v.id)
                       for v in node.variants)
    return "\n    " + "\n    ".join(parts) + "\n  </footer>\n  " + variants + "\n</article>\n"
