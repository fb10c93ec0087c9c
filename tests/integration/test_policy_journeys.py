"""A list whose posting policy changes while posts and threads are under way, through real
processes.

Sam is a member of dev, Mod its moderator. While dev is moderated Ann's post is held; dev
turns open and the held post stays held (nobody gets it) while new posts go out at once; Mod
approves it by mail after the switch: Sam gets it once, and a reply to it reaches Ann as a
reply to any post of hers does. Then Nia, no member, starts a thread while dev is open; dev
turns members-only: a member's reply still reaches her, her own reply is held, and approved it
reaches the list once. After each step the SMTP sink must hold exactly the predicted mails.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from listgate.db import transaction
from listgate.models import Message, Subscription
from tests.integration.test_administration_journeys import db
from tests.integration.test_bounce_journeys import send_digests_of
from tests.integration.test_journeys import ANN, BOB, SAM, Journey
from tests.support.sink import Received, SmtpSink
from tests.support.stack import Stack

pytestmark = pytest.mark.integration
SHARED_STACK: dict[str, str] = {}  # a shared `listgate up` (up_stack, sink)

MOD, NIA, KIM = "mod@example.org", "nia@example.com", "kim@example.org"
HELD = "awaits moderation"


def approve(j: Journey, moderators_mail: list[Received], subject: str) -> None:
    """Mod approves the held post by mailing the approve address of its moderators' mail."""
    text = j.body(moderators_mail, MOD, subject)[1]
    found = re.search(rf"{j.list}\+approve-[a-z0-9.]+@lists\.test", text)
    assert found, text
    j.mail(MOD, found.group(0), "approve", "approve\n")


@pytest.mark.long(36)
def test_posts_held_and_threads_running_across_policy_changes(
    up_stack: Stack, sink: SmtpSink
) -> None:
    j = Journey(up_stack, sink)
    j.cli("lists", "create", j.list, "--title", "Developers", "--moderators", MOD)
    assert "-> 'moderated'" in j.cli("lists", "edit", j.list, "--policy", "moderated")
    j.cli("subscribe", SAM, "--list", j.list)

    held = j.new_thread()
    got = j.expect((ANN, HELD), (MOD, HELD))

    # Open now: the held post stays held, a new post goes out at once.
    assert "-> 'open'" in j.cli("lists", "edit", j.list, "--policy", "open")
    j.new_thread()
    j.expect(*j.copies_to(SAM))

    # Approved after the switch: once to each subscriber.
    approve(j, got, HELD)
    j.expect((SAM, held))
    # A reply to it reaches its author, as a reply to her post on the open list does.
    j.reply(held)
    j.expect(*j.copies_to(SAM, ANN))

    # Nia, no member, starts a thread while the list is open; then it becomes members-only.
    started = j.mail(NIA, j.address, "Question from outside", "Hello all.\n")
    j.posts.append(started)
    j.expect(*j.copies_to(SAM))
    assert "-> 'members'" in j.cli("lists", "edit", j.list, "--policy", "members")
    answer = j.mail(SAM, j.address, "Re: Question from outside", "An answer.\n", started)
    j.expect((NIA, answer))
    # Her own next reply is held now; approved, it reaches the list once (Sam follows, she wrote).
    again = j.mail(NIA, j.address, "Re: Question from outside", "Thanks!\n", answer)
    got = j.expect((NIA, HELD), (MOD, HELD))
    approve(j, got, HELD)
    j.expect((SAM, again))
    j.mail(BOB, j.address, "Re: Question from outside", "Me too.\n", again)
    j.expect((BOB, HELD), (MOD, HELD))


@pytest.mark.long(26)
def test_a_post_approved_after_its_days_digest_comes_in_the_next(
    up_stack: Stack, sink: SmtpSink
) -> None:
    """Kim reads dev's daily digest. Ann's post came yesterday and was held; yesterday's digest
    went out (the beat after midnight) without it; Mod approves it today: Sam gets it at once,
    and Kim finds it in today's digest (it was received yesterday, but published today)."""
    j = Journey(up_stack, sink)
    j.cli("lists", "create", j.list, "--title", "Developers", "--moderators", MOD)
    j.cli("lists", "edit", j.list, "--policy", "moderated")
    j.cli("subscribe", SAM, "--list", j.list)
    j.cli("subscribe", KIM, "--list", j.list, "--digest")
    held = j.new_thread()
    got = j.expect((ANN, HELD), (MOD, HELD))
    today = datetime.now(UTC).date()
    yesterday = today - timedelta(days=1)
    with transaction(db(up_stack)) as session:  # it came yesterday, when Kim's digest was on
        session.execute(update(Message).values(received_at=datetime.now(UTC) - timedelta(days=1)))
        session.execute(
            update(Subscription).values(confirmed_at=datetime.now(UTC) - timedelta(days=2))
        )
    send_digests_of(j, yesterday.isoformat())
    j.expect()  # nothing was shown that day

    approve(j, got, HELD)
    j.expect((SAM, held))
    send_digests_of(j, today.isoformat())
    assert [who for who, _ in j.arrivals()] == [KIM], "the approved post reached no digest"
