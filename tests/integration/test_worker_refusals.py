"""A relay's refusal of a *message* is a failed post, not a bounce of each subscriber; and copies a
standard relay would refuse (lines over 998 bytes) go out re-encoded and arrive.

The relay is a real aiosmtpd server that, like a standard MTA, refuses any line longer than
RFC 5321 allows ("500 Line too long"); the worker is a real Celery worker process.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from sqlalchemy import select

from listgate import dispatch, lists, subscriptions
from listgate.db import transaction
from listgate.ingest import IngestResult
from listgate.models import (
    Bounce,
    Delivery,
    DigestSent,
    Message,
    OutboxEntry,
    RawMessage,
    Subscription,
)
from listgate.states import DigestFormat, DmarcMode
from tests.support.config import wait_until
from tests.support.factories import stored_pk
from tests.support.sink import SmtpSink, enclosed
from tests.support.worker import Site, mail, worker_site

pytestmark = pytest.mark.integration
SUBSCRIBERS = ("ann@example.org", "bob@example.org", "cyd@example.org")
FINAL = {"sent", "bounced", "refused", "failed", "cancelled", "deferred"}


@pytest.fixture(scope="module")
def rsite(tmp_path_factory: pytest.TempPathFactory, msink: SmtpSink) -> Iterator[Site]:
    """One site and one worker for the module, with the production bounce limit (5)."""
    yield from worker_site(
        tmp_path_factory.mktemp("refusals"), msink.url, LISTGATE_BOUNCE_SCORE_LIMIT="5"
    )


@pytest.fixture
def site(rsite: Site, msink: SmtpSink, request: pytest.FixtureRequest) -> Site:
    """The shared site with a fresh list (three
    subscribers) named after the test, and an empty relay.
    """
    with msink.handler.lock:
        msink.handler.received.clear()
        msink.handler.scripted.clear()
        msink.handler.refused_rcpts.clear()
    name = re.sub(r"[^a-z0-9]", "", request.node.name.lower())[-30:]
    with transaction(rsite.db) as session:
        lists.create(session, name).dmarc_mode = DmarcMode.NEVER
    rsite.subscribe(name, *SUBSCRIBERS)
    rsite.list_name = name
    return rsite


def settled(site: Site, posted: list[IngestResult]) -> dict[tuple[int, str], str]:
    """Wait until every post was fanned out and each of its deliveries reached a final state."""
    ids = [entry.id for result in posted for entry in result.outbox]

    def states() -> dict[tuple[int, str], str] | None:
        if site.count(OutboxEntry, OutboxEntry.id.in_(ids), OutboxEntry.done_at.is_(None)):
            return None
        got = {
            (stored_pk(r), addr): status
            for r in posted
            for addr, status in site.deliveries(stored_pk(r)).items()
        }
        return got if set(got.values()) <= FINAL else None

    return wait_until(states, timeout=90, what="every delivery settled")


def scores(site: Site, name: str) -> dict[str, tuple[str, float]]:
    with site.db() as session:
        rows = session.execute(
            select(Subscription.address, Subscription.status, Subscription.bounce_score).where(
                Subscription.list_id == lists.require(session, name).id, Subscription.kind == "list"
            )
        ).all()
    return {addr: (status, score) for addr, status, score in rows}


def multipart_with_long_html(name: str, msgid: str) -> bytes:
    """A newsletter-like post: its HTML part is one 5,000-byte line (as many editors write it)."""
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"], msg["Message-ID"] = (
        "Html <html@example.org>",
        f"{name}@lists.test",
        "Newsletter",
        f"<{msgid}>",
    )
    msg.set_content("Short text part.\n")
    html = (
        "<html><body>"
        + "".join(f"<p>Item {i} &mdash; caf\u00e9</p>" for i in range(200))
        + "</body></html>\n"
    )
    msg.add_alternative(html, subtype="html", cte="8bit")
    raw = msg.as_bytes(policy=policy.SMTP.clone(max_line_length=None))
    assert max(map(len, raw.splitlines())) > 4000
    return raw


def leaves(data: bytes) -> list[tuple[str, str]]:
    """(content type, decoded text) of every leaf part,
    for comparing what arrived with what was sent.
    """
    msg = message_from_bytes(data, policy=policy.default)
    return [(p.get_content_type(), p.get_content()) for p in msg.walk() if not p.is_multipart()]


PARAGRAPH = " ".join(["Un caf\u00e9 tr\u00e8s long sans retour \u00e0 la ligne."] * 90)


def long_line_posts(name: str) -> tuple[list[bytes], list[bytes]]:
    """Five attack posts with a 1,500-byte header
    line, and three legitimate posts with long lines.
    """
    to = f"{name}@lists.test"
    attacks = [
        mail(
            "mallory@example.net",
            f"Junk {i}",
            f"junk{i}-{name}@x",
            to=to,
            extra="X-Junk: " + "A" * 1500,
        )
        for i in range(5)
    ]
    legit = [
        mail(
            "writer@example.org",
            "Long paragraph",
            f"para-{name}@x",
            PARAGRAPH + "\n",
            to=to,
            extra="Content-Transfer-Encoding: 8bit",
        ),
        multipart_with_long_html(name, f"html-{name}@x"),
        mail(
            "writer@example.org",
            " ".join(["A subject that goes on and on"] * 50),
            f"subj-{name}@x",
            to=to,
        ),
    ]
    return attacks, legit


def test_long_lines_go_out_re_encoded_arrive_intact_and_suspend_no_one(
    site: Site, msink: SmtpSink
) -> None:
    name = site.list_name
    # The attack: five posts with a 1,500-byte header line used to make each copy a "bounce".
    attacks, legit = long_line_posts(name)
    posted = [site.post(raw, name) for raw in attacks + legit]
    states = settled(site, posted)
    assert len(states) == len(SUBSCRIBERS) * len(posted) and set(states.values()) == {"sent"}, (
        Counter(states.values())
    )
    assert scores(site, name) == dict.fromkeys(SUBSCRIBERS, ("active", 0.0))
    assert site.count(Bounce, Bounce.address.in_(SUBSCRIBERS)) == 0
    copies = Counter((r.rcpt_tos[0], r.message["Message-ID"]) for r in msink.received)
    assert len(copies) == len(SUBSCRIBERS) * len(posted) and set(copies.values()) == {1}
    by_id = {
        r.message["Message-ID"]: r.data for r in msink.received if r.rcpt_tos == [SUBSCRIBERS[0]]
    }
    for raw in attacks + legit:
        sent = message_from_bytes(raw, policy=policy.default)
        got = by_id[sent["Message-ID"]]
        assert max(map(len, got.splitlines())) <= 998
        arrived = message_from_bytes(got, policy=policy.default)
        assert arrived["Subject"] == sent["Subject"] and arrived["X-Junk"] == sent["X-Junk"]
        assert leaves(got) == leaves(raw)
    with site.db() as session:  # the archive keeps the bytes as they were received
        for result, raw in zip(posted, attacks + legit, strict=True):
            msg = session.get_one(Message, result.message_pk)
            assert session.get_one(RawMessage, msg.raw_id).data == raw


def test_a_digest_of_long_line_posts_is_re_encoded_and_arrives(site: Site, msink: SmtpSink) -> None:
    name = site.list_name
    readers = {
        "mime-digest@example.org": DigestFormat.MIME,
        "plain-digest@example.org": DigestFormat.PLAIN,
    }
    site.subscribe(name, *readers, kind="digest")
    with transaction(site.db) as session:
        subscriptions.person_settings(
            session, "plain-digest@example.org"
        ).digest_format = DigestFormat.PLAIN
    attacks, legit = long_line_posts(name)
    settled(site, [site.post(raw, name) for raw in attacks + legit])
    site.app.send_task(dispatch.SEND_DIGESTS, kwargs={"day": datetime.now(UTC).date().isoformat()})
    wait_until(
        lambda: (
            site.count(DigestSent, DigestSent.address.in_(readers), DigestSent.status != "sending")
            == 2
        ),
        what="both digests settled",
    )
    assert site.count(DigestSent, DigestSent.address.in_(readers), DigestSent.status == "sent") == 2
    for address, fmt in readers.items():
        (got,) = msink.to(address)  # the strict relay took it, once
        assert max(map(len, got.data.splitlines())) <= 998, address
        digest = message_from_bytes(got.data, policy=policy.default)
        if fmt == DigestFormat.MIME:  # each post inside reads as it was sent
            inner = [
                enclosed(p) for p in digest.iter_parts() if p.get_content_type() == "message/rfc822"
            ]
            sent = [leaves(raw.replace(b"\r\n", b"\n")) for raw in attacks + legit]
            assert [leaves(m.as_bytes()) for m in inner] == sent
            assert [m["X-Junk"] for m in inner[:5]] == ["A" * 1500] * 5
        else:
            assert (
                PARAGRAPH in digest.get_content()
                and "A subject that goes on and on" in digest.get_content()
            )


MESSAGE_REFUSALS = [
    "554 5.7.1 Message rejected by the content filter",
    "552 5.3.4 Message size exceeds fixed limit",
    "500 Line too long (see RFC5321 4.5.3.1.6)",
    "550 5.6.0 Message has a header line too long",
    "554 Transaction failed: spam detected",
]


def moderation_page(site: Site, name: str) -> str:
    """The moderation page as the list's moderator sees it."""
    from tests.support.web import session_for
    from webarchive import create_app

    with transaction(site.db) as session:
        lists.require(session, name).moderators = "mod@example.org"
    app = create_app(site.settings)
    try:
        client = app.test_client()
        session_for(client, "mod@example.org")
        page = client.get("/moderation")
        assert page.status_code == 200
        return page.get_data(as_text=True)
    finally:
        app.extensions["listgate"].engine.dispose()


