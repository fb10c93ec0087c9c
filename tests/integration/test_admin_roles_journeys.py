"""Moderators changed while posts are held, through real processes.

dev is moderated, Mod its moderator, Sam a member. Ann's post is held and Mod hears of it. The
owner replaces Mod by Nat: Mod's approve reply is refused (he is told why; the post stays held),
the daily reminder goes to Nat only, and Nat's reply to its approve address publishes the post:
Sam gets it once. Nat is removed too: the owner hears of the next held post, and approves it by
mail; then the owner leaves, and the site administrator hears of the one after.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from listgate import dispatch
from listgate.config import Settings
from listgate.db import transaction
from listgate.models import Message
from tests.integration.test_administration_journeys import db
from tests.integration.test_journeys import ANN, SAM, Journey
from tests.support.sink import Received, SmtpSink
from tests.support.stack import Stack
from worker.celery_app import make_celery

pytestmark = pytest.mark.integration

MOD, NAT, OWNER, ROOT = "mod@example.org", "nat@example.org", "own@example.org", "root@example.org"
SHARED_STACK = {"LISTGATE_ADMINS": ROOT}  # a shared `listgate up`
HELD, STILL = "awaits moderation", "still awaits moderation"


def approve_address(j: Journey, got: list[Received], rcpt: str, label: str) -> str:
    text = j.body(got, rcpt, label)[1]
    found = re.search(rf"{j.list}\+approve-[a-z0-9.]+@lists\.test", text)
    assert found, text
    return found.group(0)


@pytest.mark.long(29)
def test_moderators_replaced_while_a_post_is_held(up_stack: Stack, sink: SmtpSink) -> None:
    j = Journey(up_stack, sink)
    j.cli("lists", "create", j.list, "--owners", OWNER, "--moderators", MOD)
    j.cli("lists", "edit", j.list, "--policy", "moderated")
    j.cli("subscribe", SAM, "--list", j.list)
    held = j.mail(ANN, j.address, "Held while the moderators change", "Hello.\n")
    got = j.expect((ANN, HELD), (MOD, HELD))
    old_address = approve_address(j, got, MOD, HELD)

    j.cli("moderators", "remove", j.list, MOD)
    j.cli("moderators", "add", j.list, NAT)
    j.mail(MOD, old_address, "approve", "approve\n")
    answer = j.expect((MOD, "not carried out"))
    assert f"{MOD} is not a moderator of {j.list}" in j.body(answer, MOD, "not carried out")[1]

    # Held half a day: the daily reminder goes to the moderators of now.
    with transaction(db(up_stack)) as session:
        session.execute(update(Message).values(received_at=datetime.now(UTC) - timedelta(hours=13)))
    make_celery(Settings.from_env(up_stack.env)).send_task(dispatch.SEND_REMINDERS)
    reminder = j.expect((NAT, STILL))
    j.mail(NAT, approve_address(j, reminder, NAT, STILL), "approve", "approve\n")
    j.expect((SAM, held))

    # No moderator left: the owner hears of held posts, and acts on them by mail.
    j.cli("moderators", "remove", j.list, NAT)
    second = j.mail(ANN, j.address, "Held with no moderator", "Hello.\n")
    got = j.expect((ANN, HELD), (OWNER, HELD))
    j.mail(OWNER, approve_address(j, got, OWNER, HELD), "approve", "approve\n")
    j.expect((SAM, second))

    # No owner either: the site administrator.
    j.cli("owners", "remove", j.list, OWNER)
    j.mail(ANN, j.address, "Held with nobody", "Hello.\n")
    j.expect((ANN, HELD), (ROOT, HELD))
