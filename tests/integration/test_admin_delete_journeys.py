"""A list deleted while it is in use, and a new one created under its name, through real processes.

dev has Sam on every post and Kim on the daily digest; Sam's copy of a post waits for the relay
(451), a post waits for the moderator, Lee's request waits for approval. The owner deletes dev
with --purge: the waiting copy never goes out, nor does the digest of the day. A new dev is made
(SQLite gives it the old one's id): the old moderation address does not publish anything on it,
Lee's old request is not waiting on it, Sam and Kim get nothing of the old dev; subscribed again,
they get its posts, once, and Kim's digest holds the new dev's post only. After each step the
SMTP sink must hold exactly the predicted mails.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_admin_requests_journeys import ask_and_confirm
from tests.integration.test_journeys import ANN, SAM, Journey, _journey_env, digest_posts
from tests.integration.test_takedown_journeys import LATER, retry
from tests.support.sink import SmtpSink
from tests.support.stack import Stack, make_stack, run_up

pytestmark = pytest.mark.integration

MOD, KIM, LEE = "mod@example.org", "kim@example.org", "lee@example.net"
LIST = "dev@lists.test"
HELD = "awaits moderation"


@pytest.fixture
def up_stack(tmp_path: Path, sink: SmtpSink) -> Iterator[Stack]:
    """`listgate up` on the embedded default."""
    yield from run_up(make_stack(tmp_path, _journey_env(tmp_path, sink)))


def test_a_list_deleted_with_copies_posts_and_requests_waiting_and_made_again(
    up_stack: Stack, sink: SmtpSink
) -> None:
    j = Journey(up_stack, sink)
    j.cli("lists", "create", "dev", "--title", "Developers", "--moderators", MOD)
    j.cli("subscribe", SAM, "--list", "dev")
    j.cli("subscribe", KIM, "--list", "dev", "--digest")
    first = j.new_thread()
    j.expect((SAM, first))

    # Sam's copy waits for the relay; a post waits for the moderator; Lee waits for approval.
    sink.script(LATER)
    j.new_thread()
    j.expect()
    j.cli("lists", "edit", "dev", "--policy", "members")
    ask_and_confirm(j, LEE, "list")
    held = j.mail(ANN, LIST, "Held for the moderator", "Please let me in.\n")
    got = j.expect((ANN, HELD), (MOD, HELD))
    approve = re.search(r"dev\+approve-[a-z0-9.]+@lists\.test", j.body(got, MOD, HELD)[1])
    assert approve, j.body(got, MOD, HELD)[1]

    out = j.cli("lists", "delete", "dev", "--purge")
    assert "deleted dev: 3 messages" in out and "5 subscriptions" in out, out
    retry(j)
    j.send_digest()
    j.expect()  # neither the waiting copy nor the digest of the deleted dev

    # The same name again, with the old id: nothing of the old dev comes back.
    j.cli("lists", "create", "dev", "--title", "Developers again", "--moderators", MOD)
    assert "0 requests waiting" in j.cli("requests", "show", "--list", "dev")
    j.mail(MOD, approve.group(0), "approve", "approve\n")
    answer = j.expect((MOD, "not carried out"))
    assert "not valid" in j.body(answer, MOD, "not carried out")[1]
    retry(j)
    j.expect()
    assert held not in j.web.get("/lists/dev/").body

    j.cli("subscribe", SAM, "--list", "dev")
    j.cli("subscribe", KIM, "--list", "dev", "--digest")
    new = j.new_thread()
    j.expect((SAM, new))
    j.send_digest()
    digest = j.expect((KIM, "digest"))
    assert digest_posts(digest, KIM, [first, held, new]) == [new]
