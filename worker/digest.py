"""The daily digest: one multipart/digest per digest subscriber per list per UTC day, sent once."""

from __future__ import annotations

import email
import email.policy
import logging
from collections import OrderedDict
from datetime import date, datetime, time, timedelta, timezone
from email.mime.message import MIMEMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime, make_msgid

from sqlalchemy import or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from listgate import dispatch
from listgate.db import transaction
from listgate.ingest import LOOP_HEADER
from listgate.models import DigestSent, MailingList, Message, OutboxEntry, RawMessage, Subscription, Thread
from listgate.models.archive import VISIBLE
from listgate.models.people import ACTIVE
from listgate.subscriptions import unsubscribe_token
from listgate.tokens import verp_token

from worker import mailer
from worker.context import WorkerContext
from worker.headers import ListInfo, verp_address

log = logging.getLogger(__name__)

CATCH_UP = 3  # days the daily job looks back


def default_day() -> date:
    """Yesterday (UTC): the last complete day."""
    return (datetime.now(timezone.utc) - timedelta(days=1)).date()


def posts_of_day(session, mlist: MailingList, day: date) -> list[tuple[Message, str, bytes]]:  # type: ignore[no-untyped-def]
    """(message, thread subject, raw bytes) of every visible post received that UTC day, in order."""
    start = datetime.combine(day, time(0), tzinfo=timezone.utc)
    rows = session.execute(
        select(Message, Thread.subject, RawMessage.data)
        .join(Thread, Thread.id == Message.thread_id).join(RawMessage, RawMessage.id == Message.raw_id)
        .where(Message.list_id == mlist.id, Message.status == VISIBLE,
               Message.received_at >= start, Message.received_at < start + timedelta(days=1))
        .order_by(Message.received_at, Message.id)).all()
    return [(m, s, d) for m, s, d in rows]


def table_of_contents(info: ListInfo, day: date, posts: list[tuple[Message, str, bytes]]) -> str:
    """The plain-text table of contents, grouped by thread."""
    by_thread: OrderedDict[int, list[tuple[int, Message]]] = OrderedDict()
    subjects: dict[int, str] = {}
    for number, (msg, subject, _) in enumerate(posts, 1):
        by_thread.setdefault(msg.thread_id, []).append((number, msg))
        subjects.setdefault(msg.thread_id, subject or msg.subject or "(no subject)")
    lines = [f"{info.title or info.name} digest, {day.isoformat()}: {len(posts)} messages in "
             f"{len(by_thread)} threads", "", "Today's topics:", ""]
    for thread_id, items in by_thread.items():
        lines.append(f"* {subjects[thread_id]} ({len(items)} message{'s' if len(items) != 1 else ''})")
        lines.extend(f"    {n:3d}. {m.from_name or m.from_addr}: {m.subject}" for n, m in items)
    lines += ["", f"Archive: {info.base_url}/lists/{info.name}/", ""]
    return "\n".join(lines)


