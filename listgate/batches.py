"""Batches of mail into the archive: ingest_batch, the one way the archiver and `listgate import`
archive.

Each message is ingested (listgate.ingest.ingest) for each of its recipients, the whole batch
under one SAVEPOINT; a message that fails alone is redone apart, and a failure that took the
whole transaction with it raises BatchAborted so nobody commits or counts the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from listgate import bans, lists, places, store
from listgate.addresses import Recipient
from listgate.admission import posting_addresses
from listgate.contents import store_raws
from listgate.ingest import IngestResult, ingest, look_ahead, thread_command
from listgate.mail.message import ParsedMessage
from listgate.models import MailingList
from listgate.states import PostOrigin, PostState

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Item:
    """One message to archive for each of its recipients (a list, or a list's command address)."""

    parsed: ParsedMessage
    recipients: tuple[Recipient, ...]
    origin: str = PostOrigin.SMTP
    envelope_from: str | None = None


# per recipient (None: no such list), or what failed the item
ItemResult = list[IngestResult | None] | Exception


class BatchAborted(RuntimeError):
    """The transaction itself is gone (disk full, I/O error, out of memory, a lost connection).

    Nothing of the batch can commit: the caller redoes each message in a transaction of its own.
    """


def first_cause(exc: BaseException) -> str:
    """The error that started it all, named for an operator: a transaction that is gone fails
    again at each later step (SQLite's "no such savepoint" at the SAVEPOINT's end), and the last
    of those hides the first (disk full, I/O error, too many open files)."""
    first, seen = exc, {id(exc)}
    while first.__context__ is not None and id(first.__context__) not in seen:
        first = first.__context__
        seen.add(id(first))
    driver = getattr(first, "orig", None)  # SQLAlchemy's wrapper: the driver's own error
    named = driver if isinstance(driver, BaseException) else first
    return f"{type(named).__name__}: {str(named).strip()}"


def ingest_batch(
    session: Session, items: Sequence[Item], *, domain: str, fallback_days: int = 30
) -> list[ItemResult]:
    """Ingest each item under its own SAVEPOINT in the caller's transaction: the one way mail enters
    the archive.

    An item that fails alone gets its exception and the others go on. When a failure took the
    whole transaction with it (SQLite rolls back everything on SQLITE_FULL and then reports
    "no such savepoint"), BatchAborted is raised instead, so no caller commits or counts the rest.
    """
    known: dict[
        str, MailingList | None
    ] = {}  # a batch posts mostly to the same lists: look each up once
    try:  # one SAVEPOINT for the batch: per message they cost a statement pair and a flush each
        with session.begin_nested():
            _look_ahead(session, items, known)
            return [_ingest_item(session, item, known, domain, fallback_days) for item in items]
    except Exception as exc:
        if not store.of(session).transaction_alive(session):
            raise BatchAborted(first_cause(exc)) from exc
        log.info(
            "a message of a batch of %d failed (%s); redoing the batch one message at a time",
            len(items),
            exc,
        )
    results: list[ItemResult] = []
    for item in items:
        try:
            with session.begin_nested():
                results.append(_ingest_item(session, item, known, domain, fallback_days))
        except Exception as exc:
            if not store.of(session).transaction_alive(session):
                raise BatchAborted(first_cause(exc)) from exc
            log.warning(
                "archiving <%s> failed: %s: %s", item.parsed.message_id, type(exc).__name__, exc
            )
            results.append(exc)
    return results


def _look_ahead(
    session: Session, items: Sequence[Item], known: dict[str, MailingList | None]
) -> None:
    """Read what the batch will ask of each list's archive in a few queries (listgate.places),
    and which of its senders each list bans (the screen of live mail)."""
    batches: dict[str, list[Item]] = {}
    for item in items:
        for recipient in item.recipients:
            if not recipient.command:
                batches.setdefault(recipient.list_name, []).append(item)
    for name, batch in batches.items():
        if name not in known:
            known[name] = lists.get(session, name)
        mlist = known[name]
        if mlist is not None:
            look_ahead(session, mlist, [item.parsed for item in batch])
            bans.learn(
                session,
                mlist.id,
                bans.posting_forms(
                    [
                        address
                        for item in batch
                        if item.origin != PostOrigin.IMPORT
                        for address in posting_addresses(item.parsed, item.envelope_from)
                    ]
                ),
            )
    store_raws(session, [item.parsed for item in items if _keeps_bytes(session, item, known)])


def _keeps_bytes(session: Session, item: Item, known: dict[str, MailingList | None]) -> bool:
    """Whether ingesting the item will keep its bytes, as far as the look-ahead tells.

    Every way in keeps them (a post, a held post, a variant, the not-posted queue, a command),
    except a thread command acting on its thread, and the Message-ID of a takedown, which
    keeps nothing more. When unsure it answers False: store_raw_id then stores them alone.
    """
    if item.origin not in (PostOrigin.IMPORT, PostOrigin.RELEASE) and thread_command(item.parsed):
        return False  # ingest reads a thread command only in new mail
    for recipient in item.recipients:
        mlist = known.get(recipient.list_name)
        if mlist is None:
            continue
        if recipient.command:
            return True
        existing = places.archived(session, mlist.id, item.parsed.message_id)
        if existing is None or existing.status != PostState.REMOVED:
            return True
    return False


def _ingest_item(
    session: Session,
    item: Item,
    known: dict[str, MailingList | None],
    domain: str,
    fallback_days: int,
) -> list[IngestResult | None]:
    done: dict[Recipient, IngestResult | None] = {}
    for recipient in item.recipients:
        if recipient not in done:
            if recipient.list_name not in known:
                known[recipient.list_name] = lists.get(session, recipient.list_name)
            mlist = known[recipient.list_name]
            done[recipient] = (
                None
                if mlist is None
                else ingest(
                    session,
                    item.parsed,
                    mlist,
                    domain=domain,
                    origin=item.origin,
                    envelope_from=item.envelope_from,
                    fallback_days=fallback_days,
                    recipient=recipient,
                )
            )
    return [done[r] for r in item.recipients]