def test_a_relay_refusing_the_message_is_a_failed_post_not_a_bounce(
    site: Site, msink: SmtpSink
) -> None:
    from click.testing import CliRunner

    from listgate import cli

    name = site.list_name
    posted = []
    for i, reply in enumerate(
        MESSAGE_REFUSALS
    ):  # five refused posts: the limit that used to suspend everyone
        msink.script(*[reply] * len(SUBSCRIBERS))
        posted.append(
            site.post(
                mail(
                    "author@example.org",
                    f"Refused {i}",
                    f"refused{i}-{name}@x",
                    to=f"{name}@lists.test",
                ),
                name,
            )
        )
        settled(site, posted[-1:])
    states = settled(site, posted)
    assert set(states.values()) == {"refused"} and len(states) == len(SUBSCRIBERS) * len(posted)
    assert scores(site, name) == dict.fromkeys(SUBSCRIBERS, ("active", 0.0))
    assert site.count(Bounce, Bounce.address.in_(SUBSCRIBERS), Bounce.kind != "refused") == 0
    after = site.post(
        mail("author@example.org", "Still here", f"after-{name}@x", to=f"{name}@lists.test"), name
    )
    assert set(settled(site, [after]).values()) == {"sent"}
    assert sorted(r.rcpt_tos[0] for r in msink.received) == sorted(SUBSCRIBERS)
    page = moderation_page(site, name)
    assert "Posts the relay refused" in page
    for i, reply in enumerate(MESSAGE_REFUSALS):
        assert f"Refused {i}" in page and reply.split(" ", 1)[1][:20] in page
    assert "Still here" not in page.split("Posts the relay refused", 1)[1]
    status = CliRunner().invoke(cli.main, ["status"], env=site.env)
    assert f"failed     {len(MESSAGE_REFUSALS)} posts refused by the relay" in status.output, (
        status.output
    )


