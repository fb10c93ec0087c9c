"""A subscriber suspended by bounces comes back from the web, through real processes.

Pat's mailbox reports two posts as undeliverable (DSNs to the VERP address of her copies):
with a limit of 2 she is suspended and told so. She signs in and subscribes again on the
list's page: the next post reaches her. Then the same two reports come again (a remote
server's late or repeated DSNs about mail sent before she came back): they must not count
against her again. Reports about posts sent after her return still do.

A digest the relay refuses at RCPT counts the same way: Pat on the digest, whose mailbox is
gone, is suspended after as many refused digests as the limit, and told so.
"""

from __future__ import annotations

import smtplib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from listgate import dispatch
from listgate.config import Settings
from tests.integration.test_journeys import ANN, PAT, SAM, Journey
from tests.support.config import DOMAIN
from tests.support.sink import SmtpSink
from tests.support.stack import Stack
from tests.unit.worker.test_bounces import dsn
from worker.celery_app import make_celery

pytestmark = pytest.mark.integration
SHARED_STACK = {"LISTGATE_BOUNCE_SCORE_LIMIT": "2"}  # a shared `listgate up`


def post_to_pat(j: Journey, *others: str) -> str:
    """A new thread that reaches Pat (and others); the VERP address of her copy."""
    j.new_thread()
    got = j.expect(*j.copies_to(*others, PAT))
    return next(r.mail_from for r in got if r.rcpt_tos == [PAT])


def mailbox_gone(j: Journey, *verps: str) -> None:
    """Pat's mail server reports a copy undeliverable: a DSN from <> to each VERP address."""
    with smtplib.SMTP("127.0.0.1", j.stack.smtp_port, timeout=30) as smtp:
        for verp in verps:
            report = dsn(PAT, "5.1.1", "550 5.1.1 <pat@example.org>: User unknown")
            assert smtp.sendmail("", [verp], report) == {}


@pytest.mark.long(36)
def test_a_suspended_subscriber_back_from_the_web_is_not_suspended_by_old_bounces(
    up_stack: Stack, sink: SmtpSink
) -> None:
    j = Journey(up_stack, sink)
    j.cli("lists", "create", j.list, "--title", "Developers")
    for who in (SAM, PAT):
        j.cli("subscribe", who, "--list", j.list)
    old = [post_to_pat(j, SAM), post_to_pat(j, SAM)]

    mailbox_gone(j, *old)
    j.expect((PAT, "is suspended"))
    j.new_thread()
    j.expect(*j.copies_to(SAM))

    # Back from the web: signed in, "subscribe" on the list's page.
    j.sign_in(j.web)
    page = j.web.post(f"/lists/{j.list}/subscribe", {"kind": "list"}, on_page=f"/lists/{j.list}/")
    assert f"You now get every post from {j.list}" in page.body, page.body
    new = [post_to_pat(j, SAM)]

    # The reports about the posts sent before she came back arrive again: not counted again.
    mailbox_gone(j, *old)
    j.expect()
    new.append(post_to_pat(j, SAM))

    # Reports about posts sent since: they count, and suspend her again.
    mailbox_gone(j, *new)
    j.expect((PAT, "is suspended"))
    j.new_thread()
    j.expect(*j.copies_to(SAM))


@pytest.mark.long(20)
def test_an_old_digest_reported_after_a_return_to_the_digest_does_not_suspend(
    up_stack: Stack, sink: SmtpSink
) -> None:
    """Pat gets the day's digest, leaves, and comes back on the digest; then her old mailbox's
    reports about that digest arrive (twice: the limit): the digest went out before she came
    back, so they must not suspend her fresh subscription."""
    j = Journey(up_stack, sink)
    j.cli("lists", "create", j.list, "--title", "Developers")
    j.cli("subscribe", SAM, "--list", j.list)
    j.cli("subscribe", PAT, "--list", j.list, "--digest")
    j.new_thread()
    j.expect(*j.copies_to(SAM))
    j.send_digest()
    old = next(r.mail_from for r in j.expect((PAT, "digest")))
    assert old.startswith(f"{j.list}+bounce-"), old

    j.command("unsubscribe")
    j.expect((PAT, "You have left"))
    j.cli("subscribe", PAT, "--list", j.list, "--digest")

    mailbox_gone(j, old, old)
    j.expect()
    j.new_thread()
    j.expect(*j.copies_to(SAM))


class _RefusedOnce(dict[str, str]):
    """The sink's refused recipients, each refused at its next RCPT only (then accepted again)."""

    def get(self, key: str, default: Any = None) -> Any:
        return self.pop(key, default)


def refuse_next(sink: SmtpSink, address: str) -> None:
    """The relay refuses the next mail to address at RCPT, as for a mailbox that is gone."""
    with sink.handler.lock:
        if not isinstance(sink.handler.refused_rcpts, _RefusedOnce):
            sink.handler.refused_rcpts = _RefusedOnce()
        sink.handler.refused_rcpts[address] = f"550 5.1.1 <{address}>: Recipient address rejected"


