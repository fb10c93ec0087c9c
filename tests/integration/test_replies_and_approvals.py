"""Through a real gateway (SMTP over loopback) and a real Celery worker, mail out to an SMTP sink:

- RFC 3834: one automatic reply per sender per window, however many commands or recipients a
  forged mail carries; no quoting of the sender's Subject; answers to a proven sender still go;
- Precedence: list/bulk/junk mail is archived and delivered; automatic replies wait in the
  not-posted queue and can be released;
- a mail command that fails for good is answered and ends as failed, not retried;
- members-only lists: every way in by mail waits for a moderator; a private list is hidden from
  strangers at RCPT (issue 17.11) and an invitation confirmed by reply gets in;
- the thread-follow welcome carries the thread's own leave link.
"""

from __future__ import annotations

import email.message
import re
import smtplib
import uuid
from collections.abc import Iterator
from typing import Unpack

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select, text

from listgate import cli, dispatch, lists
from listgate.db import make_engine, session_factory, transaction, writer
from listgate.models import Message, NotPosted, OutboxEntry, Subscription
from listgate.schema import upgrade
from listgate.states import DmarcMode
from tests.support.config import free_port, make_settings, search, wait_until
from tests.support.factories import ListOptions
from tests.support.gateway import start_gateway
from tests.support.processes import WorkerProcess
from tests.support.sink import SmtpSink, payload
from tests.support.worker import Site
from webarchive import create_app
from worker.celery_app import make_celery

pytestmark = pytest.mark.integration
DOMAIN = "lists.test"


@pytest.fixture(scope="module")
def rsink() -> Iterator[SmtpSink]:
    sink = SmtpSink(port=free_port())
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, rsink: SmtpSink) -> Iterator[tuple[Site, int]]:
    """A site with its worker (default auto-reply
    window) and an in-process gateway enqueueing to it.
    """
    tmp = tmp_path_factory.mktemp("replies")
    env = {
        "LISTGATE_DATA_DIR": str(tmp / "var"),
        "LISTGATE_DOMAIN": DOMAIN,
        "LISTGATE_OUTBOUND": rsink.url,
        "LISTGATE_SECRET_KEY": "test-secret-key-0123456789",
        "LISTGATE_BASE_URL": "https://lists.test",
    }
    settings = make_settings(tmp, **env)
    engine = make_engine(settings)
    upgrade(engine)
    site = Site(settings, env, session_factory(writer(engine)), make_celery(settings))
    site.log = tmp / "worker.log"
    proc = WorkerProcess(env, site.log).start()
    gateway = start_gateway(settings, site.db)
    assert gateway.server.archiver is not None
    gateway.server.archiver.enqueue = lambda entries: dispatch.enqueue(site.app, entries)
    yield site, gateway.port
    gateway.stop()
    proc.stop()


@pytest.fixture
def site(world: tuple[Site, int]) -> Site:
    return world[0]


def smtp(
    world: tuple[Site, int], sender: str, rcpts: list[str], headers: str, body: str = "hello"
) -> str:
    """One SMTP transaction through the gateway; the reply to DATA."""
    if "Message-ID:" not in headers:
        headers = f"Message-ID: <{uuid.uuid4().hex}@example.net>\r\n{headers}"
    raw = f"From: {sender}\r\n{headers}\r\n{body}\r\n"
    with smtplib.SMTP("127.0.0.1", world[1], timeout=30) as client:
        client.ehlo()
        client.mail(sender)
        for rcpt in rcpts:
            assert client.rcpt(rcpt)[0] == 250, rcpt
        code, reply = client.data(raw.encode())
    assert code == 250, reply
    return reply.decode()


def mails_to(sink: SmtpSink, address: str) -> list[email.message.Message]:
    return [r.message for r in sink.to(address)]


def outbox_done(site: Site) -> bool:
    with site.db() as session:
        return not session.scalar(
            select(func.count()).select_from(OutboxEntry).where(OutboxEntry.done_at.is_(None))
        )


