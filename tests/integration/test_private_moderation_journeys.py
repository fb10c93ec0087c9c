"""An owner moderates her list by mail before and after it was made private, through real
processes.

The list has an owner and no moderator, so the held posts are mailed to her with an approve
address. While the list is public, mailing that address publishes the post to the members. The
list is made private (`listgate lists edit --private`); the next held post is mailed to her the
same way, and its approve address must still work, and so must a reply to it, which rejects the
next one: the code in each address proves she was asked. (A
private list answers strangers at RCPT as a list that does not exist; the owner, who is no
subscriber, was one of them.) A stranger with a forged code still gets that answer.
"""

from __future__ import annotations

import smtplib

import pytest

from tests.integration.test_journeys import ANN, PAT, Journey
from tests.support.config import DOMAIN, search
from tests.support.sink import SmtpSink
from tests.support.stack import Stack

pytestmark = pytest.mark.integration
SHARED_STACK: dict[str, str] = {}  # a shared `listgate up`
OWN = "own@example.org"
ASKED = "a post awaits moderation"


def held_and_asked(j: Journey, subject: str) -> tuple[str, str]:
    """Ann posts; the post is held, Ann is told, the owner asked: the approve address, and the
    reject address (the asking mail's Reply-To)."""
    j.mail(ANN, j.address, subject, "A post.\n")
    got = j.expect((ANN, "awaits moderation"), (OWN, ASKED))
    asking, text = j.body(got, OWN, ASKED)
    approve = search(r"To approve it, send any mail to:\s+(\S+@\S+)", text)
    return approve, str(asking["Reply-To"]).strip("<>")


def rcpt(j: Journey, sender: str, to: str) -> tuple[int, bytes]:
    """The gateway's answer to RCPT TO:<to> in a mail from sender."""
    with smtplib.SMTP("127.0.0.1", j.stack.smtp_port, timeout=30) as smtp:
        smtp.ehlo()
        smtp.mail(sender)
        return smtp.rcpt(to)


@pytest.mark.long(30)
def test_an_owner_approves_by_mail_after_her_list_was_made_private(
    up_stack: Stack, sink: SmtpSink
) -> None:
    j = Journey(up_stack, sink)
    j.cli("lists", "create", j.list, "--policy", "moderated", "--owners", OWN)
    j.cli("subscribe", PAT, "--list", j.list)
    approve, _ = held_and_asked(j, "Before")
    assert approve.startswith(f"{j.list}+approve-") and approve.endswith(f"@{DOMAIN}")
    j.mail(OWN, approve, "approve")
    j.expect((PAT, "Before"))

    j.cli("lists", "edit", j.list, "--private")
    approve, _ = held_and_asked(j, "After")
    answer = rcpt(j, OWN, approve)
    assert answer[0] == 250, f"the owner's approve address is refused at RCPT: {answer}"
    j.mail(OWN, approve, "approve")
    j.expect((PAT, "After"))
    _, reject = held_and_asked(j, "Spam")  # her reply to the asking mail rejects it
    j.mail(OWN, reject, "Re: a post awaits moderation", "reject: not for this list\n")
    j.expect((ANN, "was not accepted"))

    # a forged code: a stranger gets the answer for a list that does not exist
    for name in (j.list, "nolist"):
        answer = rcpt(j, "outsider@example.org", f"{name}+approve-1.aaaaaaaaaaaa@{DOMAIN}")
        assert answer[0] == 550, answer


@pytest.mark.long(30)
def test_an_owner_who_left_her_private_list_still_posts_to_it(
    up_stack: Stack, sink: SmtpSink
) -> None:
    """An owner reads, moderates and speaks for her list whether or not she takes its mail: after
    she unsubscribes, her mail to the private members-only list is accepted and sent to the
    members, not answered as mail to a list that does not exist, nor held."""
    j = Journey(up_stack, sink)
    j.cli("lists", "create", j.list, "--private", "--policy", "members", "--owners", OWN)
    for who in (OWN, PAT):
        j.cli("subscribe", who, "--list", j.list)
    j.arrivals()  # the welcomes
    j.mail(PAT, j.address, "From a member", "Hello.\n")
    j.expect((OWN, "From a member"))  # no copy of her own post to its author

    j.cli("unsubscribe", OWN, "--list", j.list)
    j.arrivals()  # the goodbye, if any
    answer = rcpt(j, OWN, j.address)
    assert answer[0] == 250, f"the owner's mail to her list is refused at RCPT: {answer}"
    j.mail(OWN, j.address, "From the owner", "Meeting moved.\n")
    j.expect((PAT, "From the owner"))  # not held, and no copy to her: she left
    answer = rcpt(j, "outsider@example.org", j.address)
    assert answer[0] == 550, answer  # a stranger still meets a list that does not exist
