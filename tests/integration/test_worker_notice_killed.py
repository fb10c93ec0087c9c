"""A worker killed (SIGKILL) while it sends a notice: after a restart its reader has it once.

Each journey starts the work a person's action queues (a subscription asked on the web or by
mail, a post held for moderation, a mail to NAME+unsubscribe@, a copy the relay refuses or a
DSN reports), and the relay holds one notice at the moment of the kill: before the message (at
RCPT: the relay never took it, so it must be sent again) or after the final dot (the relay has
it: it must not be sent a second time). The beat's jobs then run as after any restart: the
recovery of what a dead worker held, and the outbox sweeper.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from listgate import confirmations, dispatch, lists
from listgate.addresses import parse_recipient
from listgate.db import transaction
from listgate.ingest import ingest
from listgate.mail.parser import parse
from listgate.models import Message, OutboxEntry
from listgate.states import DmarcMode, ListPolicy, PostState
from tests.support.commands import run
from tests.support.config import wait_until
from tests.support.processes import WorkerProcess
from tests.support.sink import SmtpSink
from tests.support.worker import Site, build_site, mail
from tests.unit.worker.test_bounces import dsn

pytestmark = pytest.mark.integration

ANN = "ann@example.org"
MOD = "mod@example.org"


def to_address(site: Site, address: str, raw: bytes, envelope_from: str) -> None:
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


def subscribe_on_the_web(site: Site, sink: SmtpSink) -> None:
    """Ann asks for the list on its page."""
    s = site.settings
    with transaction(site.db) as session:
        outcome = confirmations.request(
            session,
            lists.require(session, "dev"),
            ANN,
            secret=s.secret_key,
            base_url=s.base_url,
            domain=s.domain,
        )
    dispatch.enqueue(site.app, outcome.outbox)


def subscribe_by_mail(site: Site, sink: SmtpSink) -> None:
    """Ann writes to dev+subscribe@ (the answer is an automatic reply: one per window)."""
    raw = mail(ANN, "subscribe", "sub@example.org", to="dev+subscribe@lists.test")
    to_address(site, "dev+subscribe@lists.test", raw, ANN)


def unsubscribe_by_mail(site: Site, sink: SmtpSink) -> None:
    """Ann, a member, writes to dev+unsubscribe@."""
    site.subscribe("dev", ANN)
    raw = mail(ANN, "unsubscribe", "unsub@example.org", to="dev+unsubscribe@lists.test")
    to_address(site, "dev+unsubscribe@lists.test", raw, ANN)


def post_held(site: Site, sink: SmtpSink) -> None:
    """Ann posts to a moderated list: its moderator is told, with the post attached."""
    with transaction(site.db) as session:
        lists.create(
            session, "mod", policy=ListPolicy.MODERATED, moderators=MOD
        ).dmarc_mode = DmarcMode.NEVER
    site.post(mail(ANN, "Release plan", "plan@example.org", to="mod@lists.test"), "mod")


class _RefusedOnce(dict[str, str]):
    """The sink's refusals at RCPT, each used once."""

    def get(self, key: str, default: object = None) -> object:  # type: ignore[override]
        return self.pop(key, default)


def copies_refused(site: Site, sink: SmtpSink) -> None:
    """Ann's mailbox is gone: the relay refuses her copy of a post, and she is suspended (a
    limit of one bounce here) and told so."""
    site.subscribe("dev", ANN, "bob@example.org")
    with sink.handler.lock:
        sink.handler.refused_rcpts = _RefusedOnce({ANN: f"550 5.1.1 <{ANN}>: User unknown"})
    site.post(mail("carl@example.org", "Release plan", "plan@example.org"))


def dsn_reported(site: Site, sink: SmtpSink) -> None:
    """Ann's copy of a post reached the relay; her mail server then reports it undeliverable (a
    DSN to the copy's VERP address): she is suspended (a limit of one bounce here) and told so."""
    site.subscribe("dev", ANN)
    with sink.handler.lock:  # her copy goes through; the notice after it is the one held
        held = sink.handler.stalls.pop(ANN)
    site.post(mail("carl@example.org", "Release plan", "plan@example.org"))
    copy = wait_until(lambda: sink.to(ANN), what="Ann's copy")[0]
    with sink.handler.lock:
        sink.handler.stalls[ANN] = held
    report = dsn(ANN, "5.1.1", f"550 5.1.1 <{ANN}>: User unknown")
    to_address(site, copy.mail_from, report, "")