def new_list(site: Site, **options: Unpack[ListOptions]) -> str:
    name = "l" + uuid.uuid4().hex[:10]
    with transaction(site.db) as session:
        lists.create(session, name, **options).dmarc_mode = DmarcMode.NEVER
    return name


def test_fifty_forged_commands_in_one_mail_get_the_victim_one_reply(
    world: tuple[Site, int], rsink: SmtpSink
) -> None:
    site = world[0]
    name, victim = new_list(site), f"victim-{uuid.uuid4().hex[:6]}@example.org"
    rcpts = [f"{name}+confirm-{uuid.uuid4().hex[:12]}@{DOMAIN}" for _ in range(50)]
    smtp(
        world, victim, rcpts, f"To: {name}@{DOMAIN}\r\nSubject: Buy cheap pills at evil.example\r\n"
    )
    for _ in range(10):
        smtp(world, victim, [f"{name}+help@{DOMAIN}"], "Subject: Buy cheap pills\r\n")
    wait_until(lambda: outbox_done(site), what="every command and notice handled")
    got = wait_until(lambda: mails_to(rsink, victim), what="the one reply")
    wait_until(lambda: outbox_done(site), what="late notices")
    assert len(mails_to(rsink, victim)) == 1, [m["Subject"] for m in mails_to(rsink, victim)]
    assert "pills" not in got[0].as_string().lower()
    with site.db() as session:
        held_back = session.scalar(
            select(func.count())
            .select_from(OutboxEntry)
            .where(OutboxEntry.last_error.like("not sent: one automatic reply%"))
        )
    assert held_back == 59


def test_the_held_notice_quotes_nothing_the_sender_wrote(
    world: tuple[Site, int], rsink: SmtpSink
) -> None:
    site = world[0]
    name, victim = (
        new_list(site, policy="moderated", moderators="mod@example.org"),
        "held-victim@example.org",
    )
    reply = smtp(
        world,
        victim,
        [f"{name}@{DOMAIN}"],
        "Subject: Cheap pills at evil.example\r\n",
        "Visit evil.example today",
    )
    assert "held for moderation" in reply
    notice = wait_until(lambda: mails_to(rsink, victim), what="the held notice")[0]
    assert "awaits moderation" in notice["Subject"] and notice["Auto-Submitted"] == "auto-replied"
    assert "pills" not in notice.as_string().lower() and "evil.example" not in notice.as_string()


def test_a_proven_sender_gets_every_answer_within_the_window(
    world: tuple[Site, int], rsink: SmtpSink
) -> None:
    site = world[0]
    name, person = new_list(site), "quick@example.org"
    smtp(world, person, [f"{name}+subscribe@{DOMAIN}"], "Subject: subscribe\r\n")
    confirm = wait_until(lambda: mails_to(rsink, person), what="the confirmation")[0]
    smtp(world, person, [confirm["Reply-To"]], "Subject: Re: confirm\r\n", "yes")
    wait_until(
        lambda: len(mails_to(rsink, person)) == 2,
        what="the welcome, seconds after the confirmation",
    )
    assert "Welcome" in mails_to(rsink, person)[1]["Subject"]


def test_precedence_list_mail_is_archived_and_delivered(
    world: tuple[Site, int], rsink: SmtpSink
) -> None:
    site = world[0]
    name = new_list(site)
    site.subscribe(name, "reader1@example.org", "reader2@example.org")
    reply = smtp(
        world,
        "owner-upstream@example.com",
        [f"{name}@{DOMAIN}"],
        "To: upstream@example.com\r\nSubject: Upstream news\r\nPrecedence: list\r\n"
        "List-Id: <upstream.example.com>\r\n",
        "From the list we archive.",
    )
    assert "stored" in reply
    for reader in ("reader1@example.org", "reader2@example.org"):

        def copies(r: str = reader) -> list[email.message.Message]:
            return mails_to(rsink, r)

        got = wait_until(copies, what=f"the copy for {reader}")
        assert len(got) == 1 and got[0]["Subject"] == "Upstream news"
    with site.db() as session:
        assert session.scalars(
            select(Message.subject).where(Message.subject == "Upstream news")
        ).all() == ["Upstream news"]


