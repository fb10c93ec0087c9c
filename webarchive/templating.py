"""How pages are made, one way everywhere: every page is a Jinja template, rendered by its view.

- A page is templates/<blueprint>/<page>.html, extending base.html.
- Links come from the routes: url_for in templates, and path() (webarchive.urls, the same
  string without the map lookup) where a template repeats a link per post. No path is
  spelled out by hand.
- HTML is made in Python only in webarchive.rendering: mail bodies, times, SVG charts, and
  the rows that long pages repeat hundreds of times (a list's threads, a month's posts, a
  thread's outline, the end of each post), where a macro, url_for and filters per row cost
  most of the page. Each escapes every value and takes its links from webarchive.urls; the
  view hands the result to its template as Markup.
- What every template may call is registered here, with the reader's display choices (body
  font, time zone). A global about one feature (edit_state, purged, secret_feeds, the
  moderator flag) is registered by that feature's blueprint next to its views.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import Flask, current_app, g, request
from markupsafe import Markup
from sqlalchemy import select

from listgate import limits, plurals, removal, replies
from listgate.limits import Limit
from listgate.models import Attachment, Message, Person, Removal
from listgate.states import PostState, SubscriptionState
from webarchive import urls
from webarchive.context import db
from webarchive.rendering import bodies, clock
from webarchive.security import csrf_token, current_address

FONTS = ("auto", "mono", "prose")  # per block, everything fixed-width, everything proportional
FONT_COOKIE, ZONE_COOKIE = "listgate_font", "listgate_tz"
# Images shown inline: each is recognised by its first bytes, not only by what the mail declared.
PREVIEW_TYPES = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "image/webp": (b"RIFF",),
}
PREVIEW_MAX = 5 * 1024 * 1024  # bytes; larger images are only downloaded


def length_rule(limit: Limit) -> Markup:
    """An input's pattern for limit: the browser says so before sending and keeps the value whole.

    Not maxlength: a browser cuts a pasted value at maxlength without a word (the cut this
    replaces), and counts a four-byte character as two. Textareas have no pattern: the server's
    400 keeps their text.
    """
    rule = f"{limit.field}: at most {limit.chars:,} characters"
    return Markup('pattern=".{{0,{}}}" title="{}"').format(limit.chars, rule)


def init_app(app: Flask) -> None:
    """Give every template its filters and globals."""
    filters: dict[str, Callable[..., Any]] = {
        "when": when,
        "plural": plural_filter,
        "name": name_filter,
        "mask": bodies.mask_addresses,
        "xmlsafe": xmlsafe,
        "paragraphs": bodies.typed_paragraphs,
    }
    for name, fn in filters.items():
        app.add_template_filter(fn, name)
    for fn in (
        anonymous,
        body,
        reader_zone_name,
        post_links,
        attachment_url,
        attachment_preview,
        reply_mailto,
        tombstone_text,
        csrf_token,
        current_address,
    ):
        app.add_template_global(fn)
    app.add_template_global(urls.path, "path")
    # templates compare to members
    app.jinja_env.globals.update(PostState=PostState, SubscriptionState=SubscriptionState)
    app.jinja_env.globals.update(
        limits=limits, length_rule=length_rule
    )  # length_rule(limits.TITLE)
    app.context_processor(lambda: {"url_endpoints": app.view_functions.keys()})


def macros(template: str, *names: str) -> list[Callable[..., Markup]]:
    """Macros of a template, to call from Python (a template module's names exist at run time)."""
    module = current_app.jinja_env.get_template(template).module
    found: list[Callable[..., Markup]] = [getattr(module, name) for name in names]
    return found


def anonymous() -> bool:
    """True when nobody is signed in (addresses are masked); asked once per request."""
    if "_anonymous" not in g:
        g._anonymous = current_address() is None
    return g._anonymous


def request_now() -> datetime:
    """One "now" per request, so every post on a page says "ago" from the same moment."""
    if "_now" not in g:
        g._now = datetime.now(UTC)
    return g._now


def font_choice() -> str:
    """The reader's body font choice (auto by default)."""
    chosen = request.cookies.get(FONT_COOKIE, "auto")
    return chosen if chosen in FONTS else "auto"


def reader_zone_name() -> str:
    """The reader's chosen zone name: the signed-in person's, else the cookie's; '' means UTC."""
    if "_zone_name" not in g:
        address = current_address()
        name = request.cookies.get(ZONE_COOKIE, "")
        if address is not None:
            stored = db().scalar(select(Person.time_zone).where(Person.address == address))
            name = stored or name
        g._zone_name = name if clock.zone(name) is not None else ""
    return g._zone_name


def reader_zone() -> ZoneInfo | None:
    """The reader's zone, or None for UTC."""
    return clock.zone(reader_zone_name())


def when(value: datetime) -> str:
    """A readable date in the reader's zone (UTC until one is chosen)."""
    return clock.local(value, reader_zone())


def plural_filter(n: int, noun: str) -> str:
    """'1 post', '2 posts'."""
    return plurals.count(n, noun)


def name_filter(value: str) -> str:
    """An author's name, masked for anonymous readers."""
    return bodies.display_name(value, anonymous())


def xmlsafe(value: str) -> str:
    """Text without the control characters XML 1.0 forbids."""
    return bodies.XML_INVALID.sub("", value)


def body(msg: Message) -> Markup:
    """A post's body as safe HTML."""
    if not msg.body_text.strip() and msg.body_html.strip():
        return bodies.render_html(msg.body_html, anonymous())
    return bodies.render_text(msg.body_text, msg.is_flowed, anonymous())


def post_links(msg: Message, list_name: str) -> dict[str, str]:
    """The links of one post (a long thread has many posts: path(), not url_for)."""
    pk = msg.id
    return {
        "permalink": urls.path("pages.permalink", message_id=msg.message_id),
        "author": urls.path("pages.author", name=list_name, message_pk=pk),
        "reply": urls.path("compose.reply", message_pk=pk),
        "report": urls.path("acting.report", message_pk=pk),
        "raw": urls.path("exports.raw", message_pk=pk),
        "history": urls.path("editing.history", message_pk=pk),
    }


def previewable(att: Attachment) -> bool:
    """An image small enough to show inline."""
    return att.content_type.lower() in PREVIEW_TYPES and 0 < att.size <= PREVIEW_MAX


def attachment_url(att: Attachment) -> str:
    """Where an attachment is downloaded."""
    return urls.path(
        "exports.attachment", attachment_id=att.id, filename=att.filename or "attachment"
    )


def attachment_preview(att: Attachment) -> str | None:
    """Where an image attachment is shown inline, or None for files that are only downloaded."""
    return urls.path("exports.preview", attachment_id=att.id) if previewable(att) else None


def reply_mailto(list_address: str, msg: Message) -> str:
    """A mailto: link that replies to msg on the list, with In-Reply-To and subject filled in."""
    return replies.reply_mailto(list_address, msg.subject, msg.message_id, msg.references)


def tombstone_text(msg: Message) -> str:
    """ "removed by the moderators on DATE: REASON" for a removed post."""
    row = db().get(Removal, msg.id)
    return removal.tombstone(row) if row is not None else "removed by the moderators"
