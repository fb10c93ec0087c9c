"""Confirmation links and mails over time, through real processes.

Kim's first confirmation mail is refused by her mail server; when it works again she asks
again and must get one at once. Pat confirms by a link, uses it again, leaves, uses it once
more; asks again, and before she confirms the list becomes members-only: the link then waits
for a moderator, who lets her in. After each step a post goes through the gateway and the
SMTP sink must hold exactly the predicted mails.
"""

from __future__ import annotations

import pytest

from tests.integration.test_journeys import ANN, PAT, SAM, Journey
from tests.integration.web_client import WebClient
from tests.support.config import DOMAIN, search
from tests.support.sink import SmtpSink
from tests.support.stack import Stack

pytestmark = pytest.mark.integration
SHARED_STACK: dict[str, str] = {}  # a shared `listgate up` (up_stack, sink)

KIM = "kim@example.org"


def ask(j: Journey, address: str) -> str:
    """Subscribe on the list's web form, not signed in; the page's answer."""
    page = WebClient(j.stack.web_port).post(
        f"/lists/{j.list}/subscribe",
        {"address": address, "kind": "list"},
        on_page=f"/lists/{j.list}/",
    )
    return search(r'<p class="flash \w+" role="status">(.*?)</p>', page.body)


def confirm_link(j: Journey, address: str) -> str:
    """The link of the confirmation mail that must arrive now."""
    got = j.expect((address, "Confirm your subscription"))
    return search(r"(http://\S+/confirm/\S+)", j.body(got, address, "Confirm")[1])


@pytest.mark.long(33)
def test_confirmations_used_again_refused_and_overtaken_by_a_members_only_list(
    up_stack: Stack, sink: SmtpSink
) -> None:
    j = Journey(up_stack, sink)
    j.cli("lists", "create", j.list, "--title", "Developers")
    for member in (SAM, ANN):  # Ann, the author of every post, may post to a members-only list
        j.cli("subscribe", member, "--list", j.list)

    # Kim's server refuses the confirmation; fixed, she asks again: a confirmation at once.
    with sink.handler.lock:
        sink.handler.refused_rcpts[KIM] = "550 5.2.1 <kim@example.org>: Mailbox disabled"
    assert "confirmation mail was sent" in ask(j, KIM)
    j.expect()
    with sink.handler.lock:
        sink.handler.refused_rcpts.clear()
    assert ask(j, KIM) == f"A confirmation mail was sent to {KIM}."
    WebClient(j.stack.web_port).post(confirm_link(j, KIM))
    j.expect((KIM, "Welcome"))
    t1 = j.new_thread()
    j.expect((SAM, t1), (KIM, t1))

    # Pat's link, used twice: one welcome, one copy of the next post.
    assert "confirmation mail was sent" in ask(j, PAT)
    link = confirm_link(j, PAT)
    stranger = WebClient(j.stack.web_port)
    assert "Your subscription is confirmed" in stranger.post(link).body
    j.expect((PAT, "Welcome"))
    again = stranger.post(link)
    assert again.status == 200 and "already confirmed" in again.body, again.body
    j.new_thread()
    j.expect(*j.copies_to(SAM, KIM, PAT))

    # After she left, the old link does not bring her back.
    j.command("unsubscribe")
    j.expect((PAT, "You have left"))
    late = stranger.post(link)
    assert late.status == 400 and "has been used" in late.body, late.body
    j.new_thread()
    j.expect(*j.copies_to(SAM, KIM))

    # Asked again; the list becomes members-only before she confirms: a moderator decides.
    assert "confirmation mail was sent" in ask(j, PAT)
    link = confirm_link(j, PAT)
    j.cli("lists", "edit", j.list, "--policy", "members")
    assert "moderator" in stranger.post(link).body
    j.expect((PAT, "awaits approval"))
    j.new_thread()
    j.expect(*j.copies_to(SAM, KIM))
    j.cli("requests", "approve", PAT, "--list", j.list)
    j.expect((PAT, "Welcome"))  # at once: the command hands its mail to the broker
    j.new_thread()
    j.expect(*j.copies_to(SAM, KIM, PAT))


