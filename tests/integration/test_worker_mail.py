"""Mail commands, thread replies, bounces and the digest, through one real Celery worker."""

from __future__ import annotations

import email.message
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime
from email.utils import getaddresses

import pytest
from sqlalchemy import func, select

from listgate import dispatch, lists, subscriptions
from listgate.addresses import parse_recipient
from listgate.db import transaction
from listgate.ingest import COMMAND, IngestResult, ingest
from listgate.mail.parser import parse
from listgate.models import Bounce, Delivery, DigestSent, Message, OutboxEntry, Subscription
from listgate.states import DeliveryState, DmarcMode, ReplyTo
from tests.support.config import DATA, wait_until
from tests.support.sink import SmtpSink, enclosed, payload
from tests.support.worker import Site, mail, worker_site
from worker import delivery, digest
from worker.celery_app import make_celery
from worker.context import WorkerContext

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def msite(tmp_path_factory: pytest.TempPathFactory, msink: SmtpSink) -> Iterator[Site]:
    """One site and one worker for the module; each test uses its own list."""
    # Addresses repeat across this module's tests; the one-reply-per-window rule has its own tests.
    yield from worker_site(
        tmp_path_factory.mktemp("mail"),
        msink.url,
        LISTGATE_BOUNCE_SCORE_LIMIT="2",
        LISTGATE_DMARC_ALWAYS="strict.example",
        LISTGATE_AUTO_REPLY_WINDOW="0",
    )


@pytest.fixture
def site(msite: Site, msink: SmtpSink, request: pytest.FixtureRequest) -> Site:
    """The shared site with a fresh list named after the test and an empty sink.

    The sink is emptied only once the previous test's work is done (every outbox entry and every
    copy in flight), so a late copy of its fan-out never lands among this test's mail.
    """
    in_flight = (DeliveryState.PENDING, DeliveryState.SENDING, DeliveryState.HANDING)
    wait_until(
        lambda: (
            msite.count(OutboxEntry, OutboxEntry.done_at.is_(None)) == 0
            and msite.count(Delivery, Delivery.status.in_(in_flight)) == 0
        ),
        what="the previous test's mail to be sent",
    )
    with msink.handler.lock:
        msink.handler.received.clear()
    name = re.sub(r"[^a-z0-9]", "", request.node.name.lower())[-30:]
    with transaction(msite.db) as session:
        # Real DNS is not asked in tests: only the DMARC test list looks (at an "always" domain).
        lists.create(session, name).dmarc_mode = (
            DmarcMode.AUTO if "dmarc" in request.node.name else DmarcMode.NEVER
        )
    msite.list_name = name
    return msite


def send_to(site: Site, address: str, raw: bytes, envelope_from: str | None = None) -> IngestResult:
    """What the gateway does with a mail to one of our addresses."""
    recipient = parse_recipient(address, "lists.test")
    assert recipient is not None
    with transaction(site.db) as session:
        result = ingest(
            session,
            parse(raw),
            lists.require(session, recipient.list_name),
            domain="lists.test",
            recipient=recipient,
            envelope_from=envelope_from,
        )
    dispatch.enqueue(site.app, result.outbox)
    return result


def status_of(site: Site, address: str, kind: str = "list") -> str | None:
    with site.db() as session:
        return session.scalar(
            select(Subscription.status).where(
                Subscription.address == address, Subscription.kind == kind
            )
        )


def test_subscribe_by_mail_is_confirmed_by_replying(site: Site, msink: SmtpSink) -> None:
    name = site.list_name
    raw = mail(
        "ann@example.org", "subscribe", f"sub-{name}@example.org", to=f"{name}+subscribe@lists.test"
    )
    send_to(site, f"{name}+subscribe@lists.test", raw, envelope_from="someone-else@example.net")
    confirm = wait_until(lambda: msink.to("ann@example.org"), what="the confirmation mail")[0]
    assert status_of(site, "ann@example.org") == "pending"
    assert confirm.mail_from in ("", "<>")  # the null sender: never bounces back to anyone
    msg = confirm.message
    assert msg["Auto-Submitted"] == "auto-replied"  # an answer to a mail (RFC 3834)
    assert re.fullmatch(rf"{name}\+confirm-[a-z0-9.]+@lists\.test", msg["Reply-To"])
    assert "https://lists.test/confirm/" in payload(msg).decode()
    reply = mail(
        "ann@example.org",
        f"Re: {msg['Subject']}",
        f"conf-{name}@example.org",
        "yes\n",
        to=msg["Reply-To"],
    )
    send_to(site, msg["Reply-To"], reply, envelope_from="ann@example.org")
    wait_until(lambda: status_of(site, "ann@example.org") == "active", what="the confirmation")
    welcome = wait_until(
        lambda: [r for r in msink.to("ann@example.org") if "Welcome" in r.message["Subject"]],
        what="the welcome mail",
    )
    assert welcome[0].message["Auto-Submitted"] == "auto-replied"  # it answers the confirming reply
    assert msink.to("someone-else@example.net") == []


