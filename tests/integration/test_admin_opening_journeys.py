"""Members-only dev while people wait for a moderator, through real processes.

1. Kim asked and confirmed, Lee asked and has not confirmed yet; the owner opens dev: Kim is in
   at once, Lee as soon as she confirms.
2. Kim waits for a moderator; the administrator subscribes her with `listgate subscribe`
   instead: she gets the welcome she was promised.

After each step the SMTP sink must hold exactly the predicted mails.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_admin_requests_journeys import (
    KIM,
    LEE,
    MOD,
    ask_and_confirm,
    kim_waiting_and_lee_unconfirmed,
)
from tests.integration.test_journeys import SAM, Journey, _journey_env
from tests.support.config import search
from tests.support.sink import SmtpSink
from tests.support.stack import Stack, make_stack, run_up

pytestmark = pytest.mark.integration


@pytest.fixture
def up_stack(tmp_path: Path, sink: SmtpSink) -> Iterator[Stack]:
    """`listgate up` on the embedded default."""
    yield from run_up(make_stack(tmp_path, _journey_env(tmp_path, sink)))


def test_people_waiting_for_a_moderator_are_in_once_the_list_needs_none(
    up_stack: Stack, sink: SmtpSink
) -> None:
    """dev is members-only: Kim asked and confirmed, and waits for a moderator; Lee asked and
    has not confirmed yet. The owner opens dev: Kim is in at once (welcome, then the next post),
    as anyone asking now would be; Lee's confirmation lets her in without a moderator."""
    j = Journey(up_stack, sink)
    stranger, confirm = kim_waiting_and_lee_unconfirmed(j)
    assert "1 request waiting" in j.cli("requests", "show", "--list", "dev")

    out = j.cli("lists", "edit", "dev", "--policy", "open")
    assert "policy: 'members' -> 'open'" in out and f"let in {KIM}" in out, out
    j.expect((KIM, "Welcome"))
    assert "0 requests waiting" in j.cli("requests", "show", "--list", "dev")
    j.mail(SAM, "dev@lists.test", "Open now", "Hello.\n")
    j.expect((KIM, "Open now"))

    stranger.post(search(r"(http://\S+/confirm/\S+)", j.body(confirm, LEE, "Confirm")[1]))
    j.expect((LEE, "Welcome"))
    j.mail(SAM, "dev@lists.test", "Everyone in", "Hello.\n")
    j.expect((KIM, "Everyone in"), (LEE, "Everyone in"))


def test_someone_waiting_who_an_administrator_subscribes_hears_of_it(
    up_stack: Stack, sink: SmtpSink
) -> None:
    """Kim confirmed her request to the members-only dev and was told she would get a mail
    once she is in. The administrator subscribes her with `listgate subscribe` instead of
    approving the request: she gets that mail (once), and the request waits no more."""
    j = Journey(up_stack, sink)
    j.cli("lists", "create", "dev", "--title", "Developers", "--moderators", MOD)
    j.cli("lists", "edit", "dev", "--policy", "members")
    j.cli("subscribe", SAM, "--list", "dev")
    ask_and_confirm(j, KIM, "list")
    assert "subscribed kim@example.org to dev (list)" in j.cli("subscribe", KIM, "--list", "dev")
    j.expect((KIM, "Welcome"))
    assert "0 requests waiting" in j.cli("requests", "show", "--list", "dev")
    j.cli("subscribe", KIM, "--list", "dev")  # again: nothing new to tell her
    j.mail(SAM, "dev@lists.test", "Subscribed", "Hello.\n")
    j.expect((KIM, "Subscribed"))
