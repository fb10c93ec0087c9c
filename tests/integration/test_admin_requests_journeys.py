"""Requests to join a members-only list while it is in use, through real processes.

1. Pat asks on the web to get every post, confirms, and waits for a moderator; she changes her
   mind and asks for the daily digest instead, and confirms that too. The moderators see one
   request (her latest choice) and `listgate requests approve` lets her in: one welcome, the
   digest and not every post; a request Kim asked twice waits once.
2. Kim, let in by a moderator and taken off by the administrator, waits for a moderator again
   when she asks to come back.
3. The administrator invites people who asked already: the one waiting for a moderator is in,
   the one who has not confirmed yet is in as soon as she does.

After each step the SMTP sink must hold exactly the predicted mails.
"""

from __future__ import annotations

import pytest

from tests.integration.test_journeys import PAT, SAM, Journey, Received
from tests.integration.web_client import WebClient
from tests.support.config import search
from tests.support.sink import SmtpSink
from tests.support.stack import Stack

pytestmark = pytest.mark.integration
SHARED_STACK: dict[str, str] = {}  # a shared `listgate up` (up_stack, sink)

MOD, KIM, LEE = "mod@example.org", "kim@example.org", "lee@example.net"


def ask_and_confirm(j: Journey, address: str, kind: str) -> None:
    """address asks on the web form (not signed in) for kind, and confirms by the link mailed."""
    stranger = WebClient(j.stack.web_port)
    stranger.post(
        f"/lists/{j.list}/subscribe",
        {"address": address, "kind": kind},
        on_page=f"/lists/{j.list}/",
    )
    confirm = j.expect((address, "Confirm your subscription"))
    link = search(r"(http://\S+/confirm/\S+)", j.body(confirm, address, "Confirm")[1])
    stranger.post(link)
    j.expect((address, "awaits approval"))


def kim_waiting_and_lee_unconfirmed(j: Journey) -> tuple[WebClient, list[Received]]:
    """dev, members-only, Sam subscribed: Kim asked and confirmed (she waits for a moderator),
    Lee asked and has not confirmed yet. Lee's web client and her confirmation mail."""
    j.cli("lists", "create", j.list, "--title", "Developers", "--moderators", MOD)
    j.cli("lists", "edit", j.list, "--policy", "members")
    j.cli("subscribe", SAM, "--list", j.list)
    ask_and_confirm(j, KIM, "list")
    stranger = WebClient(j.stack.web_port)
    stranger.post(
        f"/lists/{j.list}/subscribe", {"address": LEE, "kind": "list"}, on_page=f"/lists/{j.list}/"
    )
    return stranger, j.expect((LEE, "Confirm your subscription"))


@pytest.mark.long(32)
def test_a_request_changed_while_it_waits_is_approved_as_last_asked(
    up_stack: Stack, sink: SmtpSink
) -> None:
    j = Journey(up_stack, sink)
    j.cli("lists", "create", j.list, "--title", "Developers", "--moderators", MOD)
    j.cli("lists", "edit", j.list, "--policy", "members")
    j.cli("subscribe", SAM, "--list", j.list)

    ask_and_confirm(j, PAT, "list")
    ask_and_confirm(j, PAT, "digest")  # she changed her mind while the first one waited
    ask_and_confirm(j, KIM, "list")
    stranger = WebClient(j.stack.web_port)  # Kim asks again: still the one request
    stranger.post(
        f"/lists/{j.list}/subscribe", {"address": KIM, "kind": "list"}, on_page=f"/lists/{j.list}/"
    )
    j.expect()
    shown = j.cli("requests", "show", "--list", j.list)
    assert [line.split()[1:3] for line in shown.splitlines()[:-1]] == [
        [PAT, "digest"],
        [KIM, "list"],
    ], shown
    assert "2 requests waiting" in shown

    out = j.cli("requests", "approve", PAT, "--list", j.list)
    assert out.strip() == f"{PAT} is now subscribed to {j.list}.", out
    j.expect((PAT, "Welcome"))
    assert j.cli("requests", "approve", KIM, "--list", j.list).count("now subscribed") == 1
    j.expect((KIM, "Welcome"))
    assert "0 requests waiting" in j.cli("requests", "show", "--list", j.list)

    # Pat gets the digest, not every post; Kim every post.
    j.mail(SAM, f"{j.list}@lists.test", "After the approval", "Hello.\n")
    j.expect(*[(who, "After the approval") for who in (KIM,)])


@pytest.mark.long(23)
def test_someone_removed_from_a_members_only_list_needs_a_moderator_to_come_back(
    up_stack: Stack, sink: SmtpSink
) -> None:
    """Kim was let in by a moderator, then the administrator took her off dev. Asking again,
    she waits for a moderator as any newcomer does; refused, she gets nothing; a moderator's
    approval lets her in again."""
    j = Journey(up_stack, sink)
    j.cli("lists", "create", j.list, "--title", "Developers", "--moderators", MOD)
    j.cli("lists", "edit", j.list, "--policy", "members")
    j.cli("subscribe", SAM, "--list", j.list)
    ask_and_confirm(j, KIM, "list")
    j.cli("requests", "approve", KIM, "--list", j.list, "--by", MOD)
    j.expect((KIM, "Welcome"))
    assert f"has left {j.list}" in j.cli("unsubscribe", KIM, "--list", j.list, "--notify")
    j.expect((KIM, "You have left"))

    ask_and_confirm(j, KIM, "list")  # waits: not "Welcome"
    assert "1 request waiting" in j.cli("requests", "show", "--list", j.list)
    j.mail(SAM, f"{j.list}@lists.test", "Members only", "Hello.\n")
    j.expect()
    j.cli("requests", "refuse", KIM, "--list", j.list, "--reason", "not again")
    j.expect((KIM, "was not approved"))

    ask_and_confirm(j, KIM, "list")
    j.cli("requests", "approve", KIM, "--list", j.list, "--by", MOD)
    j.expect((KIM, "Welcome"))
    j.mail(SAM, f"{j.list}@lists.test", "Back again", "Hello.\n")
    j.expect((KIM, "Back again"))


@pytest.mark.long(30)
def test_an_invitation_to_someone_already_asking_lets_them_in(
    up_stack: Stack, sink: SmtpSink
) -> None:
    """dev is members-only. Kim asked and confirmed: she waits for a moderator. Lee asked a
    minute ago and has not confirmed yet. The administrator invites both: Kim is in at once
    (she confirmed her address already), and Lee's confirmation lets her in without a
    moderator, as an invitation's does."""
    j = Journey(up_stack, sink)
    stranger, confirm = kim_waiting_and_lee_unconfirmed(j)

    out = j.cli("subscribe", KIM, "--list", j.list, "--invite")
    assert out.strip() == f"{KIM} is now subscribed to {j.list}.", out
    j.expect((KIM, "Welcome"))
    out = j.cli("subscribe", LEE, "--list", j.list, "--invite")
    assert "approved in advance" in out, out
    j.expect()  # her confirmation mail went a minute ago: not another one yet
    stranger.post(search(r"(http://\S+/confirm/\S+)", j.body(confirm, LEE, "Confirm")[1]))
    j.expect((LEE, "Welcome"))
    assert "0 requests waiting" in j.cli("requests", "show", "--list", j.list)
    j.mail(SAM, f"{j.list}@lists.test", "Invited in", "Hello.\n")
    j.expect((KIM, "Invited in"), (LEE, "Invited in"))
