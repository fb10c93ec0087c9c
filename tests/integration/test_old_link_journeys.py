"""Links and addresses mailed at one time and used later, after what they named has changed,
through real processes.

A moderator removed from dev mails the approve address of a held post he was told of while he
was one: refused, with the reason, and the post stays held; the moderator added in his place
approves it with the same address, and Sam gets it once. Then dev is deleted and created
again under the same name (on SQLite the new dev has the old one's id): the unsubscribe link of
a copy of the old dev, and the reports of its copies bouncing late, must not act on the people
of the new dev; the bounce addresses of a private list's copies, which name when their copy was
made, still pass the gateway and count. After each step the SMTP sink must hold exactly the
predicted mails. Two more, which passed when written: a mail's unsubscribe link from before
Pat left and came back still takes her off, and a confirmation used after an administrator
subscribed her meanwhile says she is in already, with no second welcome.
"""

from __future__ import annotations

import re

import pytest

from tests.integration.test_bounce_journeys import mailbox_gone, post_to_pat
from tests.integration.test_journeys import (
    ANN,
    PAT,
    SAM,
    Journey,
    list_unsubscribe_url,
)
from tests.integration.web_client import WebClient
from tests.support.config import DOMAIN, search
from tests.support.sink import Received, SmtpSink
from tests.support.stack import Stack

pytestmark = pytest.mark.integration
SHARED_STACK = {"LISTGATE_BOUNCE_SCORE_LIMIT": "2"}  # a shared `listgate up`

MOD, NEW = "mod@example.org", "new@example.org"
HELD = "awaits moderation"


def approve_address(j: Journey, moderators_mail: list[Received], rcpt: str) -> str:
    text = j.body(moderators_mail, rcpt, HELD)[1]
    found = re.search(rf"{j.list}\+approve-[a-z0-9.]+@lists\.test", text)
    assert found, text
    return found.group(0)


@pytest.mark.long(29)
def test_a_removed_moderator_cannot_approve_by_the_address_he_was_mailed(
    up_stack: Stack, sink: SmtpSink
) -> None:
    j = Journey(up_stack, sink)
    j.cli("lists", "create", j.list, "--title", "Developers", "--moderators", MOD)
    j.cli("lists", "edit", j.list, "--policy", "moderated")
    j.cli("subscribe", SAM, "--list", j.list)
    held = j.new_thread()
    address = approve_address(j, j.expect((ANN, HELD), (MOD, HELD)), MOD)

    assert "no longer a moderator" in j.cli("moderators", "remove", j.list, MOD)
    assert "now a moderator" in j.cli("moderators", "add", j.list, NEW)
    j.mail(MOD, address, "approve", "approve\n")
    got = j.expect((MOD, "not carried out"))
    why = j.body(got, MOD, "not carried out")[1]
    assert f"not a moderator of {j.list}" in why and "changed nothing" in why, why

    # The post stayed held: the moderator now in charge approves it (the mail forwarded to him).
    j.mail(NEW, address, "approve", "approve\n")
    j.expect((SAM, held))
    # A new held post is mailed to him, not to the one removed.
    j.new_thread()
    j.expect((ANN, HELD), (NEW, HELD))


def old_dev_then_new_dev(j: Journey) -> tuple[str, list[str]]:
    """Pat gets three posts of dev; dev is deleted, created again, and Pat gets two posts of it.
    The unsubscribe link of her first copy of the old dev, and the VERP addresses of all three."""
    j.cli("lists", "create", j.list, "--title", "Developers")
    j.cli("subscribe", PAT, "--list", j.list)
    t1 = j.new_thread()
    got = j.expect((PAT, t1))
    old_unsubscribe = list_unsubscribe_url(got, PAT, t1)
    old_verps = [got[0].mail_from, post_to_pat(j), post_to_pat(j)]
    assert f"deleted {j.list}" in j.cli("lists", "delete", j.list, "--purge")
    j.cli("lists", "create", j.list, "--title", "Developers again")
    j.cli("subscribe", PAT, "--list", j.list)
    post_to_pat(j)
    post_to_pat(j)
    return old_unsubscribe, old_verps


@pytest.mark.long(30)
def test_the_unsubscribe_link_of_a_deleted_list_does_not_act_on_the_list_created_again(
    up_stack: Stack, sink: SmtpSink
) -> None:
    j = Journey(up_stack, sink)
    old_unsubscribe, _ = old_dev_then_new_dev(j)
    stranger = WebClient(j.stack.web_port)
    # The page the click opens says so, and so does the RFC 8058 one-click POST of a mail client.
    for used in (
        stranger.get(old_unsubscribe),
        stranger.post(old_unsubscribe, {"List-Unsubscribe": "One-Click"}),
    ):
        assert used.status == 400 and "no longer exists" in used.body, (used.status, used.body)
    j.expect()
    j.cli("subscribe", SAM, "--list", j.list)
    j.new_thread()
    j.expect(*j.copies_to(SAM, PAT))


