"""A relay's refusal of a *message* is a failed post, not a bounce of each subscriber; and copies a
standard relay would refuse (lines over 998 bytes) go out re-encoded and arrive.

The relay is a real aiosmtpd server that, like a standard MTA, refuses any line longer than
RFC 5321 allows ("500 Line too long"); the worker is a real Celery worker process.
"""

from __future__ import annotations

import re
from collections import Counter
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Iterator

import pytest
from sqlalchemy import select

from listgate import lists
from listgate.db import make_engine, session_factory, transaction, writer
from listgate.ingest import IngestResult
from listgate.models import Bounce, Message, OutboxEntry, RawMessage, Subscription
from listgate.schema import upgrade
from tests.conftest import free_port, make_settings
from tests.integration.worker_helpers import Site, WorkerProcess, mail, wait_until
from tests.sink import SmtpSink
from worker.celery_app import make_celery

pytestmark = pytest.mark.integration
SUBSCRIBERS = ("ann@example.org", "bob@example.org", "cyd@example.org")
FINAL = {"sent", "bounced", "refused", "failed", "cancelled", "deferred"}


@pytest.fixture(scope="module")
def relay() -> Iterator[SmtpSink]:
    sink = SmtpSink(port=free_port())
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture(scope="module")
def rsite(tmp_path_factory: pytest.TempPathFactory, relay: SmtpSink) -> Iterator[Site]:
    """One site and one worker for the module, with the production bounce limit (5)."""
    tmp = tmp_path_factory.mktemp("refusals")
    env = {"LISTGATE_DATA_DIR": str(tmp / "var"), "LISTGATE_DOMAIN": "lists.test",
           "LISTGATE_SECRET_KEY": "test-secret-key-0123456789", "LISTGATE_OUTBOUND": relay.url,
           "LISTGATE_BASE_URL": "https://lists.test", "LISTGATE_BOUNCE_SCORE_LIMIT": "5"}
    settings = make_settings(tmp, **env)
    engine = make_engine(settings)
    upgrade(engine)
    site = Site(settings, env, session_factory(writer(engine)), make_celery(settings))
    proc = WorkerProcess(env, tmp / "worker.log").start()
    yield site
    proc.stop()


@pytest.fixture
def site(rsite: Site, relay: SmtpSink, request: pytest.FixtureRequest) -> Site:
    """The shared site with a fresh list (three subscribers) named after the test, and an empty relay."""
    with relay.handler.lock:
        relay.handler.received.clear()
        relay.handler.scripted.clear()
        relay.handler.refused_rcpts.clear()
    name = re.sub(r"[^a-z0-9]", "", request.node.name.lower())[-30:]
    with transaction(rsite.db) as session:
        lists.create(session, name).dmarc_mode = "never"
    rsite.subscribe(name, *SUBSCRIBERS)
    rsite.list_name = name  # type: ignore[attr-defined]
    return rsite


def settled(site: Site, posted: list[IngestResult]) -> dict[tuple[int, str], str]:
    """Wait until every post was fanned out and each of its deliveries reached a final state."""
    ids = [entry.id for result in posted for entry in result.outbox]

    def states() -> dict[tuple[int, str], str] | None:
        if site.count(OutboxEntry, OutboxEntry.id.in_(ids), OutboxEntry.done_at.is_(None)):
            return None
        got = {(r.message_pk, addr): status for r in posted for addr, status in site.deliveries(r.message_pk).items()}
        return got if set(got.values()) <= FINAL else None
    return wait_until(states, timeout=90, what="every delivery settled")  # type: ignore[return-value]


def scores(site: Site, name: str) -> dict[str, tuple[str, float]]:
    with site.db() as session:
        rows = session.execute(select(Subscription.address, Subscription.status, Subscription.bounce_score)
                               .where(Subscription.list_id == lists.require(session, name).id,
                                      Subscription.kind == "list")).all()
    return {addr: (status, score) for addr, status, score in rows}


def multipart_with_long_html(name: str, msgid: str) -> bytes:
    """A newsletter-like post: its HTML part is one 5,000-byte line (as many editors write it)."""
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"], msg["Message-ID"] = ("Html <html@example.org>", f"{name}@lists.test",
                                                                 "Newsletter", f"<{msgid}>")
    msg.set_content("Short text part.\n")
    html = "<html><body>" + "".join(f"<p>Item {i} &mdash; caf\u00e9</p>" for i in range(200)) + "</body></html>\n"
    msg.add_alternative(html, subtype="html", cte="8bit")
    raw = msg.as_bytes(policy=policy.SMTP.clone(max_line_length=None))
    assert max(map(len, raw.splitlines())) > 4000
    return raw


def leaves(data: bytes) -> list[tuple[str, str]]:
    """(content type, decoded text) of every leaf part, for comparing what arrived with what was sent."""
    msg = message_from_bytes(data, policy=policy.default)
    return [(p.get_content_type(), p.get_content()) for p in msg.walk() if not p.is_multipart()]


def test_long_lines_go_out_re_encoded_arrive_intact_and_suspend_no_one(site: Site, relay: SmtpSink) -> None:
    name = site.list_name  # type: ignore[attr-defined]
    to = f"{name}@lists.test"
    # The attack: five posts with a 1,500-byte header line used to make each copy a "bounce".
    attacks = [mail("mallory@example.net", f"Junk {i}", f"junk{i}-{name}@x", to=to, extra="X-Junk: " + "A" * 1500)
               for i in range(5)]
    paragraph = " ".join(["Un caf\u00e9 tr\u00e8s long sans retour \u00e0 la ligne."] * 90)
    legit = [
        mail("writer@example.org", "Long paragraph", f"para-{name}@x", paragraph + "\n", to=to,
             extra="Content-Transfer-Encoding: 8bit"),
        multipart_with_long_html(name, f"html-{name}@x"),
        mail("writer@example.org", " ".join(["A subject that goes on and on"] * 50), f"subj-{name}@x", to=to),
    ]
    posted = [site.post(raw, name) for raw in attacks + legit]
    states = settled(site, posted)
    assert len(states) == len(SUBSCRIBERS) * len(posted) and set(states.values()) == {"sent"}, Counter(states.values())
    assert scores(site, name) == {addr: ("active", 0.0) for addr in SUBSCRIBERS}
    assert site.count(Bounce, Bounce.address.in_(SUBSCRIBERS)) == 0
    copies = Counter((r.rcpt_tos[0], r.message["Message-ID"]) for r in relay.received)
    assert len(copies) == len(SUBSCRIBERS) * len(posted) and set(copies.values()) == {1}
    by_id = {r.message["Message-ID"]: r.data for r in relay.received if r.rcpt_tos == [SUBSCRIBERS[0]]}
    for raw in attacks + legit:
        sent = message_from_bytes(raw, policy=policy.default)
        got = by_id[sent["Message-ID"]]
        assert max(map(len, got.splitlines())) <= 998
        arrived = message_from_bytes(got, policy=policy.default)
        assert arrived["Subject"] == sent["Subject"] and arrived["X-Junk"] == sent["X-Junk"]
        assert leaves(got) == leaves(raw)
    with site.db() as session:  # the archive keeps the bytes as they were received
        for result, raw in zip(posted, attacks + legit):
            msg = session.get_one(Message, result.message_pk)
            assert session.get_one(RawMessage, msg.raw_id).data == raw