def test_an_automatic_reply_waits_in_the_not_posted_queue_until_released(
    world: tuple[Site, int], rsink: SmtpSink
) -> None:
    site = world[0]
    name = new_list(site)
    site.subscribe(name, "reader3@example.org")
    reply = smtp(
        world,
        "away@example.com",
        [f"{name}@{DOMAIN}"],
        "Subject: Out of office\r\nAuto-Submitted: auto-replied\r\n",
        "I am away.",
    )
    assert "accepted, not posted (Auto-Submitted: auto-replied)" in reply
    runner, env = CliRunner(), {**site.env}
    status = runner.invoke(cli.main, ["status"], env=env)
    assert re.search(r"\d+ mails? accepted and not posted", status.output), status.output
    with site.db() as session:
        entry = session.scalars(select(NotPosted).where(NotPosted.subject == "Out of office")).one()
    released = runner.invoke(cli.main, ["not-posted", "release", str(entry.id)], env=env)
    assert released.exit_code == 0 and "released: stored" in released.output
    # what the beat does within a minute
    site.app.send_task(dispatch.SWEEP_OUTBOX, kwargs={"older_than": 0.0})
    got = wait_until(lambda: mails_to(rsink, "reader3@example.org"), what="the released post")
    assert got[0]["Subject"] == "Out of office"


def test_a_command_that_fails_for_good_is_answered_and_not_retried(
    world: tuple[Site, int], rsink: SmtpSink
) -> None:
    site = world[0]
    name, doomed = new_list(site), "doomed@example.org"
    site.subscribe(name, doomed)
    with transaction(
        site.db
    ) as session:  # a fault no retry can get past: every change of this row is refused
        session.execute(
            text(
                "CREATE TRIGGER IF NOT EXISTS doom BEFORE UPDATE ON subscriptions "
                f"WHEN OLD.address = '{doomed}' "
                "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
            )
        )
    try:
        smtp(world, doomed, [f"{name}+unsubscribe@{DOMAIN}"], "Subject: unsubscribe\r\n")
        answer = wait_until(
            lambda: mails_to(rsink, doomed), what="the answer to the failed command"
        )[0]
    finally:
        with transaction(site.db) as session:
            session.execute(text("DROP TRIGGER doom"))
    body = payload(answer).decode()
    reference = search(r"reference ([0-9a-f]{8})", body)
    assert "could not be carried out" in answer["Subject"] and "unsubscribe request" in body
    with site.db() as session:
        entry = session.scalars(
            select(OutboxEntry).where(
                OutboxEntry.kind == dispatch.HANDLE_COMMAND,
                OutboxEntry.last_error.like(f"%{reference}%"),
            )
        ).one()
        assert (
            entry.done_at is not None
            and entry.failed_at is not None
            and "IntegrityError" in entry.last_error
        )
        assert (
            session.scalar(select(Subscription.status).where(Subscription.address == doomed))
            == "active"
        )
    assert site.log is not None
    log = site.log.read_text()
    assert f"failed for good [reference {reference}]" in log and "Traceback" in log
    status = CliRunner().invoke(cli.main, ["status"], env=site.env)
    assert re.search(r"[1-9]\d* failed for good \([1-9]\d* in the last 24 h", status.output)
    assert f"[reference {reference}])" in status.output and status.exit_code == 1, status.output


def _confirm_by_reply(
    world: tuple[Site, int], rsink: SmtpSink, person: str, index: int = 0
) -> None:
    confirm = wait_until(
        lambda: mails_to(rsink, person) if len(mails_to(rsink, person)) > index else None,
        what="the confirmation",
    )[index]
    assert "Confirm" in confirm["Subject"]
    smtp(world, person, [confirm["Reply-To"]], "Subject: Re: confirm\r\n", "yes")


