"""Members-only dev while people wait for a moderator, through real processes.

1. Kim asked and confirmed, Lee asked and has not confirmed yet; the owner opens dev: Kim is in
   at once, Lee as soon as she confirms.
2. Kim waits for a moderator; the administrator subscribes her with `listgate subscribe`
   instead: she gets the welcome she was promised.

After each step the SMTP sink must hold exactly the predicted mails.
"""

from __future__ import annotations

import pytest

from tests.integration.test_admin_requests_journeys import (
    KIM,
    LEE,
    MOD,
    ask_and_confirm,
    kim_waiting_and_lee_unconfirmed,
)
from tests.integration.test_journeys import SAM, Journey
from tests.support.config import search
from tests.support.sink import SmtpSink
from tests.support.stack import Stack

pytestmark = pytest.mark.integration
SHARED_STACK: dict[str, str] = {}  # a shared `listgate up` (up_stack, sink)


@pytest.mark.long(33)
def test_people_waiting_for_a_moderator_are_in_once_the_list_needs_none(
    up_stack: Stack, sink: SmtpSink
) -> None:
    """dev is members-only: Kim asked and confirmed, and waits for a moderator; Lee asked and
    has not confirmed yet. The owner opens dev: Kim is in at once (welcome, then the next post),
    as anyone asking now would be; Lee's confirmation lets her in without a moderator."""
    j = Journey(up_stack, sink)
    stranger, confirm = kim_waiting_and_lee_unconfirmed(j)
    assert "1 request waiting" in j.cli("requests", "show", "--list", j.list)

    out = j.cli("lists", "edit", j.list, "--policy", "open")
    assert "policy: 'members' -> 'open'" in out and f"let in {KIM}" in out, out
    j.expect((KIM, "Welcome"))
    assert "0 requests waiting" in j.cli("requests", "show", "--list", j.list)
    j.mail(SAM, f"{j.list}@lists.test", "Open now", "Hello.\n")
    j.expect((KIM, "Open now"))

    stranger.post(search(r"(http://\S+/confirm/\S+)", j.body(confirm, LEE, "Confirm")[1]))
    j.expect((LEE, "Welcome"))
    j.mail(SAM, f"{j.list}@lists.test", "Everyone in", "Hello.\n")
    j.expect((KIM, "Everyone in"), (LEE, "Everyone in"))


@pytest.mark.long(31)
def test_someone_waiting_who_an_administrator_subscribes_hears_of_it(
    up_stack: Stack, sink: SmtpSink
) -> None:
    """Kim confirmed her request to the members-only dev and was told she would get a mail
    once she is in. The administrator subscribes her with `listgate subscribe` instead of
    approving the request: she gets that mail (once), and the request waits no more."""
    j = Journey(up_stack, sink)
    j.cli("lists", "create", j.list, "--title", "Developers", "--moderators", MOD)
    j.cli("lists", "edit", j.list, "--policy", "members")
    j.cli("subscribe", SAM, "--list", j.list)
    ask_and_confirm(j, KIM, "list")
    assert f"subscribed kim@example.org to {j.list} (list)" in j.cli(
        "subscribe", KIM, "--list", j.list
    )
    j.expect((KIM, "Welcome"))
    assert "0 requests waiting" in j.cli("requests", "show", "--list", j.list)
    j.cli("subscribe", KIM, "--list", j.list)  # again: nothing new to tell her
    j.mail(SAM, f"{j.list}@lists.test", "Subscribed", "Hello.\n")
    j.expect((KIM, "Subscribed"))
