"""A list deleted with its archive after readers lived on it on the web, through real processes.

What Pat's reading and writing left (what she has read of a thread, the versions of her edited
web post) and the other bytes that came with a post's Message-ID are rows of the list's archive:
`listgate lists delete --purge` takes them along, and the list made again works as new.
"""

from __future__ import annotations

import pytest

from tests.integration.test_journeys import ANN, PAT, SAM, Journey
from tests.integration.test_reader_web_journeys import hidden_fields, one_post, sign_in, thread_of
from tests.support.config import DOMAIN, search
from tests.support.sink import SmtpSink
from tests.support.stack import Stack

pytestmark = pytest.mark.integration
SHARED_STACK = {"LISTGATE_REPORT_THRESHOLD": "1"}  # a shared `listgate up`


@pytest.mark.long(36)
def test_a_list_read_and_written_on_the_web_can_be_deleted(up_stack: Stack, sink: SmtpSink) -> None:
    """Pat's visits (what she has read of a thread), her edit of a web post and the other bytes
    that came with a post's Message-ID are rows of the list's archive too: deleting the list with
    its archive takes them along."""
    j = Journey(up_stack, sink)
    j.cli("lists", "create", j.list, "--title", "Developers")
    j.cli("subscribe", SAM, "--list", j.list)
    sign_in(j, j.web, PAT)
    form = hidden_fields(j.web.get(f"/lists/{j.list}/new"))
    j.web.post(f"/lists/{j.list}/new", form | {"subject": "Web topic", "body": "First words.\n"})
    started = one_post(j, "Web topic")
    j.expect((SAM, started))
    pk = search(r'id="m(\d+)"', j.web.get(f"/m/{started}").body)
    edit = f"/messages/{pk}/edit"
    j.web.post(edit, hidden_fields(j.web.get(edit)) | {"body": "Other words.\n"})
    thread = f"/threads/{thread_of(j, started)}"
    assert "Other words." in j.web.get(thread).body  # and her visit is remembered
    # A mail of Ann's, then other bytes with its Message-ID (kept beside it, not sent out).
    for body in ("As sent.\n", "As sent again, changed.\n"):
        j.mail(ANN, f"{j.list}@{DOMAIN}", "By mail", body, msgid="twice@example.net")
    j.expect((SAM, "twice@example.net"))

    out = j.cli("lists", "delete", j.list, "--purge")
    assert f"deleted {j.list}" in out, out
    assert j.web.get(thread).status == 404
    j.cli("lists", "create", j.list, "--title", "Developers again")
    j.cli("subscribe", SAM, "--list", j.list)
    j.new_thread()
    j.expect((SAM, j.posts[-1]))
