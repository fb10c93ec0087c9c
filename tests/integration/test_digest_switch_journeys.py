"""Switching between the digest and every post in the middle of a day, through real processes.

Pat and Kim start the day on the daily digest, Sam gets every post. Kim switches to every
post after the first post and stays there; Pat switches to every post and back to the digest.
A post goes through the gateway between steps, the SMTP sink must hold exactly the predicted
mails after each, and the day's digest at the end must hold, for each of them, exactly the
posts of the day they did not get one by one: no post twice, none lost across the switch.
"""

from __future__ import annotations

import pytest

from tests.integration.test_journeys import SAM, Journey, digest_posts
from tests.support.config import DOMAIN
from tests.support.sink import SmtpSink
from tests.support.stack import Stack

pytestmark = pytest.mark.integration
SHARED_STACK: dict[str, str] = {}  # a shared `listgate up` (up_stack, sink)

PAT, KIM = "pat@example.org", "kim@example.org"


def command(j: Journey, sender: str, word: str) -> None:
    """A mail command (dev+WORD@) from sender."""
    j.mail(sender, f"{j.list}+{word}@{DOMAIN}", word)


@pytest.mark.long(22)
def test_switching_to_every_post_and_back_mid_day(up_stack: Stack, sink: SmtpSink) -> None:
    j = Journey(up_stack, sink)
    j.cli("lists", "create", j.list, "--title", "Developers")
    j.cli("subscribe", SAM, "--list", j.list)
    for who in (PAT, KIM):
        j.cli("subscribe", who, "--list", j.list, "--digest")

    t1 = j.new_thread()
    j.expect((SAM, t1))

    for who in (PAT, KIM):
        command(j, who, "digest-off")
    j.expect((PAT, "Done"), (KIM, "Done"))
    t2 = j.new_thread()
    j.expect((SAM, t2), (PAT, t2), (KIM, t2))

    command(j, PAT, "digest-daily")
    j.expect((PAT, "Done"))
    t3 = j.new_thread()
    j.expect((SAM, t3), (KIM, t3))

    j.send_digest()
    got = j.expect((PAT, "digest"), (KIM, "digest"))
    assert digest_posts(got, PAT, j.posts) == [t1, t3], (
        "Pat's digest must hold the posts she did not get one by one (t1, t3), not t2 twice"
    )
    assert digest_posts(got, KIM, j.posts) == [t1], (
        "Kim's digest must hold t1, posted while she was on the digest"
    )
    subjects = {r.rcpt_tos[0]: str(r.message["Subject"]) for r in got}
    assert "(2 messages)" in subjects[PAT], subjects
    assert "(1 message)" in subjects[KIM], subjects

    # The same run again sends nothing more to anyone.
    j.send_digest()
    j.expect()