# (what the person does, whose notice the relay holds, what each one gets, what the site shows)
Journey = tuple[
    Callable[[Site, SmtpSink], None], str, dict[tuple[str, str], int], Callable[[Site], object]
]


def _member(site: Site, state: str) -> bool:
    """What `listgate lists members dev --status all` says of Ann."""
    shown = run(site.env, "lists", "members", "dev", "--status", "all")
    assert shown.exit_code == 0, shown.output
    line = next((line for line in shown.output.splitlines() if line.startswith(ANN)), "")
    assert state in line, shown.output
    return True


def _post_status(site: Site) -> object:
    with site.db() as session:
        return session.scalar(select(Message.status).where(Message.from_addr == ANN))


JOURNEYS: dict[str, Journey] = {
    "web confirmation": (
        subscribe_on_the_web,
        ANN,
        {(ANN, "Confirm your subscription to dev"): 1},
        lambda site: _member(site, "pending"),
    ),
    "mailed command's confirmation": (
        subscribe_by_mail,
        ANN,
        {(ANN, "Confirm your subscription to dev"): 1},
        lambda site: _member(site, "pending"),
    ),
    "goodbye": (
        unsubscribe_by_mail,
        ANN,
        {(ANN, "You have left dev"): 1},
        lambda site: _member(site, "ended"),
    ),
    "moderators' notice": (
        post_held,
        MOD,
        {
            (MOD, "mod: a post awaits moderation: Release plan"): 1,
            (ANN, "Your post to mod awaits moderation"): 1,
        },
        lambda site: _post_status(site) == PostState.HELD,
    ),
    "suspension notice": (
        copies_refused,
        ANN,
        {
            (ANN, "Your subscription to dev is suspended"): 1,
            ("bob@example.org", "Release plan"): 1,
        },
        lambda site: _member(site, "suspended"),
    ),
    "DSN's suspension notice": (
        dsn_reported,
        ANN,
        {
            (ANN, "Release plan"): 1,
            (ANN, "Your subscription to dev is suspended"): 1,
        },
        lambda site: _member(site, "suspended"),
    ),
}


@pytest.mark.parametrize("at", ["RCPT", "DATA"])
@pytest.mark.parametrize("journey", list(JOURNEYS))
def test_a_worker_killed_mid_notice_loses_none_and_sends_none_twice(
    tmp_path: Path, sink: SmtpSink, journey: str, at: str
) -> None:
    kill_mid_notice(tmp_path, sink, journey, at)


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.parametrize("at", ["RCPT", "DATA"])
def test_on_postgres_and_redis_a_killed_worker_s_confirmation_comes_once(
    tmp_path: Path, sink: SmtpSink, redis_db_url: str, postgres_db: str, at: str
) -> None:
    kill_mid_notice(
        tmp_path,
        sink,
        "mailed command's confirmation",
        at,
        LISTGATE_BROKER_URL=redis_db_url,
        LISTGATE_DATABASE_URL=postgres_db,
    )


def kill_mid_notice(tmp_path: Path, sink: SmtpSink, journey: str, at: str, **env: str) -> None:
    """The journey with the relay holding its notice at `at` while the worker is killed."""
    act, held_for, expected, shown = JOURNEYS[journey]
    site = build_site(tmp_path, sink, LISTGATE_BOUNCE_SCORE_LIMIT="1", **env)
    held = sink.stall(held_for, at)
    proc = WorkerProcess(site.env, tmp_path / "worker.log")
    try:
        proc.start()
        act(site, sink)
        wait_until(held.reached.is_set, what=f"{held_for}'s notice held by the relay at {at}")
        proc.kill()
        held.released.set()
        proc.start()
        # The beat's jobs after a restart (a claim is stale at once here).
        site.app.send_task(dispatch.RETRY_DEFERRED, kwargs={"stale_after": 0})
        site.app.send_task(dispatch.SWEEP_OUTBOX, kwargs={"older_than": 0})
        wait_until(
            lambda: all(sink.to(address) for address, _ in expected),
            what=f"every notice of the {journey} after the kill at {at}",
        )
        wait_until(
            lambda: site.count(OutboxEntry, OutboxEntry.done_at.is_(None)) == 0,
            what="no notice left waiting",
        )
    finally:
        proc.stop()
    got = Counter((r.rcpt_tos[0], str(r.message["Subject"])) for r in sink.received)
    assert got == expected, f"notices of the {journey} after the kill at {at}"
    assert shown(site), f"the state the site shows after the {journey}"