def test_only_a_refusal_naming_the_recipient_counts_against_them(
    site: Site, msink: SmtpSink
) -> None:
    name = site.list_name
    with msink.handler.lock:  # refused at RCPT: that recipient, and only them
        msink.handler.refused_rcpts["cyd@example.org"] = (
            "550 5.1.1 <cyd@example.org>: Recipient address rejected"
        )
    first = site.post(
        mail("author@example.org", "One", f"one-{name}@x", to=f"{name}@lists.test"), name
    )
    assert settled(site, [first]) == {
        (first.message_pk, "ann@example.org"): "sent",
        (first.message_pk, "bob@example.org"): "sent",
        (first.message_pk, "cyd@example.org"): "bounced",
    }
    with msink.handler.lock:
        msink.handler.refused_rcpts.clear()
    msink.script(
        "550 5.1.1 <ann@example.org>... User unknown",
        "552 5.3.4 Message too big for this mailbox",
        "550 5.2.1 Mailbox disabled",
    )  # after DATA: the status code says whose fault it is
    second = site.post(
        mail("author@example.org", "Two", f"two-{name}@x", to=f"{name}@lists.test"), name
    )
    assert sorted(settled(site, [second]).values()) == ["bounced", "bounced", "refused"]
    got = scores(site, name)
    assert sum(score for _, score in got.values()) == 3.0 and all(
        s == "active" for s, _ in got.values()
    )


def test_a_dsn_counts_only_when_it_names_the_subscribers_own_failure(
    site: Site, msink: SmtpSink
) -> None:
    from tests.integration.test_worker_mail import send_to
    from tests.unit.worker.test_bounces import dsn

    name = site.list_name
    post = site.post(
        mail("author@example.org", "Hello", f"hello-{name}@x", to=f"{name}@lists.test"), name
    )
    settled(site, [post])
    verp = msink.to("ann@example.org")[
        0
    ].mail_from  # ann's copy: bounces to it are about ann's delivery

    mine = (
        Bounce.address == "ann@example.org",
        Bounce.delivery_id.in_(select(Delivery.id).where(Delivery.message_pk == post.message_pk)),
    )

    def ann(expected: int) -> tuple[str, float]:
        """The kind of the latest bounce recorded for ann's copy of this post, and her score."""
        wait_until(lambda: site.count(Bounce, *mine) == expected, what="the bounce")
        with site.db() as session:
            kind = session.scalars(
                select(Bounce.kind).where(*mine).order_by(Bounce.id.desc())
            ).first()
        return kind or "", scores(site, name)["ann@example.org"][1]

    # The relay's next hop refused the message for its
    # long lines: a DSN naming ann, but not her fault.
    send_to(
        site,
        verp,
        dsn("ann@example.org", "5.6.0", "554 5.6.0 Message has lines too long"),
        envelope_from="",
    )
    assert ann(1) == ("refused", 0.0)
    # not ann's
    send_to(site, verp, dsn("bob@example.org", "5.1.1", "550 5.1.1 User unknown"), envelope_from="")
    assert ann(2) == ("refused", 0.0)
    # ann's own
    send_to(site, verp, dsn("ann@example.org", "5.1.1", "550 5.1.1 User unknown"), envelope_from="")
    assert ann(3) == ("permanent", 1.0)
    assert "Hello" in moderation_page(site, name).split("Posts the relay refused", 1)[1]
