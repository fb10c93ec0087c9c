"""The demo list `listgate up` creates on a first run: a short threaded discussion and one
subscriber.

The posts go in through the importer's path (parse, thread, store; no mail out), so the
archive shows real threads; the subscriber then receives whatever is posted next, which is
what the command printed by `listgate up` does.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from listgate import lists
from listgate.ingest import ingest
from listgate.mail.parser import parse
from listgate.models import Thread
from listgate.states import DmarcMode, PostOrigin

NAME = "demo"
SUBSCRIBER = "reader@example.org"
POSTER = "you@example.org"
FEATURED_SUBJECT = "Welcome to the demo list"

# (message id, author, subject, parent id or "", hours before now, body)
DISCUSSION = (
    (
        "welcome@demo.listgate",
        "Mira Okafor <mira@example.org>",
        FEATURED_SUBJECT,
        "",
        50,
        "Hello, and welcome!\n\n"
        "This list is a place to try listgate. Everything here arrived as mail:\n"
        "posts start threads, replies join them, and every post is sent to the subscribers.\n\n"
        "Post by writing to {address}; subscribe by writing to {name}+subscribe@{domain}.\n\n"
        "Mira\n",
    ),
    (
        "welcome-re1@demo.listgate",
        "Tomás Ruiz <tomas@example.org>",
        "Re: " + FEATURED_SUBJECT,
        "welcome@demo.listgate",
        46,
        "Thanks Mira. Do replies by mail land in the same thread on the web?\n\nTomás\n",
    ),
    (
        "welcome-re2@demo.listgate",
        "Mira Okafor <mira@example.org>",
        "Re: " + FEATURED_SUBJECT,
        "welcome-re1@demo.listgate",
        45,
        "They do: listgate follows In-Reply-To and References, so this answer\n"
        "sits under your question.\n\nMira\n",
    ),
    (
        "release@demo.listgate",
        "Jun Park <jun@example.net>",
        "Which day for the release?",
        "",
        30,
        "Shall we ship on Thursday or wait for Monday?\n\nJun\n",
    ),
    (
        "release-re1@demo.listgate",
        "Tomás Ruiz <tomas@example.org>",
        "Re: Which day for the release?",
        "release@demo.listgate",
        28,
        "Thursday works for me if the docs are done.\n\nTomás\n",
    ),
    (
        "release-re2@demo.listgate",
        "Jun Park <jun@example.net>",
        "Re: Which day for the release?",
        "release-re1@demo.listgate",
        26,
        "The docs are done. Thursday it is.\n\nJun\n",
    ),
)


def _raw(
    domain: str,
    now: datetime,
    msgid: str,
    author: str,
    subject: str,
    parent: str,
    hours: int,
    body: str,
) -> bytes:
    msg = EmailMessage()
    msg["From"] = author
    msg["To"] = f"{NAME}@{domain}"
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{msgid}>"
    msg["Date"] = format_datetime(now - timedelta(hours=hours))
    if parent:
        msg["In-Reply-To"] = msg["References"] = f"<{parent}>"
    msg.set_content(body.format(address=f"{NAME}@{domain}", name=NAME, domain=domain))
    return bytes(msg)


def create(session: Session, domain: str) -> bool:
    """Create the demo list with its discussion and subscriber; False when it already exists."""
    if lists.get(session, NAME) is not None:
        return False
    mlist = lists.create(session, NAME, "Demo list", "A list to try listgate with.")
    # no DNS look-ups for the demo's senders (a laptop may be offline)
    mlist.dmarc_mode = DmarcMode.NEVER
    now = datetime.now(UTC)
    for post in DISCUSSION:
        ingest(
            session, parse(_raw(domain, now, *post)), mlist, domain=domain, origin=PostOrigin.IMPORT
        )
    featured = session.scalars(
        select(Thread).where(Thread.list_id == mlist.id, Thread.subject == FEATURED_SUBJECT)
    ).one()
    featured.featured = True
    lists.subscribe(session, mlist, SUBSCRIBER)
    return True


def post_command(domain: str, host: str, port: int) -> str:
    """A shell command posting "Hello" to the demo list, as printed by `listgate up`.

    Each run makes a new Message-ID, so pasting it twice posts twice (the same bytes without
    one would be taken for a duplicate of the first).
    """
    raw = (
        f"From: You <{POSTER}>\\r\\nTo: {NAME}@{domain}\\r\\nSubject: Hello\\r\\n"
        "Message-ID: %s\\r\\n\\r\\nHello, list!\\r\\n"
    )
    return (
        'python3 -c "import smtplib, email.utils as e; '
        f"smtplib.SMTP('{host}', {port}).sendmail('{POSTER}', "
        f"['{NAME}@{domain}'], '{raw}' % e.make_msgid(domain='example.org'))\""
    )
