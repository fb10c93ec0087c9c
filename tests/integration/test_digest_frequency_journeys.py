"""Changing how often the digest comes, through real processes: no post in two digests.

Pat reads the daily digest; Sam gets every post. Today's daily digest brings the first post;
Pat changes to the weekly digest by mail command; a second post comes; the week's digest (the
run for this week's Sunday, as the beat does on Monday) must bring only the second. Back on the
daily digest, today's run sends nothing more.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from listgate import dispatch
from listgate.config import Settings
from tests.integration.test_journeys import SAM, Journey, digest_posts
from tests.support.config import DOMAIN
from tests.support.sink import SmtpSink
from tests.support.stack import Stack
from worker.celery_app import make_celery

pytestmark = pytest.mark.integration
SHARED_STACK: dict[str, str] = {}  # a shared `listgate up` (up_stack, sink)

PAT = "pat@example.org"


def test_daily_then_weekly_brings_each_post_in_one_digest(up_stack: Stack, sink: SmtpSink) -> None:
    j = Journey(up_stack, sink)
    j.cli("lists", "create", j.list, "--title", "Developers")
    j.cli("subscribe", SAM, "--list", j.list)
    j.cli("subscribe", PAT, "--list", j.list, "--digest")

    t1 = j.new_thread()
    j.expect((SAM, t1))
    j.send_digest()
    got = j.expect((PAT, "digest"))
    assert digest_posts(got, PAT, j.posts) == [t1]

    j.mail(PAT, f"{j.list}+digest-weekly@{DOMAIN}", "digest-weekly")
    j.expect((PAT, "Done"))
    t2 = j.new_thread()
    j.expect((SAM, t2))

    today = datetime.now(UTC).date()
    sunday = today + timedelta(days=6 - today.weekday())
    make_celery(Settings.from_env(up_stack.env)).send_task(
        dispatch.SEND_DIGESTS, kwargs={"day": sunday.isoformat()}
    )
    got = j.expect((PAT, "week of"))
    assert digest_posts(got, PAT, j.posts) == [t2], (
        "the week's digest must hold only t2: t1 came in today's daily digest"
    )
    assert "(1 message)" in str(got[0].message["Subject"])

    j.mail(PAT, f"{j.list}+digest-daily@{DOMAIN}", "digest-daily")
    j.expect((PAT, "Done"))
    j.send_digest()
    j.expect()
