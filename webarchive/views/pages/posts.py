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


class _Shape(NamedTuple):
    """How one page shows each of its posts."""

    list_address: str
    list_name: str
    depth_class: bool  # each post's depth as a class (the tree view)
    heading: str
    address: str | None  # the reader's; None when nobody is signed in


_UNREAD = '<p id="unread" class="new-note">New since your last visit</p>'


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
    address = current_address()
    tops = _tops(nodes, _Shape(list_address, mlist.name, depth_class, heading, address))
    reader = rows_html.Reader.of(
        address is not None,
        csrf_token() if address else "",
        url_for("auth.signin", next=request.full_path),
        moderator,
        _page_constants().zone,
    )
    (owner,) = macros("pages/_post.html", "owner")
    first_new = next((i for i, node in enumerate(nodes) if node.new), None)
    out: list[bodies.Page] = []
    for i, (node, top) in enumerate(zip(nodes, tops, strict=True)):
        parts = [_UNREAD] if i == first_new else []
        if top is None:
            parts.append(_hidden_html(node, node.depth if depth_class else None, moderator))
        else:
            parts.append(top)
            if address is not None and address == node.message.from_addr:
                parts.append(owner(node.message, address))
            before = nodes[i - 1] if i else None
            after = nodes[i + 1] if i + 1 < len(nodes) else None
            parts.append(rows_html.end_html(node, before, after, reader))
        out.append(bodies.Page("".join(parts)))
    return out


def _hidden_html(node: Node, depth: int | None, moderator: bool) -> str:
    """What stands for a post that is not shown: a removed post's tombstone, or a placeholder."""
    tombstone, placeholder = macros("pages/_post.html", "tombstone", "placeholder")
    if node.message.status == PostState.REMOVED:
        return tombstone(node, depth, moderator)
    return placeholder(node, depth)


def _tops(nodes: list[Node], shape: _Shape) -> list[Markup | None]:
    """The part of each visible post the same for every reader of one kind (None for the others).

    Cached: archived posts change seldom, long threads are read often. The posts missing from the
    cache get their attachments in one query and are rendered; the others need neither.
    """
    page = _page_constants()
    tops: list[Markup | None] = []
    missing: dict[int, tuple[object, ...]] = {}  # index of a post not in the cache -> its key
    for i, n in enumerate(nodes):
        if n.message.status != PostState.VISIBLE:
            tops.append(None)
            continue
        key = _top_key(n, page, shape)
        tops.append(page.cache.get(key))
        if tops[-1] is None:
            missing[i] = key
    if missing:
        fill_attachments(db(), [nodes[i] for i in missing])
        (top,) = macros("pages/_post.html", "top")
        for i, key in missing.items():
            n = nodes[i]
            depth = n.depth if shape.depth_class else None
            when = clock.time_html(n.message.date, n.message.date_offset, page.zone, page.now)
            html = Markup(
                top(
                    n,
                    shape.list_address,
                    shape.list_name,
                    depth,
                    shape.heading,
                    when,
                    shape.address,
                )
            )
            tops[i] = html
            page.cache.put(key, html)
    return tops


def _top_key(n: Node, page: PageConstants, shape: _Shape) -> tuple[object, ...]:
    """Everything a post's top shows: the same key, the same top."""
    m, parent = n.message, n.parent
    # A post's date and the sender's offset never change: how long ago it was, and the zone, do.
    return (
        m.id,
        m.message_id,
        page.root,
        page.anonymous,
        shape.address is not None,
        n.depth if shape.depth_class else None,
        shape.heading,
        clock.ago(m.date, page.now),
        page.zone,
        parent.id if parent else None,
        parent.status if parent else None,
        shape.list_address,
        shape.list_name,
        n.number,
        n.parent_number,
        n.reported,
        m.edited_at,
        m.derivation,  # its text, HTML and attachments derived again (listgate.reparse)
    )


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
