"""Posts taken down after they were archived but before their mail went out, through real
processes.

Sam gets every post, Kim the daily digest. The relay turns Sam's copy of a post away for now
(451); the owner removes the post; the relay is back and the worker retries: Sam must not get
it. Again with a post that readers' reports hide (pending the moderators' review) while its
copy waits. A post after that reaches Sam, and the day's digest holds only the posts still
shown: neither the removed nor the hidden one.
"""

from __future__ import annotations

import json
import re

import pytest

from listgate import dispatch
from listgate.config import Settings
from tests.integration.test_journeys import SAM, Journey, digest_posts
from tests.support.sink import SmtpSink
from tests.support.stack import Stack
from worker.celery_app import make_celery

pytestmark = pytest.mark.integration
SHARED_STACK = {"LISTGATE_REPORT_THRESHOLD": "1"}  # a shared `listgate up`

KIM, MOD = "kim@example.org", "mod@example.org"
LATER = "451 4.3.0 try again later"


def retry(j: Journey) -> None:
    """What the beat does for deferred copies, brought forward: every one is due now."""
    app = make_celery(Settings.from_env(j.stack.env))
    app.send_task(dispatch.RETRY_DEFERRED, kwargs={"horizon": 86400})


def message_pk(j: Journey, msgid: str) -> str:
    raw_url = json.loads(j.web.get(f"/api/messages/{msgid}").body)["raw_url"]
    found = re.search(r"/messages/(\d+)\.eml$", raw_url)
    assert found, raw_url
    return found.group(1)


@pytest.mark.long(33)
def test_posts_taken_down_while_their_copies_wait(up_stack: Stack, sink: SmtpSink) -> None:
    j = Journey(up_stack, sink)
    j.cli("lists", "create", j.list, "--title", "Developers", "--moderators", MOD)
    j.cli("subscribe", SAM, "--list", j.list)
    j.cli("subscribe", KIM, "--list", j.list, "--digest")

    # Removed by the owner while Sam's copy waits for the relay: never mailed after that.
    sink.script(LATER)
    removed = j.new_thread()
    j.expect()
    out = j.cli("messages", "remove", removed, "--reason", "posted by mistake")
    assert "removed" in out, out
    retry(j)
    j.expect()

    # Hidden by a reader's report (pending review) while Sam's copy waits: not mailed either.
    j.sign_in(j.web)
    sink.script(LATER)
    hidden = j.new_thread()
    j.expect()
    pk = message_pk(j, hidden)
    j.web.post(f"/messages/{pk}/report", {"reason": "spam"}, on_page=f"/messages/{pk}/report")
    assert j.web.get(f"/api/messages/{hidden}").status == 404, "the report did not hide the post"
    j.expect((MOD, "report"))
    retry(j)
    j.expect()

    shown = j.new_thread()
    j.expect((SAM, shown))
    j.send_digest()
    got = j.expect((KIM, "digest"))
    assert digest_posts(got, KIM, j.posts) == [shown]