def test_every_way_into_a_members_list_by_mail_waits_for_a_moderator(
    world: tuple[Site, int], rsink: SmtpSink
) -> None:
    site = world[0]
    name = new_list(site, policy="members", moderators="mod@example.org")
    site.subscribe(name, "insider@example.org")
    smtp(
        world,
        "insider@example.org",
        [f"{name}@{DOMAIN}"],
        "Subject: Members only\r\nMessage-ID: <club-1@x>\r\n",
    )
    wait_until(lambda: outbox_done(site), what="the first post")
    # 1. NAME+subscribe@ and a confirming reply.
    smtp(world, "outsider@example.org", [f"{name}+subscribe@{DOMAIN}"], "Subject: subscribe\r\n")
    _confirm_by_reply(world, rsink, "outsider@example.org")
    awaiting = wait_until(
        lambda: (
            mails_to(rsink, "outsider@example.org")
            if len(mails_to(rsink, "outsider@example.org")) == 2
            else None
        ),
        what="the awaiting-approval notice",
    )[1]
    assert "awaits approval" in awaiting["Subject"]
    # 2. "follow" in a reply to a post of the list, and a confirming reply.
    raw_headers = f"To: {name}@{DOMAIN}\r\nSubject: Re: Members only\r\nIn-Reply-To: <club-1@x>\r\n"
    smtp(world, "follower@example.org", [f"{name}@{DOMAIN}"], raw_headers, "follow")
    _confirm_by_reply(world, rsink, "follower@example.org")
    wait_until(lambda: len(mails_to(rsink, "follower@example.org")) == 2, what="the second notice")
    with site.db() as session:
        states = dict(
            session.execute(
                select(Subscription.address, Subscription.status).where(
                    Subscription.list_id == lists.require(session, name).id,
                    Subscription.address.in_(("outsider@example.org", "follower@example.org")),
                )
            ).all()
        )
    assert states == {"outsider@example.org": "awaiting", "follower@example.org": "awaiting"}
    smtp(
        world,
        "insider@example.org",
        [f"{name}@{DOMAIN}"],
        raw_headers.replace("Members only", "More"),
        "More.",
    )
    wait_until(lambda: outbox_done(site), what="the second post")
    assert (
        len(mails_to(rsink, "outsider@example.org")) == 2
        and len(mails_to(rsink, "follower@example.org")) == 2
    )
    # The moderator approves one with the CLI; the welcome goes out, then the posts.
    approved = CliRunner().invoke(
        cli.main, ["requests", "approve", "outsider@example.org", "--list", name], env=site.env
    )
    assert approved.exit_code == 0 and "is now subscribed" in approved.output
    site.app.send_task(dispatch.SWEEP_OUTBOX, kwargs={"older_than": 0.0})
    wait_until(
        lambda: any("Welcome" in m["Subject"] for m in mails_to(rsink, "outsider@example.org")),
        what="the welcome after approval",
    )
    smtp(world, "insider@example.org", [f"{name}@{DOMAIN}"], "Subject: Third\r\n")
    wait_until(
        lambda: any(m["Subject"] == "Third" for m in mails_to(rsink, "outsider@example.org")),
        what="a post after approval",
    )
    assert not any(m["Subject"] == "Third" for m in mails_to(rsink, "follower@example.org"))


