"""A list's administrators at work on a list already in use, through real processes.

1. dev is members-only. Pat asks on the web to get every post, confirms, and waits for a
   moderator; she changes her mind and asks for the daily digest instead, and confirms that too.
   The moderators see one request (her latest choice) and `listgate requests approve` lets her
   in: one welcome, the digest and not every post; a request Kim asked twice waits once.
2. dev is deleted (its owner added moderators and changed settings first) and a new list is
   created under the same name (SQLite gives it the old one's id): its settings page shows its
   own history only, not who ran the old list and how it was deleted.

After each step the SMTP sink must hold exactly the predicted mails.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from listgate.models import MailingList
from tests.integration.test_administration_journeys import db
from tests.integration.test_journeys import PAT, SAM, Journey, _journey_env
from tests.integration.web_client import WebClient
from tests.support.config import search
from tests.support.sink import SmtpSink
from tests.support.stack import Stack, make_stack, run_up

pytestmark = pytest.mark.integration

MOD, KIM, LEE = "mod@example.org", "kim@example.org", "lee@example.net"
OLD = "old-owner@example.org"


@pytest.fixture
def up_stack(tmp_path: Path, sink: SmtpSink) -> Iterator[Stack]:
    """`listgate up` on the embedded default."""
    yield from run_up(make_stack(tmp_path, _journey_env(tmp_path, sink)))


def ask_and_confirm(j: Journey, address: str, kind: str) -> None:
    """address asks on the web form (not signed in) for kind, and confirms by the link mailed."""
    stranger = WebClient(j.stack.web_port)
    stranger.post("/lists/dev/subscribe", {"address": address, "kind": kind}, on_page="/lists/dev/")
    confirm = j.expect((address, "Confirm your subscription"))
    link = search(r"(http://\S+/confirm/\S+)", j.body(confirm, address, "Confirm")[1])
    stranger.post(link)
    j.expect((address, "awaits approval"))


def test_a_request_changed_while_it_waits_is_approved_as_last_asked(
    up_stack: Stack, sink: SmtpSink
) -> None:
    j = Journey(up_stack, sink)
    j.cli("lists", "create", "dev", "--title", "Developers", "--moderators", MOD)
    j.cli("lists", "edit", "dev", "--policy", "members")
    j.cli("subscribe", SAM, "--list", "dev")

    ask_and_confirm(j, PAT, "list")
    ask_and_confirm(j, PAT, "digest")  # she changed her mind while the first one waited
    ask_and_confirm(j, KIM, "list")
    stranger = WebClient(j.stack.web_port)  # Kim asks again: still the one request
    stranger.post("/lists/dev/subscribe", {"address": KIM, "kind": "list"}, on_page="/lists/dev/")
    j.expect()
    shown = j.cli("requests", "show", "--list", "dev")
    assert [line.split()[1:3] for line in shown.splitlines()[:-1]] == [
        [PAT, "digest"],
        [KIM, "list"],
    ], shown
    assert "2 requests waiting" in shown

    out = j.cli("requests", "approve", PAT, "--list", "dev")
    assert out.strip() == f"{PAT} is now subscribed to dev.", out
    j.expect((PAT, "Welcome"))
    assert j.cli("requests", "approve", KIM, "--list", "dev").count("now subscribed") == 1
    j.expect((KIM, "Welcome"))
    assert "0 requests waiting" in j.cli("requests", "show", "--list", "dev")

    # Pat gets the digest, not every post; Kim every post.
    j.mail(SAM, "dev@lists.test", "After the approval", "Hello.\n")
    j.expect(*[(who, "After the approval") for who in (KIM,)])


def test_a_list_created_again_under_a_deleted_lists_name_has_its_own_history(
    up_stack: Stack, sink: SmtpSink
) -> None:
    j = Journey(up_stack, sink)
    j.cli("lists", "create", "dev", "--title", "Old developers", "--owners", OLD)
    j.cli("moderators", "add", "dev", MOD)
    j.cli("lists", "edit", "dev", "--policy", "moderated", "--description", "the old one")
    j.cli("subscribe", SAM, "--list", "dev")
    with db(up_stack)() as session:
        old_id = session.scalar(select(MailingList.id).where(MailingList.name == "dev"))
    assert "deleted dev" in j.cli("lists", "delete", "dev")

    j.cli("lists", "create", "dev", "--title", "Developers", "--owners", PAT)
    with db(up_stack)() as session:
        assert session.scalar(select(MailingList.id).where(MailingList.name == "dev")) == old_id
    j.cli("lists", "edit", "dev", "--reply-to", "list")
    j.sign_in(j.web)
    page = j.web.get("/lists/dev/settings").body
    shown = page.partition("<h2>History</h2>")[2]
    assert "reply_to: &#39;none&#39; -&gt; &#39;list&#39;" in shown, page
    for old in ("delete list", OLD, MOD, "the old one", "moderated"):
        assert old not in shown, f"the new dev's history shows the old list's {old!r}: {shown}"
    assert j.cli("moderators", "show", "dev").strip() == "dev has no moderators"
    j.mail(SAM, "dev@lists.test", "A post to the new dev", "Hello.\n")
    j.expect()  # Sam was subscribed to the old dev only


def test_people_waiting_for_a_moderator_are_in_once_the_list_needs_none(
    up_stack: Stack, sink: SmtpSink
) -> None:
    """dev is members-only: Kim asked and confirmed, and waits for a moderator; Lee asked and
    has not confirmed yet. The owner opens dev: Kim is in at once (welcome, then the next post),
    as anyone asking now would be; Lee's confirmation lets her in without a moderator."""
    j = Journey(up_stack, sink)
    j.cli("lists", "create", "dev", "--title", "Developers", "--moderators", MOD)
    j.cli("lists", "edit", "dev", "--policy", "members")
    j.cli("subscribe", SAM, "--list", "dev")
    ask_and_confirm(j, KIM, "list")
    stranger = WebClient(j.stack.web_port)
    stranger.post("/lists/dev/subscribe", {"address": LEE, "kind": "list"}, on_page="/lists/dev/")
    confirm = j.expect((LEE, "Confirm your subscription"))
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


