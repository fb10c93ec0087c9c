"""Digest readers and their bounces over time, through real processes.

A digest's copy is one copy: its reports count once, at the hardest (a 4xx, then the 5xx that
gave up). A report about a copy mailed before the reader last came back never counts, however
old its token (a subscription's, from before digests had their own). A post whose copy the
reader's mailbox refused was never had: the reader who then switches to the digest gets it
there. Real DSNs (a Postfix report from the corpora) go through the gateway between steps, and
after each step the sink holds exactly the mails predicted.
"""

from __future__ import annotations

import smtplib
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from listgate import tokens
from listgate.config import Settings
from listgate.db import make_engine, session_factory
from listgate.models import Subscription
from listgate.states import SubscriptionKind
from tests.integration.test_bounce_journeys import refuse_next, send_digests_of
from tests.integration.test_bounce_storm_journeys import postfix_report
from tests.integration.test_journeys import PAT, SAM, Journey, digest_posts
from tests.support.config import DOMAIN
from tests.support.sink import SmtpSink
from tests.support.stack import Stack
from tests.unit.worker.test_bounces import dsn

pytestmark = pytest.mark.integration
SHARED_STACK = {"LISTGATE_BOUNCE_SCORE_LIMIT": "2"}  # a shared `listgate up`


def report(j: Journey, verp: str, *reports: bytes) -> None:
    """Pat's mail server's reports, each from <> to the VERP address of the copy it is about."""
    with smtplib.SMTP("127.0.0.1", j.stack.smtp_port, timeout=30) as smtp:
        for raw in reports:
            assert smtp.sendmail("", [verp], raw) == {}


def mailbox_full() -> bytes:
    """A relay giving up on a copy with a 4xx (the mailbox full all along): a transient failure."""
    return dsn(PAT, "4.2.2", "452 4.2.2 <pat@example.org>: Mailbox full")


def digest_to_pat(j: Journey, day: str = "") -> str:
    """Today's digest (or the week's ending on day, a Sunday) reaches Pat; its VERP address."""
    if day:
        send_digests_of(j, day)
    else:
        j.send_digest()
    got = j.expect((PAT, "digest"))
    return got[0].mail_from


def test_a_digest_failing_with_a_4xx_then_a_5xx_counts_as_one_hard_bounce(
    up_stack: Stack, sink: SmtpSink
) -> None:
    """Pat's mailbox is full, then gone: her server gives up on today's digest with a 4xx,
    then (the real Postfix report) with a 5xx. One copy, one hard bounce: 1, not the 0.5 of the
    first report. The week's digest fails too: the second hard bounce, the limit of 2: she is
    suspended and told so."""
    j = Journey(up_stack, sink)
    j.cli("lists", "create", j.list, "--title", "Developers")
    j.cli("subscribe", SAM, "--list", j.list)
    j.cli("subscribe", PAT, "--list", j.list, "--digest")
    j.new_thread()
    j.expect(*j.copies_to(SAM))

    today = digest_to_pat(j)
    report(j, today, mailbox_full())  # the 4xx first (handled before the 5xx comes)
    j.expect()
    report(j, today, postfix_report())
    j.expect()  # 1 of 2: not suspended

    j.command("digest-weekly")
    j.expect((PAT, f"Done: your mail from {j.list}"))
    j.new_thread()
    j.expect(*j.copies_to(SAM))
    report(j, digest_to_pat(j, _sunday()), postfix_report())
    j.expect((PAT, "is suspended"))


def _sunday() -> str:
    """This week's Sunday: the day whose run sends the week's digest."""
    today = datetime.now(UTC).date()
    return (today + timedelta(days=6 - today.weekday())).isoformat()


def _subscription_token(j: Journey) -> str:
    """The VERP address Pat's digests carried before digests had their own token: her digest
    subscription's ('s', no time), as the reports of a digest mailed then still name it."""
    settings = Settings.from_env(j.stack.env)
    engine = make_engine(settings)
    try:
        with session_factory(engine)() as s:
            sub_id = s.scalars(
                select(Subscription.id).where(
                    Subscription.address == PAT, Subscription.kind == SubscriptionKind.DIGEST
                )
            ).one()
    finally:
        engine.dispose()
    token = tokens.verp_token(settings.secret_key, tokens.VERP_SUBSCRIPTION, sub_id)
    return f"{j.list}+bounce-{token}@{DOMAIN}"


def test_an_old_tokens_report_after_a_return_to_the_digest_does_not_suspend(
    up_stack: Stack, sink: SmtpSink
) -> None:
    """Pat got the day's digest under the old token (her subscription's), left, and came back on
    the digest. Her old mailbox's reports of that digest (twice: the limit) arrive: the digest
    went out before she came back (the newest digest she was sent did), so they must not
    suspend her fresh subscription: her next digest still comes."""
    j = Journey(up_stack, sink)
    j.cli("lists", "create", j.list, "--title", "Developers")
    j.cli("subscribe", SAM, "--list", j.list)
    j.cli("subscribe", PAT, "--list", j.list, "--digest")
    j.new_thread()
    j.expect(*j.copies_to(SAM))
    digest_to_pat(j)
    old = _subscription_token(j)

    j.command("unsubscribe")
    j.expect((PAT, "You have left"))
    j.cli("subscribe", PAT, "--list", j.list, "--digest")

    report(j, old, postfix_report(), postfix_report())
    j.expect()
    j.new_thread()
    j.expect(*j.copies_to(SAM))
    j.command("digest-weekly")
    j.expect((PAT, f"Done: your mail from {j.list}"))
    digest_to_pat(j, _sunday())


