"""`listgate messages reparse`: posts archived by an older decoder show what their stored bytes
give now (text, HTML, attachments, search), and nothing else about them moves."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from itertools import islice
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from listgate import administration, lists, removal, reparse
from listgate.config import Settings
from listgate.db import transaction
from listgate.importer import Importer, mbox_messages, open_stream
from listgate.mail.parser import parse_message_id
from listgate.models import Attachment, Blob, MailingList, Message, MessageEdit, Report, Vote
from listgate.states import PostState
from tests.support.corpora import linux_man_path
from tests.support.factories import MakeList, make_mail, post
from webarchive import create_app

pytestmark = pytest.mark.integration

SIGNATURE = b"-----BEGIN PGP SIGNATURE-----\r\niQEzBAEBCAAdFiEE\r\n-----END PGP SIGNATURE-----"
SIGNED = (
    b"From: Ann <ann@example.org>\r\nTo: dev@lists.test\r\nSubject: Signed harbour news\r\n"
    b"Message-ID: <signed@x>\r\nDate: Mon, 2 Mar 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: multipart/signed; micalg=pgp-sha256; "
    b'protocol="application/pgp-signature"; boundary="s"\r\n\r\n'
    b"--s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
    b"The harbour zanzibarquokka opens in spring.\r\n"
    b"--s\r\nContent-Type: application/pgp-signature\r\n\r\n" + SIGNATURE + b"\r\n--s--\r\n"
)
NOISE = b"a part the old decoder kept as a file"


def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """`listgate ARGS` in a process of its own on the database of settings."""
    env = {
        **os.environ,
        "LISTGATE_DATA_DIR": str(settings.data_dir),
        "LISTGATE_DOMAIN": settings.domain,
        "LISTGATE_SECRET_KEY": settings.secret_key,
        "LISTGATE_DATABASE_URL": settings.database_url,
    }
    return subprocess.run(
        [sys.executable, "-m", "listgate.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _as_an_older_decoder_left_them(db: sessionmaker[Session]) -> None:
    """Overwrite what was derived at archiving with what an older decoder gave."""
    with transaction(db) as s:
        signed = s.scalars(select(Message).where(Message.message_id == "signed@x")).one()
        signed.body_text = ""  # it lost the signed part's text...
        sig = s.scalars(select(Attachment).where(Attachment.message_pk == signed.id)).one()
        s.delete(sig)  # ...and the unnamed signature
        s.flush()
        s.execute(delete(Blob).where(Blob.sha256 == sig.sha256))
        files = s.scalars(select(Message).where(Message.message_id == "files@x")).one()
        s.execute(  # it lost a file's name
            update(Attachment)
            .where(Attachment.message_pk == files.id, Attachment.filename == "notes.txt")
            .values(filename="attachment-1.txt")
        )
        s.add(Blob(sha256=hashlib.sha256(NOISE).hexdigest(), size=len(NOISE), data=NOISE))
        s.flush()
        s.add(  # and kept a part as a file that is none
            Attachment(
                message_pk=files.id,
                position=2,
                filename="noise.bin",
                content_type="application/octet-stream",
                size=len(NOISE),
                sha256=hashlib.sha256(NOISE).hexdigest(),
            )
        )
        edited = s.scalars(select(Message).where(Message.message_id == "edited@x")).one()
        s.add(MessageEdit(message_pk=edited.id, version=1, body_text="", created_at=edited.date))
        s.add(MessageEdit(message_pk=edited.id, version=2, body_text="my edited words"))
        edited.body_text, edited.edited_at = "my edited words", datetime.now(UTC)
        gone = s.scalars(select(Message).where(Message.message_id == "gone@x")).one()
        gone.body_text = ""
        hidden = s.scalars(select(Message).where(Message.message_id == "hidden@x")).one()
        hidden.body_text, hidden.status = "", PostState.HIDDEN
        s.add(Report(message_pk=hidden.id, list_id=hidden.list_id, address="c@example.org"))
        s.add(Vote(message_pk=signed.id, address="bob@example.org", valuable=True))


def _archive(db: sessionmaker[Session]) -> None:
    post(db, SIGNED, origin="import")
    post(
        db,
        make_mail(
            "Files",
            msgid="files@x",
            body="Two files.\n",
            attachments=[
                ("notes.txt", "text/plain", b"notes\n"),
                ("data.bin", "application/octet-stream", b"\x00\x01"),
            ],
        ),
        origin="import",
    )
    post(db, make_mail("From the web", msgid="edited@x", body="first words\n"), origin="web")
    post(db, make_mail("Taken down", msgid="gone@x", body="gone words\n"), origin="import")
    post(db, make_mail("Reported", msgid="hidden@x", body="hidden words\n"), origin="import")
    with transaction(db) as s:
        removal.remove(s, removal.find(s, "gone@x"), "spam", "o@example.org")
    _as_an_older_decoder_left_them(db)


def _snapshot(db: sessionmaker[Session]) -> dict[str, Any]:
    """Everything about the posts reparse must not move, and what it derives."""
    with db() as s:
        rows = s.execute(select(Message.__table__).order_by(Message.id)).mappings().all()
        derived = ("body_text", "body_html", "is_flowed", "derivation")
        return {
            "kept": [{k: v for k, v in r.items() if k not in derived} for r in rows],
            "derived": [tuple(r[k] for k in derived) for r in rows],
            "attachments": [
                tuple(a)
                for a in s.execute(
                    select(
                        Attachment.id,
                        Attachment.message_pk,
                        Attachment.position,
                        Attachment.filename,
                        Attachment.content_type,
                        Attachment.sha256,
                    ).order_by(Attachment.id)
                )
            ],
            "blobs": set(s.scalars(select(Blob.sha256))),
            "edits": [
                (e.message_pk, e.version, e.body_text)
                for e in s.scalars(select(MessageEdit).order_by(MessageEdit.id))
            ],
            "votes": [(v.message_pk, v.address, v.valuable) for v in s.scalars(select(Vote))],
            "reports": [(r.message_pk, r.status) for r in s.scalars(select(Report))],
        }


def test_posts_of_an_older_decoder_show_their_attachment_text_and_search_after_reparse(
    settings: Settings, db: sessionmaker[Session], make_list: MakeList, app: Flask
) -> None:
    make_list("dev")
    _reparse_an_older_archive(settings, db, app)


@pytest.mark.long(16)
def test_reparse_on_postgresql(
    pg_settings: Settings, pg_web: tuple[Flask, sessionmaker[Session]]
) -> None:
    app, db = pg_web
    with transaction(db) as session:
        lists.create(session, "dev")
    _reparse_an_older_archive(pg_settings, db, app)


def _reparse_an_older_archive(settings: Settings, db: sessionmaker[Session], app: Flask) -> None:
    """Archive, overwrite as an older decoder left it, dry run, run, look, run again."""
    _archive(db)
    client = app.test_client()
    with db() as s:
        signed = s.scalars(select(Message).where(Message.message_id == "signed@x")).one()
        files = s.scalars(select(Message).where(Message.message_id == "files@x")).one()
    thread, files_thread = f"/threads/{signed.thread_id}", f"/threads/{files.thread_id}"
    other = create_app(settings)  # a second web process of the same archive
    for running in (app, other):  # each renders the threads once and keeps their posts' tops
        page = running.test_client().get(thread).get_data(as_text=True)
        assert "attachment-1.asc" not in page and "zanzibarquokka" not in page
        page = running.test_client().get(files_thread).get_data(as_text=True)
        assert "noise.bin" in page and "notes.txt" not in page
    assert "Signed harbour news" not in client.get("/search?q=zanzibarquokka").get_data(
        as_text=True
    )
    before = _snapshot(db)
    files_rows = {a[3]: a[0] for a in before["attachments"]}

    dry = cli(settings, "messages", "reparse", "--dry-run", "--quiet")
    assert dry.returncode == 0, dry.stderr
    assert "would change: 3 messages" in dry.stdout, dry.stdout
    assert "text: 2, html: 0, attachments added: 1, removed: 1, renamed: 1" in dry.stdout
    assert "<signed@x> on dev" in dry.stdout and "<files@x> on dev" in dry.stdout
    assert "1 removed left alone" in dry.stdout and "kept the text of 1 post" in dry.stdout
    assert "dry run: nothing was written" in dry.stdout
    assert _snapshot(db) == before

    done = cli(settings, "messages", "reparse", "--quiet")
    assert done.returncode == 0, done.stderr
    assert "changed: 3 messages" in done.stdout, done.stdout
    assert done.stderr == ""  # --quiet: no bar, and nothing to warn of
    assert "restart" not in done.stdout  # the running web processes show it at once
    assert "text: 2, html: 0, attachments added: 1, removed: 1, renamed: 1" in done.stdout
    after = _snapshot(db)
    assert after["kept"] == before["kept"]  # ids, threads, dates, authors, states...
    assert [after[k] for k in ("edits", "votes", "reports")] == [
        before[k] for k in ("edits", "votes", "reports")
    ]
    derived = {r["message_id"]: d for r, d in zip(after["kept"], after["derived"], strict=True)}
    texts = {mid: d[0] for mid, d in derived.items()}
    # what each post shows was derived again once: those that changed, and only they
    assert {mid: d[3] for mid, d in derived.items()} == {
        "signed@x": 1,
        "files@x": 1,
        "edited@x": 0,
        "gone@x": 0,
        "hidden@x": 1,
    }
    assert "zanzibarquokka" in texts["signed@x"]
    assert texts["edited@x"] == "my edited words"  # an edit stays
    assert texts["gone@x"] == ""  # a takedown stays down
    assert texts["hidden@x"] == "hidden words\n"  # and a hidden post stays hidden (kept above)
    by_name = {a[3]: a for a in after["attachments"]}
    assert by_name["notes.txt"][0] == files_rows["attachment-1.txt"]  # same row: same address
    assert by_name["data.bin"][0] == files_rows["data.bin"]
    assert "noise.bin" not in by_name
    assert hashlib.sha256(NOISE).hexdigest() not in after["blobs"]
    assert by_name["attachment-1.asc"][4] == "application/pgp-signature"

    # The same running web processes that rendered the thread before, not restarted.
    for running in (app, other):
        client = running.test_client()
        page = client.get(thread).get_data(as_text=True)
        assert "zanzibarquokka" in page, page
        link = re.search(r'href="(/attachments/\d+/attachment-1\.asc)"', page)
        assert link is not None, page
        page = client.get(files_thread).get_data(as_text=True)
        assert "noise.bin" not in page and "notes.txt" in page, page
        download = client.get(link.group(1))
        assert download.status_code == 200 and download.data == SIGNATURE
        assert client.get(f"/attachments/{by_name['notes.txt'][0]}/notes.txt").data == b"notes\n"
        found = client.get("/search?q=zanzibarquokka").get_data(as_text=True)
        assert "Signed harbour news" in found

    again = cli(settings, "messages", "reparse", "--quiet")
    assert again.returncode == 0, again.stderr
    assert "changed: 0 messages" in again.stdout, again.stdout
    assert "restart" not in again.stdout
    assert _snapshot(db) == after
    other.extensions["listgate"].engine.dispose()


def test_an_unknown_list_is_a_clear_error(settings: Settings, make_list: MakeList) -> None:
    make_list("dev")
    done = cli(settings, "messages", "reparse", "--list", "nosuch", "--quiet")
    assert done.returncode == 1
    assert "Error: no list named 'nosuch'" in done.stderr
    bad = cli(settings, "messages", "reparse", "--batch", "0")
    assert bad.returncode == 2 and "expected a whole number from 1 to 10,000" in bad.stderr


# linux-man's posts signed with an OpenPGP part that names no file, which decoders before
# f42a486 did not keep (26 in the whole archive; corpus positions from 0). None is among the
# first 2,000 messages: the window below holds 13 of them.
WINDOW = (7500, 9500)
UNNAMED_SIGNATURES = (7538, 7539, 7541, 7544, 7550, 7551, 7780, 7908, 8555, 8578, 9182, 9197, 9199)


@pytest.mark.long(34)
@pytest.mark.timeout(900)  # 2,000 linux-man messages imported and parsed again
def test_linux_man_posts_archived_before_unnamed_signatures_were_kept_gain_them(
    settings: Settings, db: sessionmaker[Session], make_list: MakeList
) -> None:
    make_list("man")
    with open(linux_man_path(), "rb") as raw:
        mails = list(islice(mbox_messages(open_stream(raw)), *WINDOW))
    Importer(db, "man", settings.domain, batch=len(mails)).run(iter(mails))  # no helper process
    signed = {parse_message_id(mails[i - WINDOW[0]]) for i in UNNAMED_SIGNATURES}
    with transaction(db) as s:  # as such a decoder left them: no file, no stored bytes
        lost = s.execute(
            select(Attachment.id, Attachment.sha256).where(
                Attachment.content_type == "application/pgp-signature",
                Attachment.filename.like("attachment-%"),
            )
        ).all()
        s.execute(delete(Attachment).where(Attachment.id.in_([a.id for a in lost])))
        administration.drop_unused(s, set(), {a.sha256 for a in lost})
        archived = s.scalar(select(func.count(Message.id)))
    assert len(lost) == len(UNNAMED_SIGNATURES)

    done = cli(settings, "messages", "reparse", "--list", "man", "--quiet", "--examples", "50")
    assert done.returncode == 0, done.stderr
    assert f"read {archived:,} messages on man" in done.stdout, done.stdout
    assert "changed: 13 messages" in done.stdout
    assert "text: 0, html: 0, attachments added: 13, removed: 0, renamed: 0" in done.stdout
    assert set(re.findall(r"^  <(.+)> on man$", done.stdout, re.MULTILINE)) == signed
    with db() as s:
        gained = s.execute(
            select(Message.message_id, Attachment.filename)
            .join(Attachment, Attachment.message_pk == Message.id)
            .where(Attachment.content_type == "application/pgp-signature")
            .where(Attachment.filename.like("attachment-%"))
        ).all()
    assert sorted(gained) == sorted((m, "attachment-1.asc") for m in signed)
    again = cli(settings, "messages", "reparse", "--quiet")
    assert "changed: 0 messages" in again.stdout, again.stdout


def test_a_run_killed_midway_leaves_each_post_old_or_new_and_the_next_run_ends_the_work(
    settings: Settings, db: sessionmaker[Session], make_list: MakeList
) -> None:
    make_list("dev")
    mails = [SIGNED.replace(b"signed@x", f"signed{n}@x".encode()) for n in range(400)]
    Importer(db, "dev", settings.domain, batch=len(mails)).run(iter(mails))
    with transaction(db) as s:  # every post as the older decoder left it: no text, no signature
        s.execute(update(Message).values(body_text=""))
        s.execute(delete(Attachment))
        s.execute(delete(Blob))

    def states() -> list[tuple[bool, bool]]:
        """(text derived anew, signature kept) of each post."""
        with db() as s:
            files = set(s.scalars(select(Attachment.message_pk)))
            return [
                (bool(text), pk in files)
                for pk, text in s.execute(select(Message.id, Message.body_text))
            ]

    env = {
        **os.environ,
        "LISTGATE_DATA_DIR": str(settings.data_dir),
        "LISTGATE_DOMAIN": settings.domain,
        "LISTGATE_SECRET_KEY": settings.secret_key,
    }
    run = subprocess.Popen(
        [sys.executable, "-m", "listgate.cli", "messages", "reparse", "--batch", "1", "--quiet"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not any(new for new, _ in states()) and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        run.kill()
        run.wait()
    seen = states()
    assert all(new == kept for new, kept in seen), "a post half derived anew"
    done = sum(new for new, _ in seen)
    assert 0 < done < len(mails), f"not stopped midway: {done} of {len(mails)} done"
    rest = cli(settings, "messages", "reparse", "--quiet")
    assert f"changed: {len(mails) - done:,} messages" in rest.stdout, rest.stdout
    assert states() == [(True, True)] * len(mails)


def test_a_post_edited_or_removed_while_its_batch_was_parsed_keeps_its_edit_or_takedown(
    db: sessionmaker[Session], make_list: MakeList
) -> None:
    mlist = make_list("dev")
    post(db, make_mail("Web", msgid="w@x", body="as sent\n"), origin="web")
    post(db, make_mail("Mail", msgid="m@x", body="as sent\n"), origin="import")
    with transaction(db) as s:
        s.execute(update(Message).values(body_text=""))  # as an older decoder left them
        stored = s.execute(reparse._STORED, {"list_id": mlist.id, "after": 0, "limit": 10}).all()
        rows = reparse._rows(s, [m.id for m in stored])
    found, _ = reparse._derive(stored, rows)
    assert [c.message_id for c in found] == ["w@x", "m@x"]
    with transaction(db) as s:  # meanwhile its author edits one, a moderator removes the other
        web = s.scalars(select(Message).where(Message.message_id == "w@x")).one()
        web.body_text, web.edited_at = "edited meanwhile", datetime.now(UTC)
        removal.remove(s, removal.find(s, "m@x"), "spam", "o@example.org", purge=True)
    with transaction(db) as s:
        written = reparse._write(s, s.get_one(MailingList, mlist.id), found)
    assert written == []
    with db() as s:
        texts = dict(s.execute(select(Message.message_id, Message.body_text)).all())
    assert texts == {"w@x": "edited meanwhile", "m@x": ""}
