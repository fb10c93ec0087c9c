"""Generated mail: every template renders, carries Auto-Submitted, and names its recipient."""

from __future__ import annotations

from email import message_from_bytes

import pytest

from listgate.config import Settings
from tests.support.sink import payload
from worker.notices import NoticeError, render

TEMPLATES = [
    "held",
    "confirm",
    "welcome",
    "goodbye",
    "suspended",
    "help",
    "signin",
    "rejected",
    "changed",
    "awaiting",
    "refused",
    "failed",
]


@pytest.mark.parametrize("template", TEMPLATES)
def test_every_template_renders(settings: Settings, template: str) -> None:
    payload = {
        "template": template,
        "to": "ann@example.org",
        "list": "dev",
        "link": "https://x/y",
        "reason": "too big",
        "subject": "Hello",
        "reply_to": "dev+confirm-1.abcd@lists.test",
    }
    to, data = render(payload, settings)
    msg = message_from_bytes(data)
    assert to == "ann@example.org" == msg["To"]
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["X-Listgate-Loop"] == settings.domain
    assert msg["Subject"]


def test_replies_to_commands_are_auto_replied(settings: Settings) -> None:
    _, data = render({"template": "help", "to": "a@b.org", "list": "dev", "reply": True}, settings)
    assert message_from_bytes(data)["Auto-Submitted"] == "auto-replied"


def test_reason_and_link_are_in_the_text(settings: Settings) -> None:
    _, data = render(
        {"template": "rejected", "to": "a@b.org", "list": "dev", "reason": "not a member"}, settings
    )
    assert b"not a member" in data
    _, data = render(
        {"template": "signin", "to": "a@b.org", "link": "https://lists.test/signin/T"}, settings
    )
    assert b"https://lists.test/signin/T" in data


def test_unknown_template_or_missing_recipient_is_refused(settings: Settings) -> None:
    with pytest.raises(NoticeError):
        render({"template": "nope", "to": "a@b.org"}, settings)
    with pytest.raises(NoticeError):
        render({"template": "help", "list": "dev"}, settings)


def test_welcome_gives_a_personal_leave_link_a_thread_followers_leaves_only_the_thread(
    settings: Settings,
) -> None:
    from listgate import subscriptions

    def link(kind: str, thread_id: int) -> str:
        _, data = render(
            {
                "template": "welcome",
                "to": "ann@example.org",
                "list": "dev",
                "list_id": 7,
                "kind": kind,
                "thread_id": thread_id,
                "subject": "Plans",
            },
            settings,
        )
        text = payload(message_from_bytes(data)).decode()
        return text.split("/unsubscribe/", 1)[1].split()[0].rstrip(",")

    list_token, thread_token = link("list", 0), link("thread", 42)
    read = lambda token: subscriptions.tokens.read(settings.secret_key, "unsubscribe", token)  # noqa: E731
    assert read(list_token) == {"l": 7, "a": "ann@example.org", "t": 0}
    assert read(thread_token) == {"l": 7, "a": "ann@example.org", "t": 42}


def test_a_reply_to_an_unproven_sender_quotes_no_subject(settings: Settings) -> None:
    payload = {
        "template": "confirm",
        "to": "a@b.org",
        "list": "dev",
        "kind": "thread",
        "subject": "Buy pills",
        "link": "https://x/y",
        "thread_id": 3,
    }
    assert b"Buy pills" in render(payload, settings)[1]
    assert b"Buy pills" not in render({**payload, "reply": True}, settings)[1]
    assert b"Buy pills" in render({**payload, "reply": True, "authenticated": True}, settings)[1]
    held = render(
        {"template": "held", "to": "a@b.org", "list": "dev", "subject": "Buy pills", "reply": True},
        settings,
    )
    assert b"pills" not in held[1]


@pytest.mark.parametrize(
    "kind, way_back, not_this",
    [
        ("list", "dev+subscribe@", None),
        ("digest", "dev+subscribe@", None),  # which brings back a suspended digest
        ("thread", "Resume my mail", "dev+subscribe@"),  # subscribe would be the whole list
    ],
)
def test_the_suspension_notice_names_a_way_back_to_what_was_suspended(
    settings: Settings, kind: str, way_back: str, not_this: str | None
) -> None:
    _, data = render(
        {"template": "suspended", "to": "a@b.org", "list": "dev", "kind": kind, "thread_id": 7},
        settings,
    )
    text = payload(message_from_bytes(data)).decode().replace("\n", " ")
    assert way_back in text and f"{settings.base_url}/me/subscriptions" in text, text
    assert not_this is None or not_this not in text, text
