"""The rows long pages repeat, each rendered with one format string (see webarchive.templating).

A list page of 50 threads, a month of thousands of posts, a long thread's outline and the end
of each of its posts spent most of their time in a macro, url_for and filters per row. Here
every text value is escaped, and links are the routes' own patterns (webarchive.urls).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from markupsafe import Markup, escape

from webarchive import urls
from webarchive.reading.listing import MonthRow, ThreadRow
from webarchive.reading.threads import Node
from webarchive.rendering.bodies import display_name
from webarchive.rendering.clock import ago, local

_THREAD_ROW = (
    '<li{cls}>\n  {badge}\n  <h2><a href="{thread}">{subject}</a></h2>\n'
    '  <p class="meta">started by {name} · {posts} post{ps} · {people} participant{pps} · '
    'last activity <time datetime="{iso}">{human}</time></p>\n</li>\n'
)
_MONTH_ROW = (
    '<tr><td><a href="{thread}#m{id}">{subject}</a></td><td>{name}</td>'
    '<td><time datetime="{iso}">{human}</time></td></tr>\n'
)
_OUTLINE_ROW = (
    '<li class="d{depth}"><a href="#m{pk}">#{num} {name}</a> '
    '<span class="muted">{when}</span>{mark}</li>'
)
_VOTE_FORM = (
    '<form method="post" action="{vote}" class="inline">'
    '<input type="hidden" name="csrf_token" value="{token}">'
    '<button type="submit" name="valuable" value="yes"{yes}>Yes</button> / '
    '<button type="submit" name="valuable" value="no"{no}>No</button></form>'
)
_CHOSEN = ' aria-pressed="true" class="chosen"'
_VARIANT = (
    '<p class="notice variant">A different message with the same Message-ID arrived on {when} '
    '(<a href="{raw}">raw</a>).</p>'
)


@dataclass(frozen=True)
class Reader:
    """Who reads the page, as the end of each post needs it.

    Links are the routes' patterns, HTML-escaped.
    """

    signed_in: bool
    token: str
    signin_here: str
    moderator: bool
    zone: ZoneInfo | None
    vote: str  # acting.vote, with {message_pk}
    take_down: str  # takedown.form, with {message_pk}
    variant: str  # exports.variant_raw, with {message_pk} and {variant_id}

    @classmethod
    def of(
        cls, signed_in: bool, token: str, signin_here: str, moderator: bool, zone: ZoneInfo | None
    ) -> Reader:
        """The reader of this request, with the links read from the routes once per page."""
        return cls(
            signed_in,
            token,
            signin_here,
            moderator,
            zone,
            *(
                str(escape(urls.pattern(e)))
                for e in ("acting.vote", "takedown.form", "exports.variant_raw")
            ),
        )


def threads_html(rows: Sequence[ThreadRow], anonymous: bool, tz: ZoneInfo | None = None) -> Markup:
    """The <li> of each thread row, dates in the reader's zone tz (UTC when None)."""
    out = []
    fmt = _THREAD_ROW.replace("{thread}", urls.pattern("pages.thread")).format
    for r in rows:
        out.append(
            fmt(
                cls=' class="featured"' if r.featured else "",
                badge='<p class="badge">This is a featured thread</p>' if r.featured else "",
                thread_id=r.id,
                subject=escape(r.subject or "(no subject)"),
                name=escape(display_name(r.starter_name, anonymous)),
                posts=r.message_count,
                ps="" if r.message_count == 1 else "s",
                people=r.participant_count,
                pps="" if r.participant_count == 1 else "s",
                iso=r.last_activity.isoformat(),
                human=local(r.last_activity, tz),
            )
        )
    return Markup("".join(out))


def month_html(rows: Sequence[MonthRow], anonymous: bool, tz: ZoneInfo | None = None) -> Markup:
    """The <tr> of each post of a month, dates in the reader's zone tz (UTC when None)."""
    names: dict[str, str] = {}
    out = []
    fmt = _MONTH_ROW.replace("{thread}", urls.pattern("pages.thread")).format
    for pk, thread_id, subject, from_name, stored in rows:
        name = names.get(from_name)
        if name is None:
            name = names[from_name] = str(escape(display_name(from_name, anonymous)))
        when = _aware(stored)
        out.append(
            fmt(
                thread_id=thread_id,
                id=pk,
                subject=escape(subject or "(no subject)"),
                name=name,
                iso=when.isoformat(),
                human=local(when, tz),
            )
        )
    return Markup("".join(out))


def _aware(value: datetime | str) -> datetime:
    """A stored date as aware UTC (SQLite keeps naive UTC text, PostgreSQL gives aware ones)."""
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def outline_html(nodes: list[Node], anonymous: bool, tz: ZoneInfo | None, now: datetime) -> Markup:
    """The thread's skeleton (who, when, how deep), one row per post in tree order."""
    rows = []
    for n in nodes:
        m = n.message
        name = "(hidden post)" if n.hidden else display_name(m.from_name, anonymous)
        when = ago(m.date, now) or local(m.date, tz)
        rows.append(
            _OUTLINE_ROW.format(
                depth=min(n.depth, 12),
                pk=m.id,
                num=n.number,
                name=escape(name),
                when=escape(when),
                mark=' <span class="new">new</span>' if n.new else "",
            )
        )
    return Markup("".join(rows))


def end_html(node: Node, prev: Node | None, nxt: Node | None, reader: Reader) -> str:
    """The per-reader end of a post.

    New since the last visit, the steps to the posts around it, the vote line, the moderators'
    link, then the close of its footer, its variants and the close of the post.
    """
    pk = node.message.id
    parts = ['<span class="new">New since your last visit</span>'] if node.new else []
    steps = []
    if prev is not None:
        steps.append(f'<a href="#m{prev.message.id}" title="previous post">↑ #{prev.number}</a>')
    if nxt is not None:
        steps.append(f'<a href="#m{nxt.message.id}" title="next post">↓ #{nxt.number}</a>')
    if steps:
        parts.append(f'<span class="step">{" ".join(steps)}</span>')
    sentence = (
        f"{node.votes_yes} out of {node.votes_total} found this valuable. Do you?"
        if node.votes_total
        else "Do you find this valuable?"
    )
    if reader.signed_in:
        answer = _VOTE_FORM.format(
            vote=reader.vote.format(message_pk=pk),
            token=escape(reader.token),
            yes=_CHOSEN if node.my_vote is True else "",
            no=_CHOSEN if node.my_vote is False else "",
        )
    else:
        link = f"{escape(reader.signin_here)}%23m{pk}"
        answer = f'<a href="{link}">Yes</a> / <a href="{link}">No</a>'
    parts.append(f'<span class="votes">{sentence} {answer}</span>')
    if reader.moderator:
        parts.append(f'<a href="{reader.take_down.format(message_pk=pk)}">Take down</a>')
    variants = "".join(
        _VARIANT.format(
            when=escape(local(v.received_at, reader.zone)),
            raw=reader.variant.format(message_pk=pk, variant_id=v.id),
        )
        for v in node.variants
    )
    return "\n    " + "\n    ".join(parts) + "\n  </footer>\n  " + variants + "\n</article>\n"