def test_an_old_tokens_report_after_a_digest_of_the_new_subscription_does_not_suspend(
    up_stack: Stack, sink: SmtpSink
) -> None:
    """As above, but the reports come late: after Pat came back, the week's digest of her new
    subscription has gone out. The old token still names a digest of her old subscription
    (such tokens stopped before digests were claimed): the reports must not suspend her, and
    she stays a member who gets her digest."""
    j = Journey(up_stack, sink)
    j.cli("lists", "create", j.list, "--title", "Developers")
    j.cli("subscribe", SAM, "--list", j.list)
    j.cli("subscribe", PAT, "--list", j.list, "--digest")
    j.new_thread()
    j.expect(*j.copies_to(SAM))
    digest_to_pat(j)
    old = _subscription_token(j)

    j.command("unsubscribe")
    j.expect((PAT, "You have left"))
    j.cli("subscribe", PAT, "--list", j.list, "--digest")
    j.command("digest-weekly")
    j.expect((PAT, f"Done: your mail from {j.list}"))
    j.new_thread()
    j.expect(*j.copies_to(SAM))
    digest_to_pat(j, _sunday())

    report(j, old, postfix_report(), postfix_report())
    j.expect()
    (line,) = [x for x in j.cli("lists", "members", j.list).splitlines() if PAT in x]
    assert "weekly digest" in line and "active" in line, line


def test_a_post_whose_copy_bounced_comes_in_the_digest_pat_switches_to(
    up_stack: Stack, sink: SmtpSink
) -> None:
    """Pat's mailbox refuses her copy of a post at RCPT (550 5.1.1): she never had it. She
    switches to the daily digest: the day's digest brings that post, and the one after it, but
    not the one she got one by one."""
    j = Journey(up_stack, sink)
    j.cli("lists", "create", j.list, "--title", "Developers")
    for who in (SAM, PAT):
        j.cli("subscribe", who, "--list", j.list)
    had = j.new_thread()
    j.expect(*j.copies_to(SAM, PAT))
    refuse_next(sink, PAT)
    lost = j.new_thread()
    j.expect(*j.copies_to(SAM))  # refused at RCPT: the sink never had it

    j.command("digest-daily")
    j.expect((PAT, f"Done: your mail from {j.list}"))
    after = j.new_thread()
    j.expect(*j.copies_to(SAM))

    j.send_digest()
    got = j.expect((PAT, "digest"))
    assert digest_posts(got, PAT, j.posts) == [lost, after], (
        f"Pat's digest must hold the post her mailbox refused ({lost}) and {after}, not {had}"
    )


def test_posts_that_came_while_pat_was_suspended_come_in_the_digest_she_switches_to(
    up_stack: Stack, sink: SmtpSink
) -> None:
    """Pat's mailbox refuses two copies (the limit): she is suspended, and the next post is not
    sent to her. Her mailbox works again; she switches to the daily digest on the web: the day's
    digest brings every post she never had, the refused ones and the one of her suspension."""
    j = Journey(up_stack, sink)
    j.cli("lists", "create", j.list, "--title", "Developers")
    for who in (SAM, PAT):
        j.cli("subscribe", who, "--list", j.list)
    lost = []
    for n in range(2):
        refuse_next(sink, PAT)
        lost.append(j.new_thread())
        j.expect(*j.copies_to(SAM), *([(PAT, "is suspended")] if n else []))
    while_suspended = j.new_thread()
    j.expect(*j.copies_to(SAM))

    j.sign_in(j.web)  # by mail a suspended address switches nothing (From can be forged)
    page = j.web.post(f"/lists/{j.list}/subscribe", {"kind": "digest"}, on_page=f"/lists/{j.list}/")
    assert f"You now get a daily digest from {j.list}" in page.body, page.body
    j.send_digest()
    got = j.expect((PAT, "digest"))
    assert digest_posts(got, PAT, j.posts) == [*lost, while_suspended], (
        "Pat's digest must hold the posts she never had: refused, and sent while suspended"
    )


def test_the_last_digest_bouncing_after_a_switch_to_every_post_counts_against_every_post(
    up_stack: Stack, sink: SmtpSink
) -> None:
    """Pat reads the daily digest and switches to every post after the day's first post; the
    day's digest still brings that post. Her mailbox is gone: her mail server reports that
    digest, mailed after the switch, failed (1 of the limit of 2), and the relay refuses her copy
    of the next post. Both are her mailbox's failures since she has been on every post: she is
    suspended and told so, and the next post is not mailed to the dead mailbox."""
    j = Journey(up_stack, sink)
    j.cli("lists", "create", j.list, "--title", "Developers")
    j.cli("subscribe", SAM, "--list", j.list)
    j.cli("subscribe", PAT, "--list", j.list, "--digest")
    first = j.new_thread()
    j.expect(*j.copies_to(SAM))
    j.command("digest-off")
    j.expect((PAT, f"Done: your mail from {j.list}"))
    j.send_digest()
    got = j.expect((PAT, "digest"))
    assert digest_posts(got, PAT, j.posts) == [first]
    report(j, got[0].mail_from, postfix_report())
    j.expect()

    refuse_next(sink, PAT)
    j.new_thread()
    j.expect(*j.copies_to(SAM), (PAT, "is suspended"))
    j.new_thread()
    j.expect(*j.copies_to(SAM))