def test_help_and_unsubscribe_commands(site: Site, msink: SmtpSink) -> None:
    name = site.list_name
    site.subscribe(name, "bob@example.org")
    send_to(
        site,
        f"{name}+help@lists.test",
        mail("bob@example.org", "help", f"h-{name}@x", to=f"{name}+help@lists.test"),
    )
    helped = wait_until(lambda: msink.to("bob@example.org"), what="the help mail")[0]
    assert helped.message["Auto-Submitted"] == "auto-replied"
    send_to(
        site,
        f"{name}+unsubscribe@lists.test",
        mail("bob@example.org", "bye", f"u-{name}@x", to=f"{name}+unsubscribe@lists.test"),
    )
    wait_until(lambda: status_of(site, "bob@example.org") == "ended", what="the unsubscription")
    wait_until(lambda: len(msink.to("bob@example.org")) == 2, what="the goodbye mail")


def test_follow_mute_unsubscribe_replies_act_and_are_not_archived(
    site: Site, msink: SmtpSink
) -> None:
    name = site.list_name
    site.subscribe(name, "reader@example.org", "other@example.org")
    root = site.post(
        mail("author@example.org", "Topic", f"root-{name}@x", to=f"{name}@lists.test"), name
    )
    wait_until(lambda: len(msink.received) >= 2, what="the root post")
    with site.db() as session:
        archived = session.scalar(
            select(func.count()).select_from(Message).where(Message.thread_id == root.thread_id)
        )

    def reply(sender: str, word: str) -> None:
        raw = mail(
            sender,
            "Re: Topic",
            f"{word}-{sender}-{name}@x",
            f"{word}\n\n> quoted text\n",
            to=f"{name}@lists.test",
            in_reply_to=f"root-{name}@x",
        )
        with transaction(site.db) as session:
            result = ingest(session, parse(raw), lists.require(session, name), domain="lists.test")
        assert result.status == COMMAND
        dispatch.enqueue(site.app, result.outbox)

    def kinds(address: str) -> list[str]:
        with site.db() as session:
            return sorted(
                session.scalars(
                    select(Subscription.kind).where(
                        Subscription.address == address, Subscription.status == "active"
                    )
                )
            )

    def answered(address: str, says: str) -> None:
        """The short confirmation mail each thread command gets (issue 11, point 5)."""
        got = wait_until(
            lambda: [
                r.message for r in msink.to(address) if r.message["Subject"].startswith("Done")
            ],
            what=f"the confirmation to {address}",
        )
        assert len(got) == 1 and says in payload(got[0]).decode()
        assert (
            got[0]["Auto-Submitted"] == "auto-replied"
            and f"/threads/{root.thread_id}" in got[0].get_payload()
        )

    reply("reader@example.org", "mute")
    wait_until(lambda: kinds("reader@example.org") == ["list", "mute"], what="the mute")
    answered("reader@example.org", "no more mail from this thread")
    reply("other@example.org", "follow")
    wait_until(lambda: kinds("other@example.org") == ["list", "thread"], what="the follow")
    answered("other@example.org", "You now follow this thread")
    reply("author@example.org", "unsubscribe")  # the author auto-followed by posting
    wait_until(lambda: kinds("author@example.org") == [], what="leaving the thread")
    answered("author@example.org", "You no longer follow this thread")
    with site.db() as session:
        assert (
            session.scalar(
                select(func.count()).select_from(Message).where(Message.thread_id == root.thread_id)
            )
            == archived
        )
    before = len(msink.received)
    site.post(
        mail(
            "x@example.org",
            "Re: Topic",
            f"r2-{name}@x",
            to=f"{name}@lists.test",
            in_reply_to=f"root-{name}@x",
        ),
        name,
    )
    wait_until(lambda: len(msink.received) >= before + 1, what="the next reply")
    assert [r.rcpt_tos[0] for r in msink.received[before:]] == ["other@example.org"]