@pytest.mark.long(50)
def test_late_bounces_of_a_deleted_lists_copies_do_not_suspend_on_the_list_created_again(
    up_stack: Stack, sink: SmtpSink
) -> None:
    j = Journey(up_stack, sink)
    _, old_verps = old_dev_then_new_dev(j)
    # The old dev's copies bounce late: that says nothing of Pat's subscription to the new dev.
    mailbox_gone(j, *old_verps)
    j.expect()
    j.cli("subscribe", SAM, "--list", j.list)
    j.new_thread()
    j.expect(*j.copies_to(SAM, PAT))


@pytest.mark.long(28)
def test_bounces_of_a_private_lists_copies_pass_the_gateway_and_count(
    up_stack: Stack, sink: SmtpSink
) -> None:
    """A private list shows itself at RCPT only to mail carrying a token made for it: the VERP
    address of each copy (which names its row and when the row was made) is one."""
    j = Journey(up_stack, sink)
    j.cli("lists", "create", j.list, "--title", "Developers")
    j.cli("lists", "edit", j.list, "--private")
    for member in (ANN, PAT):  # Ann writes every post
        j.cli("subscribe", member, "--list", j.list)
    verps = [post_to_pat(j), post_to_pat(j)]
    mailbox_gone(j, *verps)
    j.expect((PAT, "is suspended"))


@pytest.mark.long(34)
def test_the_unsubscribe_link_of_a_mail_from_before_a_return_still_takes_one_off(
    up_stack: Stack, sink: SmtpSink
) -> None:
    """Pat leaves and comes back, then uses the link of a mail of her first time on the list:
    it takes her off the list she is on now (a page saying she already left, while mail keeps
    coming, is what she must never see)."""
    j = Journey(up_stack, sink)
    j.cli("lists", "create", j.list, "--title", "Developers")
    for who in (SAM, PAT):
        j.cli("subscribe", who, "--list", j.list)
    t1 = j.new_thread()
    first_time = list_unsubscribe_url(j.expect(*j.copies_to(SAM, PAT)), PAT, t1)
    j.command("unsubscribe")
    j.expect((PAT, "You have left"))
    j.cli("subscribe", PAT, "--list", j.list)
    j.mail(PAT, f"{j.list}+digest-daily@{DOMAIN}", "digest")  # and to the digest and back
    j.expect((PAT, "Done"))
    j.mail(PAT, f"{j.list}+digest-off@{DOMAIN}", "digest")
    j.expect((PAT, "Done"))
    j.new_thread()
    j.expect(*j.copies_to(SAM, PAT))

    assert "Stop all mail from the list" in WebClient(j.stack.web_port).get(first_time).body
    WebClient(j.stack.web_port).post(first_time, {"List-Unsubscribe": "One-Click"})
    j.expect((PAT, "You have left"))
    j.new_thread()
    j.expect(*j.copies_to(SAM))


def test_a_confirmation_used_after_an_administrator_subscribed_the_person_meanwhile(
    up_stack: Stack, sink: SmtpSink
) -> None:
    """Pat asks on the web; before she confirms, an administrator subscribes her. Her link and
    her reply then say she is in already: one subscription, no second welcome, one copy."""
    j = Journey(up_stack, sink)
    j.cli("lists", "create", j.list, "--title", "Developers")
    j.cli("subscribe", SAM, "--list", j.list)
    stranger = WebClient(j.stack.web_port)
    stranger.post(
        f"/lists/{j.list}/subscribe", {"address": PAT, "kind": "list"}, on_page=f"/lists/{j.list}/"
    )
    got = j.expect((PAT, "Confirm your subscription"))
    msg, text = j.body(got, PAT, "Confirm")
    link = search(r"(http://\S+/confirm/\S+)", text)
    j.cli("subscribe", PAT, "--list", j.list)
    j.expect()
    used = stranger.post(link)
    assert used.status == 200 and "already" in used.body, (used.status, used.body)
    j.mail(PAT, str(msg["Reply-To"]).strip("<>"), "Re: confirm")
    answer = j.expect((PAT, "Done"))
    assert "already" in j.body(answer, PAT, "Done")[1]
    j.new_thread()
    j.expect(*j.copies_to(SAM, PAT))
