"""A post is rendered once; each copy differs only by its unsubscribe link."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from listgate import lists
from listgate.config import Settings
from listgate.db import transaction
from listgate.ingest import ingest
from listgate.mail.parser import parse
from listgate.states import DmarcMode
from tests.support.factories import MakeList
from worker.context import WorkerContext
from worker.copies import load_post
from worker.headers import ListInfo, build_copy
from worker.relay_sessions import wire_form

RAW = (
    b"From: Ann <ann@example.org>\nTo: dev@lists.test\nSubject: s\nMessage-ID: <c@x>\n\n"
    b".leading dot\nGr\xc3\xbc\xc3\x9fe\n"
)


def test_each_copy_equals_a_copy_rendered_from_scratch(
    settings: Settings, db: sessionmaker[Session], make_list: MakeList
) -> None:
    make_list("dev")
    with transaction(db) as session:
        mlist = lists.require(session, "dev")
        mlist.dmarc_mode = DmarcMode.NEVER
        pk = ingest(session, parse(RAW), mlist, domain=settings.domain).message_pk
        info = ListInfo(mlist.name, mlist.title, settings.domain, settings.base_url)
    assert pk is not None
    post = load_post(WorkerContext(settings), pk)
    assert post is not None and post.eight_bit and post.message_id == "c@x"
    for url in (
        f"{settings.base_url}/unsubscribe/abc",
        f"{settings.base_url}/unsubscribe/other.token",
    ):
        assert post.copy_for(url) == wire_form(build_copy(RAW, info, "c@x", url))


def test_a_missing_post_renders_nothing(settings: Settings, db: sessionmaker[Session]) -> None:
    assert load_post(WorkerContext(settings), 12345) is None
