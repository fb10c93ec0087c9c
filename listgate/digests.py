"""Digest periods, their Message-IDs, and replies to a digest (threaded under the entry they
answer).

A digest's Message-ID names its period (digest.weekly.20261123.TOKEN@DOMAIN), so a reply to
the digest as a whole can be traced back to the posts it gathered. Ingest asks `period_of`
and, for such a reply, `answered_entry`: the one post its subject or quoted text names. A
reply naming none is held with a hint instead of starting a "Re: NAME digest" thread; should a
moderator approve it anyway, it goes under the entry it quotes most (`held_reply`), or starts a
thread of its own under the author's own subject, never under the digest's.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.orm import Session

from listgate import plurals
from listgate.mail.message import ParsedMessage
from listgate.mail.subjects import is_reply_subject, normalize_subject
from listgate.models import MailingList, Message, PostHiding
from listgate.states import DigestFrequency, PostOrigin, PostState

_ID = re.compile(r"^digest\.(daily|weekly)\.([0-9]{8})\.[a-z0-9]+@(.+)$")
_LABEL = re.compile(r"digest, (?:week of )?([0-9]{4}-[0-9]{2}-[0-9]{2})")
_QUOTE = re.compile(r"^\s*(?:>\s?)+")
MAX_ENTRIES = 1000  # posts a reply is matched against (a digest this long is already unreadable)
MIN_LINE = 16  # quoted lines shorter than this ("Thanks!", "Hi all,") say nothing about which post


@dataclass(frozen=True)
class Period:
    """The days one digest covers: one UTC day, or a week from Monday."""

    frequency: DigestFrequency
    start: date

    @property
    def days(self) -> int:
        """1 or 7."""
        return 7 if self.frequency == DigestFrequency.WEEKLY else 1

    def bounds(self) -> tuple[datetime, datetime]:
        """[start, end) in UTC."""
        start = datetime.combine(self.start, time(0), tzinfo=UTC)
        return start, start + timedelta(days=self.days)

    @property
    def label(self) -> str:
        """'2026-11-28' or 'week of 2026-11-23', as in the digest's subject."""
        return (
            f"week of {self.start.isoformat()}"
            if self.frequency == DigestFrequency.WEEKLY
            else self.start.isoformat()
        )


def last_complete_week(today: date) -> Period:
    """The most recent Monday-to-Sunday week that has ended before today."""
    this_monday = today - timedelta(days=today.weekday())
    return Period(DigestFrequency.WEEKLY, this_monday - timedelta(days=7))


def message_id(period: Period, domain: str) -> str:
    """A fresh Message-ID (without brackets) for one digest of this period."""
    return f"digest.{period.frequency}.{period.start:%Y%m%d}.{secrets.token_hex(6)}@{domain}"


def subject(mlist: MailingList, period: Period, count: int) -> str:
    """The digest's subject."""
    return f"{mlist.title or mlist.name} digest, {period.label} ({plurals.count(count, 'message')})"


# When a post was published: received, or approved later by a moderator (it is in the digest of
# the day it was made visible, not of the day it arrived, whose digest may have gone without it).
published = func.coalesce(Message.published_at, Message.received_at)


def put_back(list_id: int, period: Period) -> Select[int, datetime | None]:
    """(post id, when) of the list's posts a moderator put back in the period, after readers'
    reports hid them: the period's digest offers them again, for the readers whose digest went
    without them (worker/digest_owed.py)."""
    start, end = period.bounds()
    return (
        select(PostHiding.message_pk, func.max(PostHiding.restored_at))
        .where(
            PostHiding.list_id == list_id,
            PostHiding.restored_at >= start,
            PostHiding.restored_at < end,
        )
        .group_by(PostHiding.message_pk)
    )


def posts(
    session: Session, mlist: MailingList, period: Period, limit: int | None = None
) -> list[Message]:
    """The visible posts the list published in the period, and those put back in it, in order;
    not those imported then (an archive's old mail is nobody's news: listgate import mails no
    one). Each reader's digest leaves out those they had (worker/digest_owed.py)."""
    start, end = period.bounds()
    back = put_back(mlist.id, period).subquery()
    back_at = back.c[1]
    query = (
        select(Message)
        .outerjoin(back, back.c.message_pk == Message.id)
        .where(
            Message.list_id == mlist.id,
            Message.status == PostState.VISIBLE,
            Message.origin != PostOrigin.IMPORT,
            or_(and_(published >= start, published < end), back_at.is_not(None)),
        )
        .order_by(func.coalesce(back_at, published), Message.id)
    )
    return list(session.scalars(query.limit(limit) if limit else query))