def test_a_private_list_is_hidden_from_strangers_by_mail_and_an_invitation_gets_in(
    world: tuple[Site, int], rsink: SmtpSink
) -> None:
    # Issue 17.11: RCPT answers a private list like a missing one, so no stranger can ask to join it
    # by mail (nor learn it exists); the way in is an invitation, which the invited address confirms
    # by reply.
    site = world[0]
    name = new_list(site, private=True, policy="members", moderators="mod@example.org")
    other = "l" + uuid.uuid4().hex[:10]  # a name no list has, of the same shape
    with smtplib.SMTP("127.0.0.1", world[1], timeout=30) as client:
        client.ehlo()
        client.mail("stranger@example.org")
        hidden = client.rcpt(f"{name}+subscribe@{DOMAIN}")
        missing = client.rcpt(f"{other}+subscribe@{DOMAIN}")
    assert hidden[0] == missing[0] == 550, (hidden, missing)
    assert hidden[1].replace(name.encode(), b"NAME") == missing[1].replace(other.encode(), b"NAME")
    invited = CliRunner().invoke(
        cli.main, ["subscribe", "guest@example.org", "--list", name, "--invite"], env=site.env
    )
    assert invited.exit_code == 0, invited.output
    site.app.send_task(dispatch.SWEEP_OUTBOX, kwargs={"older_than": 0.0})
    _confirm_by_reply(world, rsink, "guest@example.org")
    welcome = wait_until(
        lambda: (
            mails_to(rsink, "guest@example.org")
            if len(mails_to(rsink, "guest@example.org")) == 2
            else None
        ),
        what="the welcome of an invited address",
    )[1]
    assert "Welcome" in welcome["Subject"]  # approved in advance: no moderator needed
    with site.db() as session:
        assert (
            session.scalar(
                select(Subscription.status).where(
                    Subscription.address == "guest@example.org",
                    Subscription.list_id == lists.require(session, name).id,
                )
            )
            == "active"
        )
        assert not session.scalar(
            select(func.count())
            .select_from(Subscription)
            .where(Subscription.address == "stranger@example.org")
        )


def test_the_thread_follow_welcome_gives_the_threads_own_leave_link(
    world: tuple[Site, int], rsink: SmtpSink
) -> None:
    site = world[0]
    name = new_list(site)
    smtp(
        world,
        "starter@example.org",
        [f"{name}@{DOMAIN}"],
        f"Subject: Plans\r\nMessage-ID: <{name}-root@x>\r\n",
    )
    headers = f"To: {name}@{DOMAIN}\r\nSubject: Re: Plans\r\nIn-Reply-To: <{name}-root@x>\r\n"
    smtp(world, "fan@example.org", [f"{name}@{DOMAIN}"], headers, "follow")
    _confirm_by_reply(world, rsink, "fan@example.org")
    welcome = wait_until(
        lambda: (
            mails_to(rsink, "fan@example.org")
            if len(mails_to(rsink, "fan@example.org")) == 2
            else None
        ),
        what="the welcome",
    )[1]
    body = payload(welcome).decode()
    link = re.search(
        r"To stop getting this thread, open (https://lists\.test(/unsubscribe/\S+))", body
    )
    assert link, body
    client = create_app(site.settings).test_client()
    assert b"Stop mail about this thread" in client.get(link.group(2)).data
    assert client.post(link.group(2), data={"List-Unsubscribe": "One-Click"}).status_code == 200
    with site.db() as session:
        row = session.scalars(
            select(Subscription).where(Subscription.address == "fan@example.org")
        ).one()
    assert (row.kind, row.status) == ("thread", "ended")


def test_a_reply_the_relay_deferred_is_sent_later_all_the_same(
    world: tuple[Site, int], rsink: SmtpSink
) -> None:
    """The 451 retry of a reply already counted in
    its window must not be held back by that window.
    """
    from worker import outbox
    from worker.context import WorkerContext

    site = world[0]
    ctx = WorkerContext(site.settings)
    try:
        with transaction(site.db) as session:
            entry_id = dispatch.record(
                session,
                dispatch.SEND_NOTICE,
                0,
                {"template": "help", "list": "dev", "to": "deferred@example.org", "reply": True},
            ).id
        rsink.script("451 4.3.0 try again later")
        outbox.send_notice(ctx, entry_id)
        assert mails_to(rsink, "deferred@example.org") == []
        outbox.send_notice(ctx, entry_id)  # what the sweeper does after its backoff
        assert len(mails_to(rsink, "deferred@example.org")) == 1
    finally:
        ctx.dispose()
