"""A subscriber suspended by bounces comes back from the web, through real processes.

Pat's mailbox reports two posts as undeliverable (DSNs to the VERP address of her copies):
with a limit of 2 she is suspended and told so. She signs in and subscribes again on the
list's page: the next post reaches her. Then the same two reports come again (a remote
server's late or repeated DSNs about mail sent before she came back): they must not count
against her again. Reports about posts sent after her return still do.
"""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_journeys import PAT, SAM, Journey, _journey_env
from tests.support.sink import SmtpSink
from tests.support.stack import Stack, make_stack, run_up
from tests.unit.worker.test_bounces import dsn

pytestmark = pytest.mark.integration


@pytest.fixture
def up_stack(tmp_path: Path, sink: SmtpSink) -> Iterator[Stack]:
    """`listgate up` on the embedded default, suspending at a bounce score of 2."""
    env = _journey_env(tmp_path, sink, LISTGATE_BOUNCE_SCORE_LIMIT="2")
    yield from run_up(make_stack(tmp_path, env))


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


def test_a_suspended_subscriber_back_from_the_web_is_not_suspended_by_old_bounces(
    up_stack: Stack, sink: SmtpSink
) -> None:
    j = Journey(up_stack, sink)
    j.cli("lists", "create", "dev", "--title", "Developers")
    for who in (SAM, PAT):
        j.cli("subscribe", who, "--list", "dev")
    old = [post_to_pat(j, SAM), post_to_pat(j, SAM)]

    mailbox_gone(j, *old)
    j.expect((PAT, "is suspended"))
    j.new_thread()
    j.expect(*j.copies_to(SAM))

    # Back from the web: signed in, "subscribe" on the list's page.
    j.sign_in(j.web)
    page = j.web.post("/lists/dev/subscribe", {"kind": "list"}, on_page="/lists/dev/")
    assert "You now get every post from dev" in page.body, page.body
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


def test_an_old_digest_reported_after_a_return_to_the_digest_does_not_suspend(
    up_stack: Stack, sink: SmtpSink
) -> None:
    """Pat gets the day's digest, leaves, and comes back on the digest; then her old mailbox's
    reports about that digest arrive (twice: the limit): the digest went out before she came
    back, so they must not suspend her fresh subscription."""
    j = Journey(up_stack, sink)
    j.cli("lists", "create", "dev", "--title", "Developers")
    j.cli("subscribe", SAM, "--list", "dev")
    j.cli("subscribe", PAT, "--list", "dev", "--digest")
    j.new_thread()
    j.expect(*j.copies_to(SAM))
    j.send_digest()
    old = next(r.mail_from for r in j.expect((PAT, "digest")))
    assert old.startswith("dev+bounce-"), old

    j.command("unsubscribe")
    j.expect((PAT, "You have left"))
    j.cli("subscribe", PAT, "--list", "dev", "--digest")

    mailbox_gone(j, old, old)
    j.expect()
    j.new_thread()
    j.expect(*j.copies_to(SAM))