def send_digests_of(j: Journey, day: str) -> None:
    """What the beat does after the day (a Sunday: the week it ends too), through the worker."""
    app = make_celery(Settings.from_env(j.stack.env))
    app.send_task(dispatch.SEND_DIGESTS, kwargs={"day": day})


def test_a_digest_reader_whose_digests_the_relay_refuses_is_suspended(
    up_stack: Stack, sink: SmtpSink
) -> None:
    """Pat reads the digest; her mailbox is gone and the relay refuses her digests at RCPT:
    the first counts (no notice below the limit of 2), the second suspends her and she is told,
    as a subscriber of every post whose copies are refused would be."""
    j = Journey(up_stack, sink)
    j.cli("lists", "create", j.list, "--title", "Developers")
    j.cli("subscribe", SAM, "--list", j.list)
    j.cli("subscribe", PAT, "--list", j.list, "--digest")
    j.new_thread()
    j.expect(*j.copies_to(SAM))

    refuse_next(sink, PAT)
    j.send_digest()  # today's daily digest, refused
    j.expect()

    j.command("digest-weekly")
    j.expect((PAT, f"Done: your mail from {j.list}"))
    today = datetime.now(UTC).date()
    sunday = today + timedelta(days=6 - today.weekday())
    refuse_next(sink, PAT)
    send_digests_of(j, sunday.isoformat())  # this week's digest, refused: the second
    j.expect((PAT, "is suspended"))


@pytest.mark.long(21)
def test_a_suspended_subscriber_gets_nothing_from_the_threads_she_follows_until_back(
    up_stack: Stack, sink: SmtpSink
) -> None:
    """Pat posted in a thread, so she follows it. Her mailbox is gone and she is suspended: the
    thread's next post must not go to the dead mailbox either. Back from the web, she gets it
    again."""
    j = Journey(up_stack, sink)
    j.cli("lists", "create", j.list, "--title", "Developers")
    for who in (SAM, PAT):
        j.cli("subscribe", who, "--list", j.list)
    topic = j.new_thread()
    j.expect(*j.copies_to(SAM, PAT))
    mine = j.mail(PAT, f"{j.list}@{DOMAIN}", "Re: a topic", "Me too.\n", topic)
    j.expect((SAM, mine), (ANN, mine))

    old = [post_to_pat(j, SAM), post_to_pat(j, SAM)]
    mailbox_gone(j, *old)
    j.expect((PAT, "is suspended"))
    j.reply(topic)
    j.expect(*j.copies_to(SAM, ANN))

    j.sign_in(j.web)
    page = j.web.post(f"/lists/{j.list}/subscribe", {"kind": "list"}, on_page=f"/lists/{j.list}/")
    assert f"You now get every post from {j.list}" in page.body, page.body
    j.reply(topic)
    j.expect(*j.copies_to(SAM, ANN, PAT))


@pytest.mark.long(40)
def test_threads_a_suspended_member_leaves_stay_away_once_she_is_back(
    up_stack: Stack, sink: SmtpSink
) -> None:
    """Pat is a member; her mailbox fails and she is suspended. Meanwhile she replies
    "unsubscribe" to a mail of one thread she got before, and mutes another on its web page (the
    page offers her Mute: she is still a member). Back from the web, the list's other threads
    reach her again, those two never."""
    j = Journey(up_stack, sink)
    j.cli("lists", "create", j.list, "--title", "Developers")
    for who in (SAM, PAT):
        j.cli("subscribe", who, "--list", j.list)
    noisy = j.new_thread()
    j.expect(*j.copies_to(SAM, PAT))
    loud = j.new_thread()
    j.expect(*j.copies_to(SAM, PAT))
    mailbox_gone(j, post_to_pat(j, SAM), post_to_pat(j, SAM))
    j.expect((PAT, "is suspended"))

    j.thread_command(noisy, "unsubscribe")  # her reply to the copy she got before
    got = j.expect((PAT, "Done: your mail from"))
    said = j.body(got, PAT, "Done: your mail from")[1]
    assert "You will get no more mail from this thread." in said, said
    j.sign_in(j.web)
    page = j.web.get(j.thread_path(loud))
    assert "Mute this thread" in page.body, page.body
    done = j.web.post(f"{j.thread_path(loud)}/mute", {}, on_page=j.thread_path(loud))
    assert "You will get no more mail from this thread." in done.body, done.body

    page = j.web.post(f"/lists/{j.list}/subscribe", {"kind": "list"}, on_page=f"/lists/{j.list}/")
    assert f"You now get every post from {j.list}" in page.body, page.body
    for topic in (noisy, loud):
        j.reply(topic)
        j.expect(*j.copies_to(SAM, ANN))  # the thread's starter follows it; Pat does not
    j.new_thread()
    j.expect(*j.copies_to(SAM, PAT))
