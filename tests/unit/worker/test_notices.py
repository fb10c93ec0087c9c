"""Generated mail: every template renders, carries Auto-Submitted, and names its recipient."""

from __future__ import annotations

from email import message_from_bytes

import pytest

from worker.notices import NoticeError, render

TEMPLATES = ["held", "confirm", "welcome", "goodbye", "suspended", "help", "signin", "rejected"]


@pytest.mark.parametrize("template", TEMPLATES)
def test_every_template_renders(settings, template: str) -> None:  # type: ignore[no-untyped-def]
    payload = {"template": template, "to": "ann@example.org", "list": "dev", "link": "https://x/y",
               "reason": "too big", "subject": "Hello", "reply_to": "dev+confirm-1.abcd@lists.test"}
    to, data = render(payload, settings)
    msg = message_from_bytes(data)
    assert to == "ann@example.org" == msg["To"]
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["X-Listgate-Loop"] == settings.domain
    assert msg["Subject"]


def test_replies_to_commands_are_auto_replied(settings) -> None:  # type: ignore[no-untyped-def]
    _, data = render({"template": "help", "to": "a@b.org", "list": "dev", "reply": True}, settings)
    assert message_from_bytes(data)["Auto-Submitted"] == "auto-replied"


def test_reason_and_link_are_in_the_text(settings) -> None:  # type: ignore[no-untyped-def]
    _, data = render({"template": "rejected", "to": "a@b.org", "list": "dev", "reason": "not a member"}, settings)
    assert b"not a member" in data
    _, data = render({"template": "signin", "to": "a@b.org", "link": "https://lists.test/signin/T"}, settings)
    assert b"https://lists.test/signin/T" in data


def test_unknown_template_or_missing_recipient_is_refused(settings) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(NoticeError):
        render({"template": "nope", "to": "a@b.org"}, settings)
    with pytest.raises(NoticeError):
        render({"template": "help", "list": "dev"}, settings)