def period_of(parsed: ParsedMessage, mlist: MailingList, domain: str) -> Period | None:
    """The digest this mail answers as a whole (by its references, else its subject), or None."""
    for ref in reversed(parsed.chain):
        match = _ID.match(ref)
        if match and match.group(3).lower() == domain.lower() and (day := _day(match.group(2))):
            return Period(DigestFrequency(match.group(1)), day)
    if not parsed.chain and is_reply_subject(parsed.subject):
        match = _digest_label(parsed.subject, mlist)
        if match and (day := _day(match.group(1))):
            return Period(
                DigestFrequency.WEEKLY if "week of" in match.group(0) else DigestFrequency.DAILY,
                day,
            )
    return None


def _day(text: str) -> date | None:
    """The day a digest's id or subject names (20261125, 2026-11-25); None for no such day."""
    try:
        return date.fromisoformat(text)
    except ValueError:  # 20261399: a digest never sent, an ordinary reference
        return None


def _digest_label(subject: str, mlist: MailingList) -> re.Match[str] | None:
    """The period label when subject is the list's digest subject (Re: or not), else None."""
    topic = normalize_subject(subject)
    return (
        _LABEL.search(topic)
        if topic.startswith(normalize_subject(f"{mlist.title or mlist.name} digest,"))
        else None
    )


def _quoted(body: str) -> str:
    """The quoted lines of a reply, without their '>' marks, whitespace folded, lower case."""
    lines = [_QUOTE.sub("", line) for line in body.splitlines() if _QUOTE.match(line)]
    return "\n".join(" ".join(line.split()).lower() for line in lines)


def _score(post: Message, quoted: str) -> int:
    score = 100 if post.message_id.lower() in quoted else 0
    if post.subject and f"subject: {' '.join(post.subject.split()).lower()}" in quoted:
        score += 10
    lines = {
        " ".join(line.split()).lower()
        for line in post.body_text.splitlines()
        if not _QUOTE.match(line) and len(line.strip()) >= MIN_LINE
    }
    return score + sum(1 for line in lines if line in quoted)


def answered_entry(
    session: Session, mlist: MailingList, parsed: ParsedMessage, period: Period
) -> Message | None:
    """The post of the digest this reply answers: by subject, else by what it quotes; or None."""
    entries = posts(session, mlist, period, MAX_ENTRIES)
    topic = normalize_subject(parsed.subject)
    named = [p for p in entries if topic and p.subject_norm == topic]
    if named:
        return named[-1]
    ranked = _by_quotes(entries, parsed.body_text)
    if not ranked or (len(ranked) > 1 and ranked[1][0] == ranked[0][0]):
        return None
    return ranked[0][1]


def _by_quotes(entries: list[Message], body: str) -> list[tuple[int, Message]]:
    """(score, post) of the entries a reply quotes, best first, equals in the digest's order."""
    quoted = _quoted(body)
    if not quoted:
        return []
    scored = sorted(
        ((_score(p, quoted), n, p) for n, p in enumerate(entries)), key=lambda t: (-t[0], t[1])
    )
    return [(score, p) for score, _, p in scored if score > 0]


def held_reply(
    session: Session, mlist: MailingList, parsed: ParsedMessage, period: Period, domain: str
) -> ParsedMessage:
    """A reply answered_entry could not place, as it is held (and placed, should a moderator approve
    it).

    Under the entry it quotes most, the digest's first among equals; quoting none, a thread of
    its own without the digest's id and without the digest's subject, which names no topic (and
    would gather every such reply into one "Re: NAME digest" thread).
    """
    ranked = _by_quotes(posts(session, mlist, period, MAX_ENTRIES), parsed.body_text)
    if ranked:
        return thread_under(parsed, ranked[0][1])
    parsed = without_digest(parsed, domain)
    return replace(parsed, subject="") if _digest_label(parsed.subject, mlist) else parsed


def thread_under(parsed: ParsedMessage, entry: Message) -> ParsedMessage:
    """The reply as if written to entry (archive subject included); the raw bytes stay as sent."""
    refs = tuple(r for r in entry.references.split() if r) + (entry.message_id,)
    topic = (
        parsed.subject
        if normalize_subject(parsed.subject) == entry.subject_norm
        else f"Re: {entry.subject}"
    )
    return replace(parsed, in_reply_to=(entry.message_id,), references=refs[-30:], subject=topic)


def without_digest(parsed: ParsedMessage, domain: str) -> ParsedMessage:
    """The reply without the digest's own id in its references (held: in no thread of it)."""

    def keep(ids: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(
            i for i in ids if not (_ID.match(i) and i.lower().endswith("@" + domain.lower()))
        )

    return replace(parsed, in_reply_to=keep(parsed.in_reply_to), references=keep(parsed.references))
