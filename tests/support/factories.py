"""Test data for the web archive: real RFC 5322 mail, stored through listgate.ingest."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Protocol, TypedDict, Unpack

from sqlalchemy.orm import Session, sessionmaker

from listgate import lists, subscriptions
from listgate.db import transaction
from listgate.ingest import IngestResult, ingest
from listgate.mail.parser import parse
from listgate.models import MailingList, Subscription

_seq = itertools.count(1)
BASE_DATE = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class MailOptions(TypedDict, total=False):
    """make_mail's keywords besides the subject, Message-ID and date."""

    body: str
    sender: str
    in_reply_to: str | None
    references: list[str] | None
    to: str
    html: str | None
    attachments: list[tuple[str, str, bytes]] | None
    headers: dict[str, str] | None


def make_mail(
    subject: str = "Hello",
    body: str = "Some text.\n",
    *,
    sender: str = "Alice Example <alice@example.org>",
    msgid: str | None = None,
    in_reply_to: str | None = None,
    references: list[str] | None = None,
    date: datetime | None = None,
    to: str = "dev@lists.test",
    html: str | None = None,
    attachments: list[tuple[str, str, bytes]] | None = None,
    headers: dict[str, str] | None = None,
) -> bytes:
    """A mail as a client would send it."""
    n = next(_seq)
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(date or BASE_DATE + timedelta(minutes=n))
    msg["Message-ID"] = f"<{msgid or f'm{n}@example.org'}>"
    if in_reply_to:
        msg["In-Reply-To"] = f"<{in_reply_to}>"
    refs = references if references is not None else ([in_reply_to] if in_reply_to else [])
    if refs:
        msg["References"] = " ".join(f"<{r}>" for r in refs)
    for key, value in (headers or {}).items():
        msg[key] = value
    msg.set_content(body)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    for filename, ctype, data in attachments or []:
        maintype, subtype = ctype.split("/", 1)
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return bytes(msg)


def post(
    db: sessionmaker[Session],
    raw: bytes,
    list_name: str = "dev",
    origin: str = "smtp",
    domain: str = "lists.test",
) -> IngestResult:
    """Store raw mail on a list through the same path as mail from the gateway."""
    with transaction(db) as session:
        mlist = lists.require(session, list_name)
        return ingest(session, parse(raw), mlist, domain=domain, origin=origin)


def change_digest(
    db: sessionmaker[Session], address: str, frequency: str, list_name: str = "dev"
) -> None:
    """address changes its digest of list_name to frequency on the web."""
    with transaction(db) as session:
        subscriptions.change(
            session,
            lists.require(session, list_name),
            address,
            subscriptions.DIGEST,
            channel="web",
            frequency=frequency,
        )


def merged_pair(db: sessionmaker[Session]) -> tuple[IngestResult, IngestResult]:
    """Two threads on "dev", then a reply naming both, which merges them: the two first posts."""
    a = post(db, make_mail("A", msgid="a@x.test"))
    b = post(db, make_mail("B", msgid="b@x.test"))
    post(
        db,
        make_mail(
            "Re: A", msgid="c@x.test", in_reply_to="b@x.test", references=["a@x.test", "b@x.test"]
        ),
    )
    return a, b


class ListOptions(TypedDict, total=False):
    """lists.create's settings, as make_list and Env.make_list take them."""

    title: str
    description: str
    policy: str
    private: bool
    moderators: str
    owners: str


class LinkOptions(TypedDict):
    """confirmations.request's keywords that build confirmation links."""

    secret: str
    base_url: str
    domain: str


def stored_pk(result: IngestResult) -> int:
    """The archived row's id of an ingest result (an AssertionError when nothing was stored)."""
    assert result.message_pk is not None, f"{result.status}: {result.reason}"
    return result.message_pk


def subscription_of(outcome: subscriptions.Outcome) -> Subscription:
    """The subscription an outcome is about (an AssertionError when it has none)."""
    assert outcome.subscription is not None, f"no subscription: {outcome}"
    return outcome.subscription


class MakeList(Protocol):
    """The make_list fixture: create a list by name, settings as keywords (lists.create's)."""

    def __call__(self, name: str = "dev", **kwargs: Unpack[ListOptions]) -> MailingList: ...
