"""Taking a post down: a tombstone keeps the thread's shape; a purge leaves nothing to serve."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from listgate import removal
from listgate.db import transaction
from listgate.ingest import IngestResult
from listgate.lists import ListError
from listgate.models import (
    Attachment,
    Blob,
    MailingList,
    Message,
    MessageVariant,
    RawMessage,
    Thread,
)
from tests.support.factories import MakeList, make_mail, post
from tests.support.leftovers import rows_holding
from tests.support.web import sign_in

SECRET_WORD = "zanzibarquokka"
LEAKER = "Wilhelmina Quibblesworth"  # the author of a purged post


def thread_of_three(
    db: sessionmaker[Session], make_list: Callable[[str], MailingList]
) -> tuple[IngestResult, IngestResult, IngestResult]:
    make_list("dev")
    root = post(db, make_mail("Plans", "Root text.\n", msgid="root@x"))
    mid = post(
        db,
        make_mail(
            "Re: Plans",
            f"The {SECRET_WORD} leak.\n",
            msgid="mid@x",
            in_reply_to="root@x",
            attachments=[("leak.txt", "text/plain", b"leaked file bytes")],
        ),
    )
    leaf = post(
        db,
        make_mail(
            "Re: Plans",
            "Reply to the middle.\n",
            msgid="leaf@x",
            in_reply_to="mid@x",
            references=["root@x", "mid@x"],
        ),
    )
    return root, mid, leaf


def take_down(
    db: sessionmaker[Session], msgid: str, purge: bool = False, reason: str = "off topic"
) -> removal.Outcome:
    with transaction(db) as session:
        return removal.remove(
            session, removal.find(session, msgid), reason, "owner@example.org", purge
        )


def served_everywhere(client: FlaskClient, db: sessionmaker[Session], thread_id: int) -> str:
    """Everything the archive serves about this list, concatenated."""
    sign_in(client, db, "reader@example.org")  # raw and mbox downloads need a signed-in reader
    paths = [
        f"/threads/{thread_id}",
        "/lists/dev/",
        f"/api/threads/{thread_id}",
        "/api/messages/mid@x",
        "/m/mid@x",
        "/search?q=leak",
        "/search/feed?q=leak",
        "/lists/dev/feed.atom",
        f"/threads/{thread_id}/feed.atom",
        f"/threads/{thread_id}.mbox",
        "/lists/dev/2026/3.mbox",
    ]
    return "\n".join(client.get(p).get_data(as_text=True) for p in paths)


def test_a_removed_post_leaves_a_tombstone_and_its_reply_keeps_its_place(
    client: FlaskClient, db: sessionmaker[Session], make_list: MakeList
) -> None:
    root, mid, leaf = thread_of_three(db, make_list)
    assert root.thread_id is not None
    take_down(db, "mid@x", reason="personal attack")
    page = client.get(f"/threads/{root.thread_id}").get_data(as_text=True)
    assert "removed by the moderators on" in page and "personal attack" in page
    assert SECRET_WORD not in page and "leak.txt" not in page
    # The reply still sits under the removed post (one level deeper than it), not under the root.
    assert page.index(f'id="m{mid.message_pk}"') < page.index(f'id="m{leaf.message_pk}"')
    assert f'class="post tombstone d1" id="m{mid.message_pk}"' in page
    assert f'class="post d2" id="m{leaf.message_pk}"' in page
    flat = client.get(f"/threads/{root.thread_id}?view=flat").get_data(as_text=True)
    for shown in (
        page,
        flat,
    ):  # the tombstone keeps its place, but a reader counts two posts, not three
        assert "Showing 2 posts" in shown and shown.count("post tombstone") == 1
    api = client.get(f"/api/threads/{root.thread_id}").get_json()
    assert [(m["message_id"], m["depth"], m.get("removed", False)) for m in api["messages"]] == [
        ("root@x", 0, False),
        ("mid@x", 1, True),
        ("leaf@x", 2, False),
    ]
    assert api["messages"][2]["parent_message_id"] == "mid@x"
    with db() as session:
        assert session.get_one(Thread, root.thread_id).message_count == 2
        assert session.scalars(select(MailingList)).one().message_count == 2


def test_removal_hides_the_post_from_every_page_feed_export_and_search(
    client: FlaskClient, db: sessionmaker[Session], make_list: MakeList
) -> None:
    root, _, _ = thread_of_three(db, make_list)
    assert root.thread_id is not None
    assert SECRET_WORD in served_everywhere(client, db, root.thread_id)  # the check can fail
    take_down(db, "mid@x")
    served = served_everywhere(client, db, root.thread_id)
    assert SECRET_WORD not in served and "leaked file bytes" not in served
    with db() as session:
        att = session.scalars(select(Attachment)).one()
    assert client.get(f"/attachments/{att.id}/leak.txt").status_code == 404


def test_purge_deletes_the_raw_mail_attachments_and_indexed_text(
    client: FlaskClient, db: sessionmaker[Session], make_list: MakeList
) -> None:
    root, mid, _ = thread_of_three(db, make_list)
    assert root.thread_id is not None
    with db() as session:
        raw_id = session.get_one(Message, mid.message_pk).raw_id
    outcome = take_down(db, "mid@x", purge=True, reason="court order 12/2026")
    assert outcome.purged and not outcome.kept
    with db() as session:
        raw = session.get_one(RawMessage, raw_id)
        assert raw.data == b"" and SECRET_WORD.encode() not in raw.data
        assert session.scalar(select(func.count()).select_from(Attachment)) == 0
        assert session.scalar(select(func.count()).select_from(Blob)) == 0
        msg = session.get_one(Message, mid.message_pk)
        assert (msg.subject, msg.body_text, msg.body_html) == ("", "", "")
        # Nothing left in the full-text index either (SQLite FTS5 external content).
        hits = (
            session.connection()
            .exec_driver_sql(
                "SELECT count(*) FROM messages_fts WHERE messages_fts MATCH ?", (SECRET_WORD,)
            )
            .scalar()
        )
        assert hits == 0
    served = served_everywhere(client, db, root.thread_id)
    assert SECRET_WORD not in served and "court order 12/2026" in served


def test_the_same_mail_arriving_again_after_a_purge_is_not_archived_again(
    client: FlaskClient, db: sessionmaker[Session], make_list: MakeList
) -> None:
    thread_of_three(db, make_list)
    take_down(db, "mid@x", purge=True)
    again = post(
        db,
        make_mail("Re: Plans", f"The {SECRET_WORD} leak.\n", msgid="mid@x", in_reply_to="root@x"),
    )
    assert again.status == "duplicate"


def test_other_bytes_under_a_removed_message_id_are_not_kept_as_a_variant(
    client: FlaskClient, db: sessionmaker[Session], make_list: MakeList
) -> None:
    """A takedown must not come back through the variant
    link (issue 14's variants, issue 13's takedowns).
    """
    thread_of_three(db, make_list)
    take_down(db, "mid@x")
    again = post(
        db,
        make_mail(
            "Re: Plans",
            f"The {SECRET_WORD} leak, once more.\n",
            msgid="mid@x",
            in_reply_to="root@x",
        ),
    )
    assert again.status == "duplicate"
    with db() as session:
        assert session.scalar(select(func.count()).select_from(MessageVariant)) == 0


def test_a_reason_is_required_and_an_unknown_message_is_named(
    db: sessionmaker[Session], make_list: MakeList
) -> None:
    thread_of_three(db, make_list)
    for msgid, reason, words in (
        ("mid@x", "  ", "give a reason"),
        ("nope@x", "spam", "no archived message"),
    ):
        with pytest.raises(ListError, match=words):
            take_down(db, msgid, reason=reason)


def test_a_purge_leaves_no_subject_nor_name_of_the_post_in_the_database(
    client: FlaskClient, db: sessionmaker[Session], make_list: MakeList, engine: Engine
) -> None:
    """A leak in the subject: a reply renaming its thread, and a post starting one, both purged
    after the archive threaded and listed them."""
    make_list("dev")
    post(db, make_mail("Plans", "Root.\n", msgid="root@x"))
    post(
        db,
        make_mail(
            f"The {SECRET_WORD} leak (was: Plans)", "x\n", msgid="mid@x", in_reply_to="root@x"
        ),
    )
    own = post(
        db,
        make_mail(f"{SECRET_WORD.title()} alone", "y\n", msgid="own@x", sender=f"{LEAKER} <l@x>"),
    )
    post(db, make_mail("Re: your post", "z\n", msgid="re@x", in_reply_to="own@x"))
    assert LEAKER in client.get("/lists/dev/").text  # the check can fail
    take_down(db, "mid@x", purge=True)
    take_down(db, "own@x", purge=True)
    for word in (SECRET_WORD, LEAKER):
        left = rows_holding(engine, word)
        assert left == [], "\n".join(left)
    listed = client.get("/lists/dev/").text
    assert LEAKER not in listed and "(removed)" in listed
    page = client.get(f"/threads/{own.thread_id}").text
    assert LEAKER not in page and "removed by the moderators on" in page
