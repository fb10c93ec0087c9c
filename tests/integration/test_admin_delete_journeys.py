"""A list deleted while it is in use, and a new one created under its name, through real processes.

dev has Sam on every post and Kim on the daily digest; Sam's copy of a post waits for the relay
(451), a post waits for the moderator, Lee's request waits for approval. The owner deletes dev
with --purge: the waiting copy never goes out, nor does the digest of the day. A new dev is made
(SQLite gives it the old one's id): the old moderation address does not publish anything on it,
Lee's old request is not waiting on it, Sam and Kim get nothing of the old dev; subscribed again,
they get its posts, once, and Kim's digest holds the new dev's post only. After each step the
SMTP sink must hold exactly the predicted mails.

Then a list deleted after its owner added moderators and changed settings, and made again under
its name: its settings page shows its own history only, not who ran the old list and how it
was deleted.
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from listgate.models import MailingList
from tests.integration.test_admin_requests_journeys import ask_and_confirm
from tests.integration.test_administration_journeys import db
from tests.integration.test_journeys import ANN, PAT, SAM, Journey, digest_posts
from tests.integration.test_takedown_journeys import LATER, retry
from tests.support.sink import SmtpSink
from tests.support.stack import Stack

pytestmark = pytest.mark.integration
SHARED_STACK: dict[str, str] = {}  # a shared `listgate up` (up_stack, sink)

MOD, KIM, LEE = "mod@example.org", "kim@example.org", "lee@example.net"
OLD = "old-owner@example.org"
HELD = "awaits moderation"


@pytest.mark.long(33)
def test_a_list_deleted_with_copies_posts_and_requests_waiting_and_made_again(
    up_stack: Stack, sink: SmtpSink
) -> None:
    j = Journey(up_stack, sink)
    j.cli("lists", "create", j.list, "--title", "Developers", "--moderators", MOD)
    j.cli("subscribe", SAM, "--list", j.list)
    j.cli("subscribe", KIM, "--list", j.list, "--digest")
    first = j.new_thread()
    j.expect((SAM, first))

    # Sam's copy waits for the relay; a post waits for the moderator; Lee waits for approval.
    sink.script(LATER)
    j.new_thread()
    j.expect()
    j.cli("lists", "edit", j.list, "--policy", "members")
    ask_and_confirm(j, LEE, "list")
    held = j.mail(ANN, j.address, "Held for the moderator", "Please let me in.\n")
    got = j.expect((ANN, HELD), (MOD, HELD))
    approve = re.search(rf"{j.list}\+approve-[a-z0-9.]+@lists\.test", j.body(got, MOD, HELD)[1])
    assert approve, j.body(got, MOD, HELD)[1]

    out = j.cli("lists", "delete", j.list, "--purge")
    assert f"deleted {j.list}: 3 messages" in out and "5 subscriptions" in out, out
    retry(j)
    j.send_digest()
    j.expect()  # neither the waiting copy nor the digest of the deleted dev

    # The same name again, with the old id: nothing of the old dev comes back.
    j.cli("lists", "create", j.list, "--title", "Developers again", "--moderators", MOD)
    assert "0 requests waiting" in j.cli("requests", "show", "--list", j.list)
    j.mail(MOD, approve.group(0), "approve", "approve\n")
    answer = j.expect((MOD, "not carried out"))
    assert "not valid" in j.body(answer, MOD, "not carried out")[1]
    retry(j)
    j.expect()
    assert held not in j.web.get(f"/lists/{j.list}/").body

    j.cli("subscribe", SAM, "--list", j.list)
    j.cli("subscribe", KIM, "--list", j.list, "--digest")
    new = j.new_thread()
    j.expect((SAM, new))
    j.send_digest()
    digest = j.expect((KIM, "digest"))
    assert digest_posts(digest, KIM, [first, held, new]) == [new]


@pytest.mark.long(30)
def test_a_list_created_again_under_a_deleted_lists_name_has_its_own_history(
    up_stack: Stack, sink: SmtpSink
) -> None:
    j = Journey(up_stack, sink)
    j.cli("lists", "create", j.list, "--title", "Old developers", "--owners", OLD)
    j.cli("moderators", "add", j.list, MOD)
    j.cli("lists", "edit", j.list, "--policy", "moderated", "--description", "the old one")
    j.cli("subscribe", SAM, "--list", j.list)
    with db(up_stack)() as session:
        old_id = session.scalar(select(MailingList.id).where(MailingList.name == j.list))
    assert f"deleted {j.list}" in j.cli("lists", "delete", j.list)

    j.cli("lists", "create", j.list, "--title", "Developers", "--owners", PAT)
    with db(up_stack)() as session:
        assert session.scalar(select(MailingList.id).where(MailingList.name == j.list)) == old_id
    j.cli("lists", "edit", j.list, "--reply-to", "list")
    j.sign_in(j.web)
    page = j.web.get(f"/lists/{j.list}/settings").body
    shown = page.partition("<h2>History</h2>")[2]
    assert "reply_to: &#39;none&#39; -&gt; &#39;list&#39;" in shown, page
    for old in ("delete list", OLD, MOD, "the old one", "moderated"):
        assert old not in shown, f"the new {j.list}'s history shows the old list's {old!r}: {shown}"
    assert j.cli("moderators", "show", j.list).strip() == f"{j.list} has no moderators"
    j.mail(SAM, f"{j.list}@lists.test", f"A post to the new {j.list}", "Hello.\n")
    j.expect()  # Sam was subscribed to the old dev only
