"""Someone who is not on the list but follows one thread, through real processes.

Pat is no member of dev; she follows one thread and gets its posts, and nothing else of the
list. She stops it in every way there is, following again between: a one-word "unsubscribe"
reply, the thread's List-Unsubscribe link, "Unfollow" on her web dashboard, the administrator's
`listgate unsubscribe --thread`, and the list's unsubscribe command. Last she follows by a
"follow" reply, which a non-member must confirm. After each step a post goes through the
gateway and the SMTP sink must hold exactly the predicted mails.
"""

from __future__ import annotations

import re

import pytest

from tests.integration.test_journeys import (
    ANN,
    PAT,
    SAM,
    Journey,
    list_unsubscribe_url,
)
from tests.support.sink import SmtpSink
from tests.support.stack import Stack

pytestmark = pytest.mark.integration
SHARED_STACK: dict[str, str] = {}  # a shared `listgate up` (up_stack, sink)


@pytest.mark.long(62)
def test_a_non_member_follows_one_thread_and_stops_it_every_way(
    up_stack: Stack, sink: SmtpSink
) -> None:
    j = Journey(up_stack, sink)
    j.cli("lists", "create", j.list, "--title", "Developers")
    j.cli("subscribe", SAM, "--list", j.list)
    t1 = j.new_thread()
    j.expect((SAM, t1))
    thread_id = j.thread_path(t1).rsplit("/", 1)[1]

    def follow() -> None:
        """The administrator makes Pat follow t1; its next post reaches her, a new thread not."""
        out = j.cli("subscribe", PAT, "--list", j.list, "--thread", thread_id)
        assert PAT in out, out
        j.reply(t1)
        j.expect(*j.copies_to(SAM, ANN, PAT))
        j.new_thread()
        j.expect(*j.copies_to(SAM))

    def stopped() -> None:
        """t1's next post no longer reaches Pat."""
        j.reply(t1)
        j.expect(*j.copies_to(SAM, ANN))

    # By mail: a one-word reply in the thread.
    follow()
    j.thread_command(t1, "unsubscribe")
    j.expect((PAT, "Done"))
    stopped()

    # By the thread's List-Unsubscribe link (RFC 8058 one-click).
    j.cli("subscribe", PAT, "--list", j.list, "--thread", thread_id)
    j.reply(t1)
    got = j.expect(*j.copies_to(SAM, ANN, PAT))
    link = list_unsubscribe_url(got, PAT, j.posts[-1])
    assert "Stop mail about this thread" in j.web.get(link).body
    j.web.post(link, {"List-Unsubscribe": "One-Click"})
    stopped()

    # On the web dashboard: "Unfollow".
    follow()
    j.sign_in(j.web)
    assert "no longer follow" in j.dashboard("leave", "thread:")
    stopped()

    # The administrator's command, for that thread only.
    follow()
    out = j.cli("unsubscribe", PAT, "--list", j.list, "--thread", thread_id)
    assert "no longer follow" in out, out
    stopped()

    # The list's unsubscribe command: leaving the list ends the thread too, with a goodbye.
    follow()
    j.command("unsubscribe")
    j.expect((PAT, "You have left"))
    stopped()

    # In again by a "follow" reply: a non-member confirms first (From can be forged).
    j.thread_command(t1, "follow")
    confirm = j.expect((PAT, "Confirm"))
    reply_to = j.body(confirm, PAT, "Confirm")[0]["Reply-To"]
    assert re.match(rf"{j.list}\+confirm-", reply_to), reply_to
    stopped()
    j.mail(PAT, reply_to, "Re: confirm", "yes\n")
    j.expect((PAT, "Welcome"))
    j.reply(t1)
    j.expect(*j.copies_to(SAM, ANN, PAT))
