"""One copy lost, reported many times, through real processes.

Pat's mailbox is gone. Her server (a real Postfix DSN, naming her in capitals) reports her copy
of a post three times to its VERP address: one copy failed, one bounce counts, and with a limit
of 2 she still gets the next post. The report of that next copy is the second failure: she is
suspended and told so, once, and the post after goes to Sam only.
"""

from __future__ import annotations

import smtplib

import pytest

from tests.integration.test_bounce_journeys import post_to_pat
from tests.integration.test_journeys import PAT, SAM, Journey
from tests.support.corpora import corpus
from tests.support.sink import SmtpSink
from tests.support.stack import Stack

pytestmark = pytest.mark.integration
SHARED_STACK = {"LISTGATE_BOUNCE_SCORE_LIMIT": "2"}  # a shared `listgate up`


def postfix_report() -> bytes:
    """A real Postfix DSN (flufl.bounce's dsn_10) about Pat's address, written in capitals."""
    raw = (corpus("bounces", "data") / "dsn_10.txt").read_bytes()
    return raw.replace(b"anne.person@dom.ain", PAT.upper().encode())


def reported(j: Journey, verp: str, times: int) -> None:
    """The report of one copy, delivered `times` times from <> to the copy's VERP address."""
    with smtplib.SMTP("127.0.0.1", j.stack.smtp_port, timeout=30) as smtp:
        for _ in range(times):
            assert smtp.sendmail("", [verp], postfix_report()) == {}


def test_the_same_report_of_one_copy_three_times_counts_once(
    up_stack: Stack, sink: SmtpSink
) -> None:
    j = Journey(up_stack, sink)
    j.cli("lists", "create", j.list, "--title", "Developers")
    for who in (SAM, PAT):
        j.cli("subscribe", who, "--list", j.list)

    reported(j, post_to_pat(j, SAM), 3)
    j.expect()  # not suspended: no notice
    second = post_to_pat(j, SAM)  # and the next post still reaches her

    reported(j, second, 2)
    told = j.expect((PAT, "is suspended"))
    assert told[0].mail_from == "<>"  # its own report could not count
    j.new_thread()
    j.expect(*j.copies_to(SAM))


def test_mail_about_a_subscription_never_comes_back_as_a_bounce_to_count(
    up_stack: Stack, sink: SmtpSink
) -> None:
    """The confirmation asked for by mail and the goodbye (as the suspension notice, above) go
    out with the empty envelope sender: a dead mailbox's report about them goes nowhere, and so
    counts against nobody (posts' and digests' copies carry the VERP address that counts)."""
    j = Journey(up_stack, sink)
    j.cli("lists", "create", j.list, "--title", "Developers")
    j.cli("subscribe", SAM, "--list", j.list)
    j.command("subscribe")
    asked = j.expect((PAT, "Confirm"))
    j.cli("subscribe", PAT, "--list", j.list)
    j.command("unsubscribe")
    left = j.expect((PAT, "You have left"))
    assert [r.mail_from for r in asked + left] == ["<>", "<>"]
    j.new_thread()
    verp = next(r.mail_from for r in j.expect(*j.copies_to(SAM)))
    assert verp.startswith(f"{j.list}+bounce-"), verp