def test_someone_removed_from_a_members_only_list_needs_a_moderator_to_come_back(
    up_stack: Stack, sink: SmtpSink
) -> None:
    """Kim was let in by a moderator, then the administrator took her off dev. Asking again,
    she waits for a moderator as any newcomer does; refused, she gets nothing; a moderator's
    approval lets her in again."""
    j = Journey(up_stack, sink)
    j.cli("lists", "create", "dev", "--title", "Developers", "--moderators", MOD)
    j.cli("lists", "edit", "dev", "--policy", "members")
    j.cli("subscribe", SAM, "--list", "dev")
    ask_and_confirm(j, KIM, "list")
    j.cli("requests", "approve", KIM, "--list", "dev", "--by", MOD)
    j.expect((KIM, "Welcome"))
    assert "has left dev" in j.cli("unsubscribe", KIM, "--list", "dev", "--notify")
    j.expect((KIM, "You have left"))

    ask_and_confirm(j, KIM, "list")  # waits: not "Welcome"
    assert "1 request waiting" in j.cli("requests", "show", "--list", "dev")
    j.mail(SAM, "dev@lists.test", "Members only", "Hello.\n")
    j.expect()
    j.cli("requests", "refuse", KIM, "--list", "dev", "--reason", "not again")
    j.expect((KIM, "was not approved"))

    ask_and_confirm(j, KIM, "list")
    j.cli("requests", "approve", KIM, "--list", "dev", "--by", MOD)
    j.expect((KIM, "Welcome"))
    j.mail(SAM, "dev@lists.test", "Back again", "Hello.\n")
    j.expect((KIM, "Back again"))


def test_an_invitation_to_someone_already_asking_lets_them_in(
    up_stack: Stack, sink: SmtpSink
) -> None:
    """dev is members-only. Kim asked and confirmed: she waits for a moderator. Lee asked a
    minute ago and has not confirmed yet. The administrator invites both: Kim is in at once
    (she confirmed her address already), and Lee's confirmation lets her in without a
    moderator, as an invitation's does."""
    j = Journey(up_stack, sink)
    j.cli("lists", "create", "dev", "--title", "Developers", "--moderators", MOD)
    j.cli("lists", "edit", "dev", "--policy", "members")
    j.cli("subscribe", SAM, "--list", "dev")
    ask_and_confirm(j, KIM, "list")
    stranger = WebClient(j.stack.web_port)
    stranger.post("/lists/dev/subscribe", {"address": LEE, "kind": "list"}, on_page="/lists/dev/")
    confirm = j.expect((LEE, "Confirm your subscription"))

    out = j.cli("subscribe", KIM, "--list", "dev", "--invite")
    assert out.strip() == f"{KIM} is now subscribed to dev.", out
    j.expect((KIM, "Welcome"))
    out = j.cli("subscribe", LEE, "--list", "dev", "--invite")
    assert "approved in advance" in out, out
    j.expect()  # her confirmation mail went a minute ago: not another one yet
    stranger.post(search(r"(http://\S+/confirm/\S+)", j.body(confirm, LEE, "Confirm")[1]))
    j.expect((LEE, "Welcome"))
    assert "0 requests waiting" in j.cli("requests", "show", "--list", "dev")
    j.mail(SAM, "dev@lists.test", "Invited in", "Hello.\n")
    j.expect((KIM, "Invited in"), (LEE, "Invited in"))


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
