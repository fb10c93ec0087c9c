"""Running a list: its settings, owners and moderators, deleting it, and the audit log.

The one service behind `listgate lists edit|delete`, `listgate owners|moderators ...` and the
web settings page: every change is checked here, and logged here with who made it and when.
Works inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, delete, func, or_, select, update
from sqlalchemy.orm import Session

from listgate import approvals, limits, plurals, policy, subscriptions
from listgate.lists import ListError
from listgate.models import (
    Attachment,
    AuditEntry,
    Ban,
    Blob,
    Delivery,
    DigestSent,
    MailingList,
    Message,
    MessageEdit,
    MessageRef,
    MessageVariant,
    ModerationReminder,
    NotPosted,
    PostHiding,
    RawMessage,
    ReadMark,
    Removal,
    Report,
    Subscription,
    Thread,
    ThreadNode,
    ThreadParticipant,
    Vote,
)
from listgate.models.delivery import Bounce
from listgate.states import ListPolicy, ReplyTo
from listgate.store import lock_list

ROLES = ("owner", "moderator")
ROLE_ACTIONS = ("add", "remove")
FIELDS = ("title", "description", "policy", "private", "reply_to")
LIMITS = {"title": limits.TITLE, "description": limits.DESCRIPTION}


def normalize_address(address: str) -> str:
    """A lower-cased bare address, or ListError naming it."""
    try:
        return subscriptions.normalize(address)
    except subscriptions.SubscriptionError as exc:
        raise ListError(str(exc)) from None


def record(
    session: Session, mlist: MailingList, actor: str, action: str, detail: str
) -> AuditEntry:
    """Log one change to mlist (who, what, when)."""
    entry = AuditEntry(
        list_id=mlist.id, list_name=mlist.name, actor=actor, action=action, detail=detail[:4000]
    )
    session.add(entry)
    return entry


def history(session: Session, mlist: MailingList, limit: int = 100) -> list[AuditEntry]:
    """The newest changes to mlist first.

    Not those of a deleted list that had its id (SQLite gives the id of the last row again): a
    list created under an old name starts with a history of its own.
    """
    return list(
        session.scalars(
            select(AuditEntry)
            .where(AuditEntry.list_id == mlist.id, AuditEntry.created_at >= mlist.created_at)
            .order_by(AuditEntry.id.desc())
            .limit(limit)
        )
    )


def is_admin(admins: Iterable[str], address: str | None) -> bool:
    """True for a site administrator (LISTGATE_ADMINS)."""
    return bool(address) and (address or "").lower() in {a.lower() for a in admins}


def may_change(mlist: MailingList, address: str | None, admins: Iterable[str]) -> bool:
    """Owners and site administrators change a list's settings and roles."""
    return bool(address) and (
        (address or "").lower() in mlist.owner_addresses() or is_admin(admins, address)
    )


def may_moderate(mlist: MailingList, address: str | None, admins: Iterable[str]) -> bool:
    """Moderators, owners and site administrators act on posts."""
    return bool(address) and (
        (address or "").lower() in mlist.moderator_addresses() or may_change(mlist, address, admins)
    )