def test_bounces_delayed_counts_nothing_permanent_suspends(site: Site, msink: SmtpSink) -> None:
    name = site.list_name
    site.subscribe(name, "flaky@example.org")
    site.post(mail("author@example.org", "One", f"one-{name}@x", to=f"{name}@lists.test"), name)
    verp = wait_until(lambda: msink.to("flaky@example.org"), what="the post")[0].mail_from

    def score() -> float:
        with site.db() as session:
            value = session.scalar(
                select(Subscription.bounce_score).where(Subscription.address == "flaky@example.org")
            )
            assert value is not None, "flaky@example.org is not subscribed"
            return value

    def bounces(kind: str) -> int:
        return site.count(Bounce, Bounce.address == "flaky@example.org", Bounce.kind == kind)

    delayed = (DATA / "bounces" / "dsn_05.txt").read_bytes()
    send_to(site, verp, delayed, envelope_from="")
    wait_until(lambda: bounces("delayed") == 1, what="the delay notice")
    assert score() == 0.0
    # A real DSN, about flaky's address (a bounce naming
    # someone else would not count against flaky).
    failed = (
        (DATA / "bounces" / "dsn_11.txt")
        .read_bytes()
        .replace(b"joem@example.com", b"flaky@example.org")
    )
    send_to(site, verp, failed, envelope_from="")
    wait_until(lambda: bounces("permanent") == 1, what="the first bounce")
    assert score() == 1.0 and status_of(site, "flaky@example.org") == "active"
    # the same report again (a relay retrying it) counts once: one copy fails once
    send_to(site, verp, failed.replace(b"Message-Id:", b"X-Old-Id:", 1), envelope_from="")
    wait_until(lambda: bounces("permanent") == 2, what="the report again")
    assert score() == 1.0 and status_of(site, "flaky@example.org") == "active"
    # the next post's copy bounces too: the second failed copy suspends (limit 2)
    site.post(mail("author@example.org", "Two", f"two-{name}@x", to=f"{name}@lists.test"), name)
    copies = wait_until(lambda: msink.to("flaky@example.org")[1:], what="the second post")
    send_to(site, copies[0].mail_from, failed, envelope_from="")
    wait_until(lambda: status_of(site, "flaky@example.org") == "suspended", what="the suspension")
    told = wait_until(
        lambda: [r for r in msink.to("flaky@example.org") if "suspended" in r.message["Subject"]],
        what="the suspension notice",
    )
    assert told[0].message["Auto-Submitted"] == "auto-generated"


def test_digest_arrives_once_a_day_with_every_post(site: Site, msink: SmtpSink) -> None:
    name = site.list_name
    site.subscribe(name, "digest@example.org", kind="digest")
    site.post(mail("a@example.org", "First topic", f"d1-{name}@x", to=f"{name}@lists.test"), name)
    site.post(mail("b@example.org", "Second topic", f"d2-{name}@x", to=f"{name}@lists.test"), name)
    site.post(
        mail(
            "c@example.org",
            "Re: First topic",
            f"d3-{name}@x",
            to=f"{name}@lists.test",
            in_reply_to=f"d1-{name}@x",
        ),
        name,
    )
    today = datetime.now(UTC).date().isoformat()
    site.app.send_task(dispatch.SEND_DIGESTS, kwargs={"day": today})
    got = wait_until(lambda: msink.to("digest@example.org"), what="the digest")
    received = got[0].message
    assert received.get_content_type() == "multipart/digest"
    parts = received.get_payload()
    assert isinstance(parts, list)  # a multipart's payload: its parts, each a Message
    toc, *posts = [p for p in parts if isinstance(p, email.message.Message)]
    text = payload(toc).decode()
    assert "First topic (2 messages)" in text and "Second topic (1 message)" in text
    assert sorted(enclosed(p)["Message-ID"] for p in posts) == sorted(
        f"<d{i}-{name}@x>" for i in (1, 2, 3)
    )
    wait_until(
        lambda: site.count(DigestSent, DigestSent.status == "sent") == 1, what="the record of it"
    )
    # The same day again (beat firing twice, a retried task): nothing more is sent.
    again = digest.send_digests(WorkerContext(site.settings), date.fromisoformat(today))
    assert again == 0 and len(msink.to("digest@example.org")) == 1


