"""Every mail listgate sends, read once as its reader reads it: no label said twice (a refused
mail command answered "Reason: reason: too long…"), no empty value where a word was due, and a
refused command says which request it was and why."""

from __future__ import annotations

import itertools
import json
import re
from email import message_from_bytes
from email.message import Message as MailMessage
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from listgate import lists, moderation
from listgate.addresses import parse_recipient
from listgate.config import Settings
from listgate.db import transaction
from listgate.ingest import ingest
from listgate.mail.parser import parse
from listgate.models import Message, OutboxEntry
from tests.support.config import search
from tests.support.factories import MakeList
from worker import commands, notices

# "Reason: reason: …", "Subject: subject: …": one label and the same label again
DOUBLED_LABEL = re.compile(r"\b(\w[\w -]*?):\s+\1:", re.IGNORECASE)
# '""', "(received )", a line of a bare label ("Reason:"), "None", a template's braces
# a link a mail reader would take the punctuation after it into ("…/unsubscribe/TOKEN,")
LINK_AND_MARK = re.compile(r"https?://\S*[,;.)](\s|$)")
MAILS = itertools.count(1)  # each command mail its own Message-ID
EMPTY = re.compile(r'""|\((?:\w+\s*)?\)|^\s*\w+(?: \w+)?:\s*$|\bNone\b|[{}]')


def problems(subject: str, body: str) -> list[str]:
    """What a reader would stumble on in a generated mail."""
    found = []
    for line in [subject, *body.splitlines()]:
        if DOUBLED_LABEL.search(line):
            found.append(f"a label said twice: {line!r}")
        if EMPTY.search(line):
            found.append(f"an empty or unfilled value: {line!r}")
        if LINK_AND_MARK.search(line):
            found.append(f"a link followed by a mark: {line!r}")
    return found


def read(data: bytes) -> tuple[str, str]:
    """(Subject, the text part) of a generated mail."""
    msg = message_from_bytes(data)
    part = next(p for p in msg.walk() if p.get_content_type() == "text/plain")
    assert isinstance(part, MailMessage)
    text = part.get_payload(decode=True)
    assert isinstance(text, bytes)
    return str(msg["Subject"]), text.decode()


def mail_to(
    db: sessionmaker[Session],
    settings: Settings,
    address: str,
    body: str,
    sender: str = "mod@example.org",
) -> list[tuple[str, str]]:
    """Mail body to a command address, the worker carries it out: the answers, as read."""
    raw = (
        f"From: {sender}\r\nTo: {address}\r\nSubject: Re: a post awaits moderation\r\n"
        f"Message-ID: <cmd-{next(MAILS)}@example.org>\r\n"
        f"Date: Wed, 25 Nov 2026 10:00:00 +0000\r\n\r\n{body}\r\n"
    ).encode()
    recipient = parse_recipient(address, settings.domain)
    assert recipient is not None
    with transaction(db) as session:
        mlist = lists.require(session, recipient.list_name)
        result = ingest(session, parse(raw), mlist, domain=settings.domain, recipient=recipient)
        answers: list[OutboxEntry] = []
        for entry in result.outbox:
            answers += commands.handle(session, settings, entry)
        payloads = [entry.payload for entry in answers]
    return [read(notices.render(json.loads(p or "{}"), settings)[1]) for p in payloads]


def _held(db: sessionmaker[Session], settings: Settings) -> tuple[Message, str]:
    """A post held on the moderated list club, and its reject address."""
    raw = (
        b"From: ann@example.org\r\nTo: club@lists.test\r\nSubject: Minutes\r\n"
        b"Message-ID: <minutes@example.org>\r\nDate: Wed, 25 Nov 2026 10:00:00 +0000\r\n\r\nHi\r\n"
    )
    with transaction(db) as session:
        mlist = lists.require(session, "club")
        result = ingest(session, parse(raw), mlist, domain=settings.domain)
        msg = session.get_one(Message, result.message_pk)
        reject = moderation.address(
            settings.secret_key, moderation.REJECT, msg, mlist, settings.domain
        )
        session.expunge(msg)
    return msg, reject


