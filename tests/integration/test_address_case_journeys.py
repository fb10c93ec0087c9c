"""One person, her address written in several cases, subscribed, removed and back: one copy.

Pat is subscribed as pat@example.org; she asks again as Pat@Example.ORG on the web and by
mail, the administrator subscribes PAT@EXAMPLE.ORG, she posts as Pat@Example.Org, is named in
Cc in another case, is removed and re-subscribed in yet another. After each step a post goes
through the gateway and the SMTP sink must hold exactly one copy for her, or none.
"""

from __future__ import annotations

import re
import smtplib

import pytest

from tests.integration.test_journeys import PAT, SAM, Journey
from tests.integration.web_client import WebClient
from tests.support.config import DOMAIN, search
from tests.support.sink import SmtpSink
from tests.support.stack import Stack

pytestmark = pytest.mark.integration
SHARED_STACK: dict[str, str] = {}  # a shared `listgate up` (up_stack, sink)


@pytest.mark.long(37)
def test_an_address_in_other_cases_is_one_subscriber(up_stack: Stack, sink: SmtpSink) -> None:
    j = Journey(up_stack, sink)
    j.cli("lists", "create", j.list, "--title", "Developers")
    j.cli("subscribe", SAM, "--list", j.list)
    j.cli("subscribe", PAT, "--list", j.list)

    # Asking again in other cases: already in, no confirmation, no second row.
    page = WebClient(j.stack.web_port).post(
        f"/lists/{j.list}/subscribe",
        {"address": "Pat@Example.ORG", "kind": "list"},
        on_page=f"/lists/{j.list}/",
    )
    assert "already subscribed" in page.body, page.body
    j.mail("Pat@Example.ORG", f"{j.list}+subscribe@{DOMAIN}", "subscribe")
    j.cli("subscribe", "PAT@EXAMPLE.ORG", "--list", j.list)
    j.expect()
    j.new_thread()
    j.expect(*j.copies_to(SAM, PAT))

    # Named in Cc in another case: she has her copy from the author, none from the list.
    j.serial += 1
    msgid = f"cc{j.serial}@example.net"
    raw = (
        f"From: ann@example.net\r\nTo: {j.list}@{DOMAIN}\r\nCc: PAT@example.ORG\r\n"
        f"Subject: Cc\r\nMessage-ID: <{msgid}>\r\nDate: Mon, 30 Nov 2026 10:00:00 +0000\r\n\r\n"
        "Hello.\r\n"
    ).encode()
    with smtplib.SMTP("127.0.0.1", j.stack.smtp_port, timeout=30) as smtp:
        smtp.sendmail("ann@example.net", [f"{j.list}@{DOMAIN}"], raw)
    j.expect((SAM, msgid))

    # Her own post, from her address in another case: no copy to herself.
    own = j.mail("Pat@Example.Org", f"{j.list}@{DOMAIN}", "Mine", "My own topic.\n")
    j.expect((SAM, own))

    # Removed in one case, back in another: one copy again.
    assert f"has left {j.list}" in j.cli("unsubscribe", "pAt@example.org", "--list", j.list)
    j.new_thread()
    j.expect(*j.copies_to(SAM))
    j.cli("subscribe", "pat@EXAMPLE.org", "--list", j.list)
    j.new_thread()
    j.expect(*j.copies_to(SAM, PAT))

    # Signed in in another case, her dashboard shows her one subscription.
    web = WebClient(j.stack.web_port)
    web.post("/signin", {"address": "PAT@example.org", "next": "/"}, on_page="/signin")
    got = j.expect((PAT, "sign-in link"))
    link = search(r"(http://\S+/signin/\S+)", j.body(got, PAT, "sign-in link")[1])
    web.post(link, {"next": "/"}, on_page=link)
    body = web.get("/me/subscriptions").body
    rows = re.findall(rf"<tr>\s*<td><a [^>]*>{j.list}</a></td>\s*<td>([^<]*)", body)
    assert rows == ["every post"], rows  # leaving ended the thread she had started too
