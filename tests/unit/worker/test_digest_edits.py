"""A web post edited by its author before the day's digest goes out: the digest holds the text
as it now reads (as the archive page, the feeds and search show it), in both digest formats,
and not the text first sent."""

from __future__ import annotations

import mailbox
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from listgate import lists
from listgate.db import transaction
from listgate.ingest import ingest
from listgate.mail.parser import parse
from listgate.models import Message, MessageEdit, Person
from listgate.states import PostOrigin
from tests.support.config import make_settings
from tests.support.factories import MakeList
from tests.support.sink import enclosed, payload
from worker.context import WorkerContext
from worker.digest import send_digests
from worker.mailer import maildir_path

FIRST = "The meeting is on Tuesday at the libary."
NOW = "The meeting is on Wednesday at the library, room 2."


def test_an_edited_web_post_comes_in_the_digest_as_it_now_reads(
    tmp_path: Path, db: sessionmaker[Session], make_list: MakeList
) -> None:
    settings = make_settings(tmp_path)
    make_list("dev")
    yesterday = datetime.now(UTC) - timedelta(days=1)
    with transaction(db) as session:
        mlist = lists.require(session, "dev")
        for address, fmt in (("mime@example.org", "mime"), ("plain@example.org", "plain")):
            sub = lists.subscribe(session, mlist, address, "digest")
            sub.confirmed_at = yesterday - timedelta(days=5)
            session.add(Person(address=address, name="", digest_format=fmt))
        raw = (  # as the web archive writes a post (webarchive/views/compose.py build_mail)
            "From: Ann <ann@example.org>\r\nTo: dev@lists.test\r\nSubject: Meeting\r\n"
            "Message-ID: <meeting@lists.test>\r\nUser-Agent: listgate web archive\r\n"
            'Content-Type: text/plain; charset="utf-8"\r\n'
            "Content-Transfer-Encoding: quoted-printable\r\nMIME-Version: 1.0\r\n\r\n"
            f"{FIRST}\r\n"
        ).encode()
        ingest(session, parse(raw), mlist, domain="lists.test", origin=PostOrigin.WEB)
        post = session.scalars(select(Message)).one()
        # the author's edit, as webarchive/views/editing.py records it
        session.add(MessageEdit(message_pk=post.id, version=1, body_text=post.body_text))
        session.add(MessageEdit(message_pk=post.id, version=2, body_text=NOW + "\n"))
        post.body_text, post.edited_at = NOW + "\n", yesterday + timedelta(hours=1)
        post.received_at = post.date = yesterday
    assert send_digests(WorkerContext(settings), yesterday.date()) == 2
    box = mailbox.Maildir(maildir_path(settings.outbound))
    digests = {str(m["Delivered-To"]): m for m in box}
    (enclosed_post,) = [
        enclosed(part)
        for part in digests["mime@example.org"].walk()
        if part.get_content_type() == "message/rfc822"
    ]
    mime_text = payload(enclosed_post).decode()
    plain_text = payload(digests["plain@example.org"]).decode()
    for fmt, text in (("mime", mime_text), ("plain", plain_text)):
        assert NOW in text and FIRST not in text, f"the {fmt} digest holds {text!r}"
    assert (enclosed_post["Message-ID"], enclosed_post["Subject"]) == (
        "<meeting@lists.test>",
        "Meeting",
    )