def edit(session: Session, mlist: MailingList, actor: str, **changes: object) -> list[str]:
    """Change some of FIELDS (None: as is); ListError or TooLong for a bad value; lines logged."""
    changes = {name: value for name, value in changes.items() if value is not None}
    unknown = set(changes) - set(FIELDS)
    if unknown:
        raise ListError(f"unknown setting(s): {', '.join(sorted(unknown))}")
    if "policy" in changes and changes["policy"] not in tuple(ListPolicy):
        raise ListError(
            f"unknown policy {changes['policy']!r}: choose one of {', '.join(ListPolicy)}"
        )
    if "reply_to" in changes and changes["reply_to"] not in tuple(ReplyTo):
        raise ListError(
            f"unknown Reply-To policy {changes['reply_to']!r}: choose one of {', '.join(ReplyTo)}"
        )
    for name, limit in LIMITS.items():
        # a value stored before its limit stays while the other settings change
        if name in changes and str(changes[name]).strip() != getattr(mlist, name):
            limits.within(limit, str(changes[name]).strip())
    done, needed = [], policy.needs_approval(mlist)
    for name in FIELDS:
        if name not in changes:
            continue
        old, new = getattr(mlist, name), changes[name]
        if name == "private":
            new = bool(new)
        else:
            new = str(new).strip()
        if old == new:
            continue
        setattr(mlist, name, new)
        line = f"{name}: {_shown(old)} -> {_shown(new)}"
        record(session, mlist, actor, "edit", line)
        done.append(line)
    session.flush()
    if needed and not policy.needs_approval(mlist):
        # Confirmed requests waiting for a moderator are in, as anyone asking now would be.
        done += [
            f"let in {sub.address} ({sub.kind})" for sub in approvals.let_in(session, mlist, actor)
        ]
    return done