def test_a_refused_mail_command_says_which_request_and_why_once(
    db: sessionmaker[Session], make_list: MakeList, settings: Settings
) -> None:
    make_list("club", policy="moderated", moderators="mod@example.org")
    _, reject = _held(db, settings)
    too_long = "n" * 2001
    ((subject, body),) = mail_to(db, settings, reject, f"reject: {too_long}\n\n> the post")
    assert problems(subject, body) == []
    said = " ".join(body.split())
    assert subject == "Your reject request to club was not carried out"
    assert (
        "Your reject request to club@lists.test was not carried out: the reason is too long: "
        "at most 2,000 characters (this one has 2,001)." in said
    )
    assert "The post is still held: to reject it, reply again with a shorter line" in said
    # the other refusals a command can get, each read once
    refusals = [
        mail_to(db, settings, reject, "I would rather not"),  # no reject line
        mail_to(db, settings, "club+approve-1.aaaaaaaaaaaa@lists.test", "ok"),  # forged
        mail_to(db, settings, reject, "reject: spam", "ex-mod@example.org"),  # no moderator now
        mail_to(db, settings, "club+digest-weekly@lists.test", "", "r@example.org"),
        mail_to(db, settings, "club+confirm-nonsense@lists.test", "", "r@example.org"),
    ]
    mail_to(db, settings, reject, "reject: off topic")  # done: the address is used up
    refusals.append(mail_to(db, settings, reject, "reject: again"))
    for answers in refusals:
        ((subject, body),) = answers
        assert problems(subject, body) == [], body
        assert re.fullmatch(r"Your (\w+) request to club was not carried out", subject), subject


KINDS: dict[str, dict[str, Any]] = {
    # each as its producer sends it (listgate.subscriptions, ingest, moderation, bounces, web)
    "confirm": {"link": "https://lists.test/confirm/T"},
    "welcome": {"list_id": 1},
    "goodbye": {},
    "changed": {"message": "You now follow this thread.", "thread_id": 3, "action": "follow"},
    "awaiting": {},
    "refused": {"reason": "we only take members of the club"},
    "failed": {"command": "subscribe", "reference": "c0ffee"},
    "suspended": {},
    "help": {"reply": True},
    "held": {"reply": True, "received": "2026-11-25 10:00 UTC"},
    "rejected": {"subject": "Minutes", "reason": "off topic"},
    "not_done": {"command": "reject", "why": "this moderation address is not valid"},
    "moderate": {
        "subject": "Minutes",
        "from": "ann@example.org",
        "reason": "every post to this list is moderated",
        "approve": "club+approve-1.a@lists.test",
        "link": "https://lists.test/moderation",
    },
    "report": {
        "subject": "Minutes",
        "from": "ann@example.org",
        "reason": "rude",
        "post": "https://lists.test/messages/1",
        "link": "https://lists.test/moderation",
    },
    "reminder": {
        "count": 1,
        "posts": '- "Minutes" from ann@example.org, held since 2026-11-25 10:00 UTC',
        "link": "https://lists.test/moderation",
    },
    "digest_reply": {"reply": True, "period": "25 November 2026"},
    "signin": {"link": "https://lists.test/signin/T"},
}


def test_the_kinds_read_here_are_every_kind_listgate_mails(settings: Settings) -> None:
    assert sorted(KINDS) == sorted(notices.texts({}, settings))


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_each_kind_of_mail_reads_without_a_doubled_label(settings: Settings, kind: str) -> None:
    payload = {"template": kind, "to": "ann@example.org", "list": "club", **KINDS[kind]}
    subject, body = read(notices.render(payload, settings)[1])
    assert problems(subject, body) == []


@pytest.mark.parametrize(
    ("count", "said", "held"),
    [(1, "1 post still awaits", "This post to"), (2, "2 posts still await", "These posts to")],
)
def test_the_reminder_counts_its_posts_in_words(
    settings: Settings, count: int, said: str, held: str
) -> None:
    payload = {"template": "reminder", "to": "m@example.org", "list": "club", "count": count}
    subject, body = read(notices.render(payload, settings)[1])
    assert subject == f"club: {said} moderation"
    assert body.startswith(held)


def test_the_help_lines_up_what_each_command_address_does(settings: Settings) -> None:
    payload = {"template": "help", "to": "ann@example.org", "list": "a-longer-name"}
    _, body = read(notices.render(payload, settings)[1])
    rows = [line for line in body.splitlines() if line.startswith("  a-longer-name+")]
    assert len(rows) == 4
    assert len({len(search(r"\A  \S+\s+", row, 0)) for row in rows}) == 1, rows