def test_broker_outage_delays_but_never_loses_and_duplicates_never_double(
    site: Site, msink: SmtpSink
) -> None:
    name = site.list_name
    site.subscribe(name, "r1@example.org", "r2@example.org")
    raw = mail(
        "author@example.org", "While the broker was down", f"down-{name}@x", to=f"{name}@lists.test"
    )
    with transaction(site.db) as session:  # committed, but the broker never heard of it
        result = ingest(session, parse(raw), lists.require(session, name), domain="lists.test")
    site.app.send_task(dispatch.SWEEP_OUTBOX, kwargs={"older_than": 0})
    dispatch.enqueue(site.app, result.outbox)  # and the original task shows up late, twice
    dispatch.enqueue(site.app, result.outbox)
    wait_until(lambda: len(msink.received) >= 2, what="the swept fan-out")
    pk = result.message_pk
    assert pk is not None
    wait_until(lambda: set(site.deliveries(pk).values()) == {"sent"}, what="all sent")
    assert sorted(r.rcpt_tos[0] for r in msink.received) == ["r1@example.org", "r2@example.org"]


def _produce(env: dict[str, str], ids: list[int]) -> None:
    """A separate producer process (like the gateway or the web) sending tasks to the broker."""
    from listgate.config import Settings

    app = make_celery(Settings.from_env(env))
    for outbox_id in ids:
        app.send_task(dispatch.SEND_NOTICE, args=[outbox_id])


def test_concurrent_producers_on_the_embedded_broker(site: Site, msink: SmtpSink) -> None:
    import multiprocessing

    name = site.list_name
    with transaction(site.db) as session:
        ids = [
            dispatch.record(
                session,
                dispatch.SEND_NOTICE,
                0,
                {"template": "help", "to": f"p{i}@example.org", "list": name},
            ).id
            for i in range(30)
        ]
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_produce, args=(site.env, ids[i::3])) for i in range(3)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
    assert [proc.exitcode for proc in procs] == [0, 0, 0]
    wait_until(lambda: len(msink.received) >= 30, what="every notice")
    assert sorted(r.rcpt_tos[0] for r in msink.received) == sorted(
        f"p{i}@example.org" for i in range(30)
    )


def test_author_gets_own_post_when_asked(site: Site, msink: SmtpSink) -> None:
    site.subscribe(site.list_name, "alice@example.org", "selfie@example.org")
    with transaction(site.db) as session:
        subscriptions.person_settings(session, "selfie@example.org", copy_own_posts=True)
    site.post(
        mail(
            "selfie@example.org", "Mine too", "own@example.org", to=f"{site.list_name}@lists.test"
        ),
        site.list_name,
    )
    wait_until(lambda: len(msink.received) >= 2, what="two copies")
    assert sorted(r.rcpt_tos[0] for r in msink.received) == [
        "alice@example.org",
        "selfie@example.org",
    ]


def test_dmarc_always_rewrites_from_and_keeps_body(site: Site, msink: SmtpSink) -> None:
    name = site.list_name
    site.subscribe(name, "alice@example.org")
    raw = mail(
        "sam@strict.example",
        "Strict",
        f"strict-{name}@strict.example",
        "Body line one.\nline two\n",
        to=f"{name}@lists.test",
    )
    site.post(raw, name)
    got = wait_until(lambda: msink.received, what="the DMARC copy")[0]
    msg = got.message
    assert getaddresses([msg["From"]]) == [(f"Sam via {name}", f"{name}@lists.test")]
    # The list's Reply-To policy is "none": a reply goes to
    # the author (whose address left From), not the list.
    assert getaddresses(msg.get_all("Reply-To", [])) == [("Sam", "sam@strict.example")]
    assert got.data.endswith(raw.split(b"\r\n\r\n", 1)[1])
    assert msg["Message-ID"] == f"<strict-{name}@strict.example>"
    with transaction(site.db) as session:
        lists.require(session, name).reply_to = ReplyTo.LIST
    site.post(
        mail(
            "sam@strict.example",
            "Strict again",
            f"strict2-{name}@strict.example",
            to=f"{name}@lists.test",
        ),
        name,
    )
    again = wait_until(lambda: msink.received[1:], what="the second DMARC copy")[0].message
    assert getaddresses(again.get_all("Reply-To", [])) == [
        ("Sam", "sam@strict.example"),
        ("", f"{name}@lists.test"),
    ]