def _shown(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    text = str(value).replace("\n", " ")
    return repr(text[:80] + ("…" if len(text) > 80 else ""))


def _role_column(role: str) -> str:
    if role not in ROLES:
        raise ListError(f"unknown role {role!r}: choose one of {', '.join(ROLES)}")
    return "owners" if role == "owner" else "moderators"


def members_of(mlist: MailingList, role: str) -> list[str]:
    """The owners or moderators of mlist, sorted."""
    column = _role_column(role)
    return sorted(mlist.owner_addresses() if column == "owners" else mlist.moderator_addresses())


def change_role(
    session: Session, mlist: MailingList, action: str, role: str, address: str, actor: str
) -> bool:
    """Add or remove an owner or moderator; False when the address already had it, or had not."""
    if action not in ROLE_ACTIONS:
        raise ListError(f"unknown action {action!r}: choose one of {', '.join(ROLE_ACTIONS)}")
    address, column = normalize_address(address), _role_column(role)
    # the roles as they are now, locked: two owners' changes at once (web or command line) are
    # both kept, where each rewrote the column from what it had read before
    lock_list(session, mlist)
    session.refresh(mlist)
    current = members_of(mlist, role)
    if (address in current) == (action == "add"):
        return False
    people = [*current, address] if action == "add" else [a for a in current if a != address]
    setattr(mlist, column, ",".join(sorted(people)))
    record(session, mlist, actor, f"{action} {role}", address)
    session.flush()
    return True


@dataclass(frozen=True)
class Deletion:
    """What deleting a list removed (or would remove)."""

    name: str
    messages: int
    threads: int
    subscriptions: int
    not_posted: int = 0  # entries of the not-posted queue

    def describe(self) -> str:
        """One line for the owner."""
        return (
            f"{self.name}: {plurals.count(self.messages, 'message')}, "
            f"{plurals.count(self.threads, 'thread')}, "
            f"{plurals.count(self.subscriptions, 'subscription')}, "
            f"{plurals.count(self.not_posted, 'mail')} not posted, "
            "and its raw mail, attachments, reports and history"
        )


def deletion(session: Session, mlist: MailingList) -> Deletion:
    """What delete() would remove."""

    def count(model: type[Any], *where: ColumnElement[bool]) -> int:
        return session.scalar(select(func.count()).select_from(model).where(*where)) or 0

    return Deletion(
        mlist.name,
        count(Message, Message.list_id == mlist.id),
        count(Thread, Thread.list_id == mlist.id),
        count(Subscription, Subscription.list_id == mlist.id),
        count(NotPosted, NotPosted.list_id == mlist.id),
    )


def delete_list(session: Session, mlist: MailingList, actor: str, purge: bool = False) -> Deletion:
    """Delete a list; ListError when it has posts and purge is False (nothing lost by mistake)."""
    what = deletion(session, mlist)
    if what.messages and not purge:
        raise ListError(
            f"{mlist.name} has {plurals.count(what.messages, 'message')} in its archive; "
            f"add --purge to delete them too ({what.describe()})"
        )
    pks = select(Message.id).where(Message.list_id == mlist.id).scalar_subquery()
    raws = set(session.scalars(select(Message.raw_id).where(Message.list_id == mlist.id)))
    raws |= set(session.scalars(select(NotPosted.raw_id).where(NotPosted.list_id == mlist.id)))
    raws |= set(
        session.scalars(select(MessageVariant.raw_id).where(MessageVariant.message_pk.in_(pks)))
    )
    blobs = set(session.scalars(select(Attachment.sha256).where(Attachment.message_pk.in_(pks))))
    delivery_ids = select(Delivery.id).where(Delivery.message_pk.in_(pks)).scalar_subquery()
    sub_ids = select(Subscription.id).where(Subscription.list_id == mlist.id).scalar_subquery()
    digest_ids = select(DigestSent.id).where(DigestSent.list_id == mlist.id).scalar_subquery()
    session.execute(
        delete(Bounce).where(
            or_(
                Bounce.delivery_id.in_(delivery_ids),
                Bounce.digest_id.in_(digest_ids),
                Bounce.subscription_id.in_(sub_ids),
            )
        )
    )
    for model, where in (
        (Delivery, Delivery.message_pk.in_(pks)),
        (Vote, Vote.message_pk.in_(pks)),
        (Report, Report.message_pk.in_(pks)),
        (PostHiding, PostHiding.message_pk.in_(pks)),
        (Removal, Removal.message_pk.in_(pks)),
        (Attachment, Attachment.message_pk.in_(pks)),
        (MessageRef, MessageRef.message_pk.in_(pks)),
        (MessageVariant, MessageVariant.message_pk.in_(pks)),
        (MessageEdit, MessageEdit.message_pk.in_(pks)),
        (ThreadNode, ThreadNode.list_id == mlist.id),
    ):
        session.execute(delete(model).where(where))
    session.execute(update(Message).where(Message.list_id == mlist.id).values(parent_id=None))
    session.execute(delete(Message).where(Message.list_id == mlist.id))
    threads = select(Thread.id).where(Thread.list_id == mlist.id).scalar_subquery()
    session.execute(delete(ThreadParticipant).where(ThreadParticipant.thread_id.in_(threads)))
    session.execute(delete(ReadMark).where(ReadMark.thread_id.in_(threads)))
    session.execute(update(Thread).where(Thread.list_id == mlist.id).values(merged_into_id=None))
    session.execute(delete(Thread).where(Thread.list_id == mlist.id))
    scoped: tuple[type[Any], ...] = (
        Subscription,
        DigestSent,
        Ban,
        Report,
        ModerationReminder,
        NotPosted,
    )
    for model_type in scoped:
        session.execute(delete(model_type).where(model_type.list_id == mlist.id))
    drop_unused(session, raws, blobs)
    record(session, mlist, actor, "delete list", what.describe())
    session.delete(mlist)
    session.flush()
    return what


def drop_unused(session: Session, raw_ids: set[int], blob_hashes: set[str]) -> None:
    """Delete raw mails and attachment contents no message refers to any more (stored by hash)."""
    if raw_ids:
        used = set(session.scalars(select(Message.raw_id).where(Message.raw_id.in_(raw_ids))))
        used |= set(session.scalars(select(NotPosted.raw_id).where(NotPosted.raw_id.in_(raw_ids))))
        used |= set(
            session.scalars(select(MessageVariant.raw_id).where(MessageVariant.raw_id.in_(raw_ids)))
        )
        if raw_ids - used:
            session.execute(delete(RawMessage).where(RawMessage.id.in_(raw_ids - used)))
    if blob_hashes:
        used_blobs = set(
            session.scalars(select(Attachment.sha256).where(Attachment.sha256.in_(blob_hashes)))
        )
        if blob_hashes - used_blobs:
            session.execute(delete(Blob).where(Blob.sha256.in_(blob_hashes - used_blobs)))
