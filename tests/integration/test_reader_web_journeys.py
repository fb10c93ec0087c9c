"""A reader's own life on the web archive, repeated and redone, through real processes.

Pat is signed in. She starts a thread from the web and her browser sends the form twice (a
double click on "Send", or the form sent again after a slow answer): the list gets one post,
each subscriber one copy. She replies the same way: one reply, one copy each; she edits her
post and sends the correction the same way: one new version, one correction each; a feed shows
the edit. After each step the SMTP sink must hold exactly the predicted mails. (Her reports:
test_reader_report_journeys.py; the list deleted after her life on it:
test_reader_deletion_journeys.py.)
"""

from __future__ import annotations

import json
import re
from xml.etree import ElementTree

import pytest

from tests.integration.test_journeys import PAT, SAM, Journey
from tests.integration.web_client import Page, WebClient
from tests.support.config import search
from tests.support.sink import SmtpSink
from tests.support.stack import Stack

pytestmark = pytest.mark.integration
SHARED_STACK = {"LISTGATE_REPORT_THRESHOLD": "1"}  # a shared `listgate up`

MOD = "mod@example.org"
ATOM = "{http://www.w3.org/2005/Atom}"
_FIELD = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


def sign_in(j: Journey, web: WebClient, address: str) -> None:
    """Sign address in on web by the link mailed to it."""
    web.post("/signin", {"address": address, "next": "/"}, on_page="/signin")
    got = j.expect((address, "sign-in link"))
    link = search(r"(http://\S+/signin/\S+)", j.body(got, address, "sign-in link")[1])
    done = web.post(link, {"next": "/"}, on_page=link)
    assert f"You are signed in as {address}" in done.body


def hidden_fields(page: Page) -> dict[str, str]:
    """The hidden fields of the page's form (its CSRF token among them)."""
    return dict(_FIELD.findall(page.body))


def send_twice(web: WebClient, path: str, subject: str, body: str) -> list[Page]:
    """Fill in the form at path once and send it twice, as a double click does."""
    fields = hidden_fields(web.get(path)) | {"subject": subject, "body": body}
    return [web.post(path, fields) for _ in range(2)]


def posts_with_subject(j: Journey, subject: str) -> list[str]:
    """The Message-IDs of dev's archived posts with this subject (through the JSON API)."""
    threads = json.loads(j.web.get(f"/api/lists/{j.list}/threads?limit=100").body)["threads"]
    found = []
    for t in threads:
        thread = json.loads(j.web.get(f"/api/threads/{t['id']}").body)
        found += [m["message_id"] for m in thread["messages"] if m.get("subject") == subject]
    return found


def thread_of(j: Journey, msgid: str) -> int:
    return int(json.loads(j.web.get(f"/api/messages/{msgid}").body)["thread_id"])


def feed_entry(xml: str, msgid: str) -> dict[str, str]:
    """The Atom entry of a post: its updated, published and content (and the feed's updated)."""
    feed = ElementTree.fromstring(xml)
    entry = next(e for e in feed.iter(f"{ATOM}entry") if msgid in (e.findtext(f"{ATOM}id") or ""))
    found = {k: entry.findtext(f"{ATOM}{k}") or "" for k in ("updated", "published", "content")}
    return found | {"feed": feed.findtext(f"{ATOM}updated") or ""}


def one_post(j: Journey, subject: str) -> str:
    """The one archived post with this subject."""
    found = posts_with_subject(j, subject)
    assert len(found) == 1, f"{len(found)} posts with the subject {subject!r}: {found}"
    return found[0]


@pytest.mark.long(24)
def test_a_form_sent_twice_is_one_post(up_stack: Stack, sink: SmtpSink) -> None:
    j = Journey(up_stack, sink)
    j.cli("lists", "create", j.list, "--title", "Developers")
    for member in (SAM, PAT):
        j.cli("subscribe", member, "--list", j.list)
    sign_in(j, j.web, PAT)

    first, again = send_twice(j.web, f"/lists/{j.list}/new", "Web topic", "Written on the web.\n")
    assert first.status == again.status == 200, (first.status, again.status)
    assert "/threads/" in again.url, again.url  # the second answer shows the post, too
    started = one_post(j, "Web topic")
    j.expect((SAM, started))

    pk = search(r'id="m(\d+)"', j.web.get(f"/m/{started}").body)
    send_twice(j.web, f"/messages/{pk}/reply", "Re: Web topic", "A reply from the web.\n")
    replied = one_post(j, "Re: Web topic")
    j.expect((SAM, replied))

    # Her edit, with the correction mailed, sent twice: one new version, one correction each.
    edit = f"/messages/{pk}/edit"
    fields = hidden_fields(j.web.get(edit)) | {"body": "Written again.\n", "send_correction": "yes"}
    for _ in range(2):
        assert "Your post is changed" in j.web.post(edit, fields).body
    history = j.web.get(f"/messages/{pk}/history").body
    assert "2 versions" in history, search(r'<p class="meta">(by .*?)</p>', history)
    j.expect((SAM, "Correction: Web topic"))
    # Feed readers keep an entry until its <updated> moves: the edit moves it, and the feed's.
    for feed in (f"/lists/{j.list}/feed.atom", f"/threads/{thread_of(j, started)}/feed.atom"):
        entry = feed_entry(j.web.get(feed).body, started)
        assert entry["content"] == "Written again.\n", (feed, entry)
        assert entry["feed"] >= entry["updated"] > entry["published"], (feed, entry)

    # The form sent, then changed and sent again (the browser's Back): a second post.
    fields = hidden_fields(j.web.get(f"/lists/{j.list}/new"))
    for words in ("One thing.\n", "Another thing.\n"):
        j.web.post(f"/lists/{j.list}/new", fields | {"subject": "Two things", "body": words})
    assert len(posts_with_subject(j, "Two things")) == 2
    j.expect((SAM, "Two things"), (SAM, "Two things"))

    # A new form is a new post, even with the same words.
    send_twice(j.web, f"/lists/{j.list}/new", "Web topic", "Written on the web.\n")
    assert len(posts_with_subject(j, "Web topic")) == 2
    j.expect((SAM, "Web topic"))
