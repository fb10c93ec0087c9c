"""Reporting a post again, and the moderators deciding twice, through real processes.

Pat reports a post; the moderator keeps it; she reports it again: the moderators hear of it
again, and the post is hidden again (the threshold is one report), as the page she is shown
says. The third time the moderator rejects it with a double click: it is taken down (a tombstone
in its place), its author is told once, and "Publish" pressed on a page shown before says it was
removed already. After each step the SMTP sink must hold exactly the predicted mails.
"""

from __future__ import annotations

import pytest

from tests.integration.test_journeys import ANN, PAT, SAM, Journey
from tests.integration.test_reader_web_journeys import MOD, hidden_fields, sign_in
from tests.integration.web_client import WebClient
from tests.support.config import search
from tests.support.sink import SmtpSink
from tests.support.stack import Stack

pytestmark = pytest.mark.integration
SHARED_STACK = {"LISTGATE_REPORT_THRESHOLD": "1"}  # a shared `listgate up`


@pytest.mark.long(21)
def test_a_post_kept_by_the_moderators_can_be_reported_again(
    up_stack: Stack, sink: SmtpSink
) -> None:
    j = Journey(up_stack, sink)
    j.cli("lists", "create", j.list, "--title", "Developers", "--moderators", MOD)
    j.cli("subscribe", SAM, "--list", j.list)
    post = j.new_thread()
    j.expect((SAM, post))
    pk = search(r'id="m(\d+)"', j.web.get(f"/m/{post}").body)
    sign_in(j, j.web, PAT)
    moderator = WebClient(j.stack.web_port)
    sign_in(j, moderator, MOD)

    def report(reason: str) -> None:
        done = j.web.post(
            f"/messages/{pk}/report", {"reason": reason}, on_page=f"/messages/{pk}/report"
        )
        assert "The moderators will look at this post" in done.body, done.body
        j.expect((MOD, "report"))
        assert j.web.get(f"/api/messages/{post}").status == 404, "the report did not hide it"
        assert f"/moderation/messages/{pk}/approve" in " ".join(
            moderator.get("/moderation").forms("/approve")
        ), "the report is not in the moderators' queue"

    def keep() -> None:
        moderator.post(f"/moderation/messages/{pk}/approve", on_page="/moderation")
        assert j.web.get(f"/api/messages/{post}").status == 200, "the post was not put back"
        j.expect()

    report("spam")
    keep()
    report("it is spam after all: see the link")
    keep()
    # The post stays on the list: a reply reaches Sam and Ann as before.
    j.reply(post)
    j.expect(*j.copies_to(SAM, ANN))

    # Reported a third time and rejected, by a double click: Ann is told once.
    report("still spam")
    on_queue = hidden_fields(moderator.get("/moderation"))
    for _ in range(2):
        moderator.post(f"/moderation/messages/{pk}/reject", on_queue | {"reason": "spam"})
    j.expect((ANN, "was not accepted"))
    assert j.web.get(f"/api/messages/{post}").status == 404
    # "Publish" pressed on a queue page shown before the rejection: the page says what it did.
    done = moderator.post(f"/moderation/messages/{pk}/approve", on_queue)
    assert "was removed already" in done.body, search(r'class="flash[^"]*"[^>]*>(.*?)<', done.body)
    assert j.web.get(f"/api/messages/{post}").status == 404
    j.expect()
