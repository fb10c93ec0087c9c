"""The pages of posts (a thread's, a message's): their posts as HTML, the tops of posts cached."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from flask import g, render_template, request, url_for
from markupsafe import Markup

from listgate.models import MailingList, Thread
from listgate.states import PostState
from webarchive.context import db, resources, settings
from webarchive.reading.access import is_moderator
from webarchive.reading.threads import Node, fill_attachments
from webarchive.rendering import bodies, clock
from webarchive.rendering import rows as rows_html
from webarchive.rendering.bodies import FragmentCache
from webarchive.security import csrf_token, current_address
from webarchive.templating import anonymous, font_choice, macros, reader_zone, request_now


class PageConstants(NamedTuple):
    """What every post of one page shares, looked up once per request."""

    cache: FragmentCache  # the posts' tops, for every request of this process
    root: str
    anonymous: bool
    zone: ZoneInfo | None
    now: datetime


def posts_html(
    nodes: list[Node],
    list_address: str,
    mlist: MailingList,
    moderator: bool,
    depth_class: bool = True,
    heading: str = "h2",
) -> list[bodies.Page]:
    """A page's posts in order, one piece each, then the reader's own end.

    The top of each post comes from the cache (the missing ones are rendered together).
    """
    zone = _page_constants().zone
    address = current_address()
    tops = _tops(nodes, list_address, mlist.name, depth_class, heading, address)
    reader = rows_html.Reader.of(
        address is not None,
        csrf_token() if address else "",
        url_for("auth.signin", next=request.full_path),
        moderator,
        zone,
    )
    tombstone, placeholder, owner = macros("pages/_post.html", "tombstone", "placeholder", "owner")
    out: list[bodies.Page] = []
    unread, last = False, len(nodes) - 1
    for i, (node, top) in enumerate(zip(nodes, tops, strict=True)):
        parts: list[str] = []
        if node.new and not unread:
            parts.append('<p id="unread" class="new-note">New since your last visit</p>')
            unread = True
        m = node.message
        if top is None:
            depth = node.depth if depth_class else None
            parts.append(
                tombstone(node, depth, moderator)
                if m.status == PostState.REMOVED
                else placeholder(node, depth)
            )
        else:
            parts.append(top)
            if address is not None and address == m.from_addr:
                parts.append(owner(m, address))
            parts.append(
                rows_html.end_html(
                    node, nodes[i - 1] if i else None, nodes[i + 1] if i < last else None, reader
                )
            )
        out.append(bodies.Page("".join(parts)))
    return out


def _tops(
    nodes: list[Node],
    list_address: str,
    list_name: str,
    depth_class: bool,
    heading: str,
    address: str | None,
) -> list[Markup | None]:
    """The part of each visible post the same for every reader of one kind (None for the others).

    Cached: archived posts change seldom, long threads are read often. The posts missing from the
    cache get their attachments in one query and are rendered; the others need neither.
    """
    cache, root, anon, zone, now = _page_constants()
    tops: list[Markup | None] = []
    missing: dict[int, tuple[object, ...]] = {}  # index of a post not in the cache -> its key
    for i, n in enumerate(nodes):
        m, parent = n.message, n.parent
        if m.status != PostState.VISIBLE:
            tops.append(None)
            continue
        # A post's date and the sender's offset never change: how long ago it was, and the zone, do.
        key: tuple[object, ...] = (
            m.id,
            m.message_id,
            root,
            anon,
            address is not None,
            n.depth if depth_class else None,
            heading,
            clock.ago(m.date, now),
            zone,
            parent.id if parent else None,
            parent.status if parent else None,
            list_address,
            list_name,
            n.number,
            n.parent_number,
            n.reported,
            m.edited_at,
        )
        tops.append(cache.get(key))
        if tops[-1] is None:
            missing[i] = key
    if missing:
        fill_attachments(db(), [nodes[i] for i in missing])
        (top,) = macros("pages/_post.html", "top")
        for i, key in missing.items():
            n = nodes[i]
            depth = n.depth if depth_class else None
            when = clock.time_html(n.message.date, n.message.date_offset, zone, now)
            html = Markup(top(n, list_address, list_name, depth, heading, when, address))
            tops[i] = html
            cache.put(key, html)
    return tops


def _page_constants() -> PageConstants:
    """What every post of one page shares, looked up once per request."""
    if "_page_constants" not in g:
        g._page_constants = PageConstants(
            resources().extra.setdefault("post_tops", FragmentCache(8192)),
            request.script_root,
            anonymous(),
            reader_zone(),
            request_now(),
        )
    return g._page_constants


def posts_page(
    template: str, found: Thread, shown: list[Node], tree: bool, heading: str = "h2", /, **page: Any
) -> str:
    """A page of a thread's posts (the thread's, a message's): what both show, then page."""
    mlist = found.mailing_list
    list_address, moderator = mlist.address(settings().domain), is_moderator(mlist)
    return render_template(
        template,
        thread=found,
        mlist=mlist,
        font=font_choice(),
        list_address=list_address,
        moderator=moderator,
        articles=posts_html(shown, list_address, mlist, moderator, tree, heading),
        **page,
    )