def confirm_address(j: Journey, address: str) -> str:
    """The NAME+confirm-CODE@ address of the confirmation mail that must arrive now."""
    got = j.expect((address, "Confirm your subscription"))
    return str(j.body(got, address, "Confirm")[0]["Reply-To"]).strip("<>")


@pytest.mark.long(28)
def test_a_confirmation_confirms_only_the_request_it_was_mailed_for(
    up_stack: Stack, sink: SmtpSink
) -> None:
    """Pat (web) and Kim (mail) confirm, leave, and ask again; the first confirmation, used
    again while the second waits or after it, confirms nothing and says it was replaced. The
    second one, used again after they left, says it has been used."""
    j = Journey(up_stack, sink)
    j.cli("lists", "create", j.list, "--title", "Developers")
    j.cli("subscribe", SAM, "--list", j.list)
    stranger = WebClient(j.stack.web_port)

    # By link: Pat confirms, leaves by mail, asks again.
    assert "confirmation mail was sent" in ask(j, PAT)
    first = confirm_link(j, PAT)
    assert "Your subscription is confirmed" in stranger.post(first).body
    j.expect((PAT, "Welcome"))
    j.command("unsubscribe")
    j.expect((PAT, "You have left"))
    assert "confirmation mail was sent" in ask(j, PAT)
    second = confirm_link(j, PAT)
    opened = stranger.get(first)  # the page a click opens says it at once, with no button
    assert opened.status == 400 and "replaced by a newer one" in opened.body, opened.body
    old = stranger.post(first)
    assert old.status == 400 and "replaced by a newer one" in old.body, old.body
    j.new_thread()
    j.expect(*j.copies_to(SAM))
    assert "Your subscription is confirmed" in stranger.post(second).body
    j.expect((PAT, "Welcome"))
    old = stranger.post(first)
    assert old.status == 400 and "replaced by a newer one" in old.body, old.body
    j.new_thread()
    j.expect(*j.copies_to(SAM, PAT))
    j.command("unsubscribe")
    j.expect((PAT, "You have left"))
    for used in (stranger.get(second), stranger.post(second)):
        assert used.status == 400 and "has been used" in used.body, used.body

    # By reply: Kim confirms, leaves, asks again.
    j.mail(KIM, f"{j.list}+subscribe@{DOMAIN}", "subscribe")
    first = confirm_address(j, KIM)
    j.mail(KIM, first, "Re: confirm")
    j.expect((KIM, "Welcome"))
    j.mail(KIM, f"{j.list}+unsubscribe@{DOMAIN}", "unsubscribe")
    j.expect((KIM, "You have left"))
    j.mail(KIM, f"{j.list}+subscribe@{DOMAIN}", "subscribe")
    second = confirm_address(j, KIM)
    j.mail(KIM, first, "Re: confirm")
    got = j.expect((KIM, "not carried out"))
    assert "replaced by a newer one" in j.body(got, KIM, "not carried out")[1]
    j.new_thread()
    j.expect(*j.copies_to(SAM))
    j.mail(KIM, second, "Re: confirm")
    j.expect((KIM, "Welcome"))
    j.mail(KIM, second, "Re: confirm")  # a second reply is answered too, and changes nothing
    got = j.expect((KIM, "Done"))
    assert "already confirmed" in j.body(got, KIM, "Done")[1]
    j.new_thread()
    j.expect(*j.copies_to(SAM, KIM))
    j.mail(KIM, f"{j.list}+unsubscribe@{DOMAIN}", "unsubscribe")
    j.expect((KIM, "You have left"))
    j.mail(KIM, second, "Re: confirm")
    got = j.expect((KIM, "not carried out"))
    assert "has been used" in j.body(got, KIM, "not carried out")[1]
    j.new_thread()
    j.expect(*j.copies_to(SAM))