def build(info: ListInfo, day: date, posts: list[tuple[Message, str, bytes]], to: str, unsubscribe_url: str) -> bytes:
    """The digest message for one subscriber."""
    digest = MIMEMultipart("digest")
    digest["From"] = f"{info.name}@{info.domain}"
    digest["To"] = to
    digest["Subject"] = f"{info.title or info.name} digest, {day.isoformat()} ({len(posts)} messages)"
    digest["Date"] = format_datetime(datetime.now(timezone.utc))
    digest["Message-ID"] = make_msgid("digest", domain=info.domain)
    digest["List-Id"] = f"<{info.name}.{info.domain}>"
    digest["List-Unsubscribe"] = f"<mailto:{info.name}+unsubscribe@{info.domain}>, <{unsubscribe_url}>"
    digest["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    digest["Auto-Submitted"] = "auto-generated"
    digest["Precedence"] = "list"
    digest[LOOP_HEADER] = info.domain
    digest.attach(MIMEText(table_of_contents(info, day, posts), "plain", "utf-8"))
    for _, _, raw in posts:
        digest.attach(MIMEMessage(email.message_from_bytes(raw, policy=email.policy.compat32)))
    return digest.as_bytes()


def _claim(ctx: WorkerContext, list_id: int, address: str, day: date, count: int) -> int | None:
    """Insert-if-absent the (list, address, day) row; its id when this run should send it."""
    with transaction(ctx.db) as session:
        insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
        session.execute(insert(DigestSent).values(list_id=list_id, address=address, day=day, status="new",
                                                  message_count=count, last_error="",
                                                  created_at=datetime.now(timezone.utc))
                        .on_conflict_do_nothing(index_elements=["list_id", "address", "day"]))
        row_id = session.scalar(update(DigestSent).where(
            DigestSent.list_id == list_id, DigestSent.address == address, DigestSent.day == day,
            DigestSent.status.in_(("new", "deferred"))).values(status="sending").returning(DigestSent.id))
    return row_id


def send_digests(ctx: WorkerContext, day: date | None = None) -> int:
    """Send the digest of `day` to every digest subscriber that has not had it.

    Without a day (the beat job) the last CATCH_UP complete days are covered, so a beat or
    worker that was down at midnight still sends them; DigestSent keeps each to one copy.
    """
    days = [day] if day else [default_day() - timedelta(days=n) for n in range(CATCH_UP)]
    return sum(_send_day(ctx, d) for d in days)


def _send_day(ctx: WorkerContext, day: date) -> int:
    """One day's digests, for people subscribed (confirmed) before that day ended."""
    day_end = datetime.combine(day, time(0), tzinfo=timezone.utc) + timedelta(days=1)
    with ctx.db() as session:
        lists = session.scalars(select(MailingList).where(MailingList.id.in_(
            select(Subscription.list_id).where(Subscription.kind == "digest", Subscription.status == ACTIVE)))).all()
        work = []
        for mlist in lists:
            posts = posts_of_day(session, mlist, day)
            subs = session.execute(select(Subscription.id, Subscription.address).where(
                Subscription.list_id == mlist.id, Subscription.kind == "digest", Subscription.status == ACTIVE,
                or_(Subscription.confirmed_at.is_(None), Subscription.confirmed_at < day_end))).all()
            if posts and subs:
                work.append((ListInfo(mlist.name, mlist.title, ctx.settings.domain, ctx.settings.base_url),
                             mlist.id, posts, subs))
    sent = 0
    with mailer.connect(ctx.settings.outbound) as conn:
        for info, list_id, posts, subs in work:
            for sub_id, address in subs:
                sent += _send_one(ctx, conn, info, list_id, posts, day, sub_id, address)
    log.info("digests of %s: %d sent", day, sent)
    return sent


def _send_one(ctx: WorkerContext, conn, info: ListInfo, list_id: int, posts: list, day: date,  # type: ignore[no-untyped-def]
              sub_id: int, address: str) -> int:
    row_id = _claim(ctx, list_id, address, day, len(posts))
    if row_id is None:
        return 0
    return _deliver(ctx, conn, row_id, (info, list_id, posts, day), sub_id, address)


def _deliver(ctx: WorkerContext, conn, row_id: int, what: tuple[ListInfo, int, list, date],  # type: ignore[no-untyped-def]
             sub_id: int, address: str, outbox_id: int = 0) -> int:
    """Send a claimed digest and record the outcome; a deferral is retried via the outbox sweeper's backoff.

    From the daily run (outbox_id 0) a deferral records a RESEND_DIGEST entry; from a resend
    it releases that entry again, so the sweeper's per-entry backoff and give-up apply.
    """
    info, list_id, posts, day = what
    url = f"{ctx.settings.base_url}/unsubscribe/" + unsubscribe_token(ctx.settings.secret_key, list_id, address)
    data = build(info, day, posts, address, url)
    result = conn.send(verp_address(info, verp_token(ctx.settings.secret_key, "s", sub_id)), address, data)
    status = "sent" if result.ok else result.status
    with transaction(ctx.db) as session:
        session.execute(update(DigestSent).where(DigestSent.id == row_id).values(
            status=status, last_error="" if result.ok else result.detail[:2000],
            sent_at=datetime.now(timezone.utc) if result.ok else None))
        if status == mailer.DEFERRED and outbox_id:
            session.execute(update(OutboxEntry).where(OutboxEntry.id == outbox_id).values(done_at=None))
        elif status == mailer.DEFERRED:
            # Not enqueued now: the outbox sweeper sends it after its backoff (as for notices).
            dispatch.record(session, dispatch.RESEND_DIGEST, row_id)
    if status == mailer.DEFERRED:
        log.warning("digest %s of %s to %s deferred, retried with backoff: %s", row_id, day, address, result.detail)
    return 1 if result.ok else 0


def resend(ctx: WorkerContext, outbox_id: int) -> int:
    """Send again a digest a relay deferred (task RESEND_DIGEST); 1 when it went out.

    The outbox entry and the digests_sent row are both claimed by compare-and-set, so a
    re-queued duplicate of the task, or the daily run catching up, never sends a second copy.
    Deferred again: the entry is released and the sweeper re-queues it with backoff.
    """
    with transaction(ctx.db) as session:
        claimed = session.execute(update(OutboxEntry).where(
            OutboxEntry.id == outbox_id, OutboxEntry.done_at.is_(None)).values(done_at=datetime.now(timezone.utc)))
        entry = session.get(OutboxEntry, outbox_id) if claimed.rowcount == 1 else None
        row_id = entry.ref_id if entry is not None else 0
        row = session.get(DigestSent, row_id)
        if row is None or session.execute(update(DigestSent).where(
                DigestSent.id == row_id, DigestSent.status == mailer.DEFERRED).values(status="sending")).rowcount != 1:
            return 0
        mlist = session.get_one(MailingList, row.list_id)
        info = ListInfo(mlist.name, mlist.title, ctx.settings.domain, ctx.settings.base_url)
        posts = posts_of_day(session, mlist, row.day)
        sub_id = session.scalar(select(Subscription.id).where(
            Subscription.list_id == mlist.id, Subscription.address == row.address,
            Subscription.kind == "digest", Subscription.status == ACTIVE))
        day, address, mlist_id = row.day, row.address, mlist.id
        if sub_id is None:
            row.status = "cancelled"
            return 0
    with mailer.connect(ctx.settings.outbound) as conn:
        return _deliver(ctx, conn, row_id, (info, mlist_id, posts, day), sub_id, address, outbox_id)
