"""Two threads merge under their followers when their missing link arrives late.

Ann's post answers a post the list never got; Bob's answers another, itself an answer to the
first. They start two threads. Pat follows the first, Kim the second, Lee both; Dee followed
the first and left it again; Eve followed the second and left it, then asked by mail to follow
the first (a confirmation is on its way). The missing middle post arrives and the threads merge.
After each step a post goes through the gateway and the SMTP sink must hold exactly the
predicted mails: everyone who follows either thread gets one copy (Lee too), Dee and Eve
nothing; Eve's confirmation, mailed before the merge, still lets her in; Lee leaves by the link
of a mail about the second thread, received before the merge.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.integration.test_journeys import (
    ANN,
    BOB,
    PAT,
    SAM,
    Journey,
    list_unsubscribe_url,
)
from tests.support.sink import SmtpSink
from tests.support.stack import Stack

pytestmark = pytest.mark.integration
SHARED_STACK: dict[str, str] = {}  # a shared `listgate up` (up_stack, sink)

KIM, LEE, DEE, EVE = "kim@example.org", "lee@example.org", "dee@example.org", "eve@example.org"


def post(j: Journey, sender: str, subject: str, parent: str, msgid: str = "") -> str:
    """A post answering parent (which may not have arrived); its Message-ID."""
    sent = j.mail(sender, j.address, subject, "A post.\n", in_reply_to=parent, msgid=msgid)
    j.posts.append(sent)
    j.subjects[sent] = subject
    return sent


def thread_id(j: Journey, msgid: str) -> str:
    """The id of the thread a post is in now (through the JSON API)."""
    return str(json.loads(j.web.get(f"/api/messages/{msgid}").body)["thread_id"])


@pytest.mark.long(30)
def test_threads_merge_under_their_followers(up_stack: Stack, sink: SmtpSink) -> None:
    j = Journey(up_stack, sink)
    j.cli("lists", "create", j.list, "--title", "Developers")
    j.cli("subscribe", SAM, "--list", j.list)
    stamp = int(time.time())
    root, middle = f"root-{stamp}@example.net", f"middle-{stamp}@example.net"

    first = post(j, ANN, "Plans for the release", root)
    j.expect((SAM, first))
    second = post(j, BOB, "The build is slow", middle)
    j.expect((SAM, second))
    t1, t2 = thread_id(j, first), thread_id(j, second)
    assert t1 != t2

    for who, thread in ((PAT, t1), (KIM, t2), (LEE, t1), (LEE, t2), (DEE, t1), (EVE, t2)):
        j.cli("subscribe", who, "--list", j.list, "--thread", thread)
    for who, thread in ((DEE, t1), (EVE, t2)):
        assert "no longer follow" in j.cli("unsubscribe", who, "--list", j.list, "--thread", thread)

    # A post in the second thread: its followers get it, Lee once; her copy's link names t2.
    before = post(j, ANN, "Re: The build is slow", second)
    got = j.expect(*j.copies_to(SAM, BOB, KIM, LEE))
    lee_link = list_unsubscribe_url(got, LEE, before)

    # Eve asks to follow the first thread by a "follow" reply: she must confirm first.
    j.mail(EVE, j.address, "Re: Plans for the release", "follow\n\n> the quoted post\n", first)
    confirm = j.expect((EVE, "Confirm"))
    eve_reply_to = j.body(confirm, EVE, "Confirm")[0]["Reply-To"]

    # The missing middle arrives: the two threads become one; each follower of either gets it once.
    late = post(j, SAM, "Re: Plans for the release", root, msgid=middle)
    j.expect(*j.copies_to(PAT, KIM, LEE, ANN, BOB))
    assert thread_id(j, first) == thread_id(j, second), "the threads did not merge"

    # Eve's confirmation, mailed before the merge, lets her in after it.
    j.mail(EVE, eve_reply_to, "Re: confirm", "yes\n")
    j.expect((EVE, "Welcome"))
    post(j, ANN, "Re: Plans for the release", late)
    j.expect(*j.copies_to(SAM, PAT, KIM, LEE, BOB, EVE))

    # Lee leaves by the link of the mail about the second thread she got before the merge.
    assert "Stop mail about this thread" in j.web.get(lee_link).body
    j.web.post(lee_link, {"List-Unsubscribe": "One-Click"})
    post(j, BOB, "Re: Plans for the release", late)
    j.expect(*j.copies_to(SAM, PAT, KIM, ANN, EVE))


def at(hour: int) -> str:
    """A Date header on 30 November 2026."""
    return f"Mon, 30 Nov 2026 {hour:02d}:00:00 +0000"


def test_posts_moving_to_another_thread_keep_their_authors_following(
    up_stack: Stack, sink: SmtpSink
) -> None:
    j = Journey(up_stack, sink)
    j.cli("lists", "create", j.list, "--title", "Developers")
    j.cli("subscribe", SAM, "--list", j.list)

    # Kim answers "Widgets" without naming it (joined by its subject), Lee answers Kim.
    first = j.mail(ANN, j.address, "Widgets", "Widgets, anyone?\n", date=at(10))
    j.expect((SAM, first))
    kim = j.mail(KIM, j.address, "Re: Widgets", "Yes.\n", date=at(12))
    j.expect((SAM, kim), (ANN, kim))
    lee = j.mail(LEE, j.address, "Re: Widgets", "Why?\n", kim, date=at(13))
    j.expect((SAM, lee), (ANN, lee), (KIM, lee))
    assert thread_id(j, kim) == thread_id(j, first)

    # A "Widgets" dated between them arrives late: Kim's answer and Lee's move under it, and
    # they follow their posts there, so it reaches them as the start of their conversation now.
    later = j.mail(BOB, j.address, "Widgets", "Widgets again.\n", date=at(11))
    j.expect((SAM, later), (KIM, later), (LEE, later))
    assert thread_id(j, kim) == thread_id(j, later) != thread_id(j, first), "nothing moved"

    # An answer to Lee reaches the authors above it (they follow what they posted) and Bob.
    answer = j.mail(SAM, j.address, "Re: Widgets", "Because.\n", lee, date=at(14))
    assert j.arrivals() == sorted((who, answer) for who in (KIM, LEE, BOB))


def thread_reply(j: Journey, sender: str, parent: str, word: str) -> None:
    """A follow/mute reply to a post of the thread (a command, never archived)."""
    j.mail(sender, j.address, "Re: a topic", f"{word}\n\n> the quoted post\n", in_reply_to=parent)


@pytest.mark.long(44)
def test_a_merge_keeps_each_persons_latest_choice_of_follow_or_mute(
    up_stack: Stack, sink: SmtpSink
) -> None:
    """Pat muted the first thread, then followed the second; Kim followed the first, then muted
    the second. The missing post merges them: each has one choice for the thread, her latest,
    by mail and on its page (Pat follows it and gets its posts, Kim muted it and gets none)."""
    j = Journey(up_stack, sink)
    j.cli("lists", "create", j.list, "--title", "Developers")
    for who in (SAM, PAT, KIM):
        j.cli("subscribe", who, "--list", j.list)
    j.arrivals()
    stamp = int(time.time())
    root, middle = f"root-{stamp}@example.net", f"middle-{stamp}@example.net"
    first = post(j, ANN, "Plans for the release", root)
    j.expect(*j.copies_to(SAM, PAT, KIM))
    second = post(j, BOB, "The build is slow", middle)
    j.expect(*j.copies_to(SAM, PAT, KIM))
    t1, t2 = thread_id(j, first), thread_id(j, second)

    j.cli("subscribe", KIM, "--list", j.list, "--thread", t1)
    thread_reply(j, PAT, first, "mute")
    j.arrivals()  # what the command replies say
    j.cli("subscribe", PAT, "--list", j.list, "--thread", t2)
    thread_reply(j, KIM, second, "mute")
    j.arrivals()
    post(j, ANN, "Re: Plans for the release", first)
    j.expect(*j.copies_to(SAM, KIM))  # Pat muted it

    late = post(j, SAM, "Re: Plans for the release", root, msgid=middle)
    assert j.arrivals() == sorted(j.copies_to(PAT, ANN, BOB)), "the latest choice wins"
    assert thread_id(j, first) == thread_id(j, second), "the threads did not merge"
    post(j, ANN, "Re: Plans for the release", late)
    j.expect(*j.copies_to(SAM, PAT, BOB))

    j.sign_in(j.web)
    page = j.web.get(f"/threads/{thread_id(j, first)}").body
    assert "You follow this thread by mail." in page and "You muted this thread" not in page
