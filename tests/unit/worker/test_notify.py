"""Recipients of a post, including followers of a thread that was merged into another."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from listgate import lists
from listgate.db import transaction
from listgate.ingest import ingest
from listgate.mail.parser import parse
from listgate.models import MailingList, Message, Subscription, Thread
from tests.support.factories import MakeList
from worker.headers import addresses_in
from worker.notify import recipients


def _post(
    session: Session, mlist: MailingList, msgid: str, sender: str, extra: str = ""
) -> Message:
    raw = (
        f"From: {sender}\r\nTo: dev@lists.test\r\n{extra}Subject: s\r\n"
        f"Message-ID: <{msgid}>\r\n\r\nhi\r\n"
    ).encode()
    result = ingest(session, parse(raw), mlist, domain="lists.test")
    return session.get_one(Message, result.message_pk)


def test_followers_of_a_merged_thread_still_get_posts(
    db: sessionmaker[Session], make_list: MakeList
) -> None:
    make_list("dev")
    with transaction(db) as session:
        mlist = lists.require(session, "dev")
        lists.subscribe(session, mlist, "member@example.org")
        first = _post(session, mlist, "a@x.test", "one@example.org")
        old_thread = first.thread_id
        session.add(
            Subscription(
                list_id=mlist.id,
                address="old@example.org",
                kind="thread",
                thread_key=old_thread,
                status="active",
            )
        )
        session.add(
            Subscription(
                list_id=mlist.id,
                address="member@example.org",
                kind="mute",
                thread_key=old_thread,
                status="active",
            )
        )
        other = Thread(list_id=mlist.id, subject="s")
        session.add(other)
        session.flush()
        session.get_one(
            Thread, old_thread
        ).merged_into_id = other.id  # as if merged, followers not yet moved
        reply = _post(
            session,
            mlist,
            "b@x.test",
            "two@example.org",
            "In-Reply-To: <a@x.test>\r\nCc: cc@example.org\r\n",
        )
        reply.thread_id = other.id
        session.add(
            Subscription(list_id=mlist.id, address="cc@example.org", kind="list", status="active")
        )
        session.flush()
        got = recipients(session, reply, addresses_in(reply.raw.data, "To", "Cc"))
    # one@ auto-followed by posting; member@ muted the
    # thread; cc@ is already in Cc; two@ is the author
    assert sorted(got) == ["old@example.org", "one@example.org"]