def test_451_then_250_delivers_once(site: Site, msink: SmtpSink) -> None:
    site.subscribe(site.list_name, "alice@example.org")
    msink.script("451 4.3.0 try later")
    post = site.post(
        mail("author@example.org", "Later", "later@example.org", to=f"{site.list_name}@lists.test"),
        site.list_name,
    )
    pk = post.message_pk
    assert pk is not None
    wait_until(
        lambda: site.deliveries(pk).get("alice@example.org") == "deferred",
        what="deferral",
    )
    assert msink.received == []
    site.app.send_task(dispatch.RETRY_DEFERRED, kwargs={"horizon": 86400})
    wait_until(
        lambda: site.deliveries(pk).get("alice@example.org") == "sent",
        what="the retry",
    )
    # Running the retry again (beat, a duplicate task) sends nothing more.
    assert delivery.retry_due(WorkerContext(site.settings), stale_after=0, horizon=86400) == 0
    assert [r.rcpt_tos for r in msink.received] == [["alice@example.org"]]
    with site.db() as session:
        row = session.scalars(select(Delivery).where(Delivery.message_pk == post.message_pk)).one()
        assert (row.status, row.attempts) == ("sent", 2)


def test_550_is_a_bounce_and_never_retried(site: Site, msink: SmtpSink) -> None:
    site.subscribe(site.list_name, "gone@example.org")
    msink.script("550 5.1.1 no such user")
    post = site.post(
        mail(
            "author@example.org", "Hello", "hello550@example.org", to=f"{site.list_name}@lists.test"
        ),
        site.list_name,
    )
    pk = post.message_pk
    assert pk is not None
    wait_until(
        lambda: site.deliveries(pk).get("gone@example.org") == "bounced",
        what="the bounce",
    )
    with site.db() as session:
        bounce = session.scalars(select(Bounce).where(Bounce.address == "gone@example.org")).one()
        assert (bounce.address, bounce.kind) == ("gone@example.org", "permanent")
        assert "550" in bounce.diagnostic
        assert (
            session.scalars(
                select(Subscription.bounce_score).where(Subscription.address == "gone@example.org")
            ).one()
            == 1.0
        )
    assert delivery.retry_due(WorkerContext(site.settings), stale_after=0, horizon=86400) == 0
    post2 = site.post(
        mail(
            "author@example.org", "Again", "again550@example.org", to=f"{site.list_name}@lists.test"
        ),
        site.list_name,
    )
    pk2 = post2.message_pk
    assert pk2 is not None
    wait_until(
        lambda: site.deliveries(pk2).get("gone@example.org") == "sent",
        what="the next post",
    )
    assert [r.message["Subject"] for r in msink.received] == ["Again"]
    assert site.deliveries(pk) == {"gone@example.org": "bounced"}


def test_notice_refused_with_451_is_sent_later_by_the_sweeper(site: Site, msink: SmtpSink) -> None:
    from listgate.models import OutboxEntry

    name = site.list_name
    msink.script("451 4.3.0 try later")
    send_to(
        site,
        f"{name}+help@lists.test",
        mail("carl@example.org", "help", f"h451-{name}@x", to=f"{name}+help@lists.test"),
    )

    def notice_pending() -> bool:
        with site.db() as session:
            return any(
                '"template": "help"' in e.payload and e.done_at is None
                for e in session.scalars(
                    select(OutboxEntry).where(OutboxEntry.kind == dispatch.SEND_NOTICE)
                )
            )

    wait_until(lambda: notice_pending() and not msink.handler.scripted, what="the refused notice")
    assert msink.received == []
    site.app.send_task(dispatch.SWEEP_OUTBOX, kwargs={"older_than": 0})
    got = wait_until(lambda: msink.to("carl@example.org"), what="the notice, later")
    assert len(got) == 1 and "Help" in got[0].message["Subject"]
