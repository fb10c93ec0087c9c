"""Bounces: read a DSN (RFC 3464) or a common non-standard bounce, match it, score it.

Matching is by the VERP token in the address the bounce came to, never by guessing from
the text. A failure counts against a subscriber only when it is theirs: a 5xx to RCPT, or a
reply or DSN that names their address with a status about an address or a mailbox. A relay
refusing the message itself (its size, a long line, a content filter) would otherwise let
anyone get every subscriber suspended by posting a few such messages: that is a failed post
(REFUSED), recorded for the moderators and scored against nobody.
"""

from __future__ import annotations

import email
import json
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import Message as StdMessage
from functools import partial

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from listgate import dispatch, privacy, tokens
from listgate.config import Settings
from listgate.mail import mime
from listgate.models import Bounce, Delivery, DigestSent, MailingList, OutboxEntry, Subscription
from listgate.states import BounceKind, SubscriptionKind, SubscriptionState
from listgate.store import lock_list
from listgate.subscriptions import SWITCHED_TO_LIST
from worker import mailer

log = logging.getLogger(__name__)

WEIGHT = {
    BounceKind.PERMANENT: 1.0,
    BounceKind.TRANSIENT: 0.5,
    BounceKind.DELAYED: 0.0,
    BounceKind.UNKNOWN: 0.0,
    BounceKind.REFUSED: 0.0,
}
FORGET_AFTER = timedelta(days=30)  # a score older than this starts again from zero
_ADDR = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_DAEMON = re.compile(
    r"^(mailer-daemon|postmaster|mail-daemon|mailer|root|noreply|no-reply)@", re.IGNORECASE
)
_ORIGINAL = re.compile(
    r"^\s*(?:-+\s*)?(?:original message|below this line is a copy|the original message|"
    r"message headers follow|unsent message below|returned message|original message follows|"
    r"--- original message|------ this is a copy of the message|received:|return-path:)",
    re.IGNORECASE | re.MULTILINE,
)
_WARNING = re.compile(
    r"\bdelay(?:ed)?\b|\bwarning\b|will (?:continue to|keep) (?:try|retry|attempt)|will be retried|"
    r"still (?:trying|being retried)|not yet been delivered|has not been delivered yet|"
    r"no action is required|delivery (?:is|has been) delayed",
    re.IGNORECASE,
)
# RFC 3463 enhanced status code, in ASCII digits (\d takes "٧": such a text is no code)
_STATUS = re.compile(r"(?<![0-9.])([45])\.([0-9]{1,3})\.([0-9]{1,3})(?![0-9.])")
# Without a status code (or with X.0.0) only such words tell that the address or mailbox failed.
_RECIPIENT_WORDS = re.compile(
    r"user unknown|unknown user|no such (?:user|mailbox|recipient|address|account)|user not found|"
    r"mailbox (?:unavailable|not found|disabled|inactive|full|does not exist|is full)|"
    r"does not exist|"
    r"unknown (?:recipient|mailbox|address|local part)|invalid (?:recipient|mailbox|address)|"
    r"recipient (?:address )?rejected|address rejected|not a valid mailbox|no mailbox here|"
    r"addressee unknown|"
    r"account (?:disabled|closed|expired|suspended|inactive|has been disabled)|over quota|"
    r"quota exceeded|"
    r"unrouteable address|host or domain name not found|domain (?:not found|does not exist)|"
    r"not our customer",
    re.IGNORECASE,
)
# ... and these that the message itself was refused (by a size, line or content limit, a filter,
# a policy).
_MESSAGE_WORDS = re.compile(
    r"too (?:large|big|long)|size (?:limit|exceeds)|exceeds (?:the )?(?:size|maximum|limit)|"
    r"line length|"
    r"lines? (?:is |are )?(?:too long|longer than)|header (?:line |size )?(?:too long|exceeds)|"
    r"content|spam|"
    r"virus|malware|unsolicited|policy|blocked|blacklist|blocklist|reputation|\b8-?bit\b|dmarc|dkim|\bspf\b|"
    r"not accepted|rejected for|too many hops",
    re.IGNORECASE,
)
_FATAL = re.compile(
    r"permanent(?:ly)?|given up|giving up|not going to try again|could not be delivered|"
    r"undeliverable|"
    r"user unknown|unknown user|does not exist|no such (?:user|mailbox|address)|unknown recipient|"
    r"delivery failed|failed (?:permanently|recipient)|unable to deliver|"
    r"(?<![0-9.])5\.[0-9]{1,3}\.[0-9]{1,3}\b|\b55[0-9]\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class BounceReport:
    """What a bounce says: its kind, the failed recipients it names, and why."""

    kind: BounceKind
    recipients: tuple[str, ...]
    diagnostic: str = ""
    blamed: tuple[str, ...] = ()  # the recipients (lower case) whose own address or mailbox failed

    def blames(self, address: str) -> bool:
        """True when the failure is address's own, not the message's."""
        return address.lower() in self.blamed


def blames_recipient(status: str, text: str, named: bool) -> bool:
    """Whether a failure is the recipient's (address, mailbox or route) rather than the message's.

    The enhanced status code (RFC 3463) decides when there is one: X.1.x addressing, except X.1.7
    and X.1.8 (the sender's); X.2.x mailbox, except X.2.3 (the message's length); X.4.x routing are
    the recipient's; system, protocol, content and policy (X.3, X.5, X.6, X.7) are the message's.
    Without one (or with X.0.0) the words do, when they say. A report that names the recipient
    (a DSN's failed recipient, an address in a bounce) counts unless it shows the message is at
    fault; a reply to the message itself names nobody and counts only when it shows the
    recipient is.
    """
    whose = _whose(status, text)
    return whose == "recipient" or (named and whose == "")


def _whose(status: str, text: str) -> str:
    """'recipient', 'message', or '' when neither the status code nor the words tell.

    A specific code (X.Y.Z, Z not 0) decides; with a generic one (X.Y.0, often misused) the
    words decide first, then the code's class.
    """
    found = _STATUS.search(status) or _STATUS.search(text)
    subject, detail = (found.group(2), found.group(3)) if found else ("0", "0")
    if subject != "0" and detail != "0":
        return _by_code(subject, detail)
    if _RECIPIENT_WORDS.search(text):
        return "recipient"
    if _MESSAGE_WORDS.search(text):
        return "message"
    return _by_code(subject, detail) if subject != "0" else ""


def _by_code(subject: str, detail: str) -> str:
    ours = (
        (subject == "1" and detail not in ("7", "8"))
        or (subject == "2" and detail != "3")
        or subject == "4"
    )
    return "recipient" if ours else "message"


def refusal_kind(result: mailer.SendResult) -> BounceKind:
    """PERMANENT for a relay's 5xx that is the recipient's (at RCPT, or by status), else REFUSED."""
    if result.stage == mailer.RCPT or (
        result.stage == mailer.DOT and blames_recipient("", result.detail, named=False)
    ):
        return BounceKind.PERMANENT
    return BounceKind.REFUSED


def parse_bounce(raw: bytes) -> BounceReport:
    """Classify a bounce; never raises on malformed mail."""
    msg = mime.message(raw)
    report = _dsn(msg)
    return report if report is not None else _heuristic(msg)


def _dsn(msg: StdMessage) -> BounceReport | None:
    """The per-recipient fields of a message/delivery-status part, when there is one."""
    for part in msg.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        groups = part.get_payload()
        if not isinstance(groups, list):
            groups = [email.message_from_string(str(groups))]
        failed: dict[str, str] = {}
        kinds: list[BounceKind] = []
        blamed: list[str] = []
        diagnostic = ""
        for group in groups[1:] if len(groups) > 1 else groups:
            if not isinstance(group, StdMessage):
                continue
            action = str(group.get("Action", "")).strip().lower()
            status = str(group.get("Status", "")).strip()
            named = [
                str(group.get(f, "")).split(";", 1)[-1].strip().strip("<>").lower()
                for f in ("Final-Recipient", "Original-Recipient")
            ]
            addr = named[0] or named[1]
            if action.startswith("delayed") or action in ("relayed", "delivered", "expanded"):
                kinds.append(
                    BounceKind.DELAYED if action.startswith("delayed") else BounceKind.UNKNOWN
                )
                continue
            kind = BounceKind.TRANSIENT if status.startswith("4") else BounceKind.PERMANENT
            kinds.append(kind)
            if addr:
                failed[addr] = kind
            why = " ".join(str(group.get("Diagnostic-Code", "")).split())
            if blames_recipient(status, why, named=True):
                blamed.extend(a for a in named if a)
            diagnostic = diagnostic or why or status
        if not kinds:
            return None
        kind = next(
            (k for k in (BounceKind.PERMANENT, BounceKind.TRANSIENT) if k in kinds), kinds[0]
        )
        return BounceReport(kind, tuple(failed), diagnostic[:500], tuple(blamed))
    return None


def _report_text(msg: StdMessage) -> str:
    """The human-readable part of a bounce, cut before any quoted original."""
    texts = []
    for part in msg.walk():
        if part.get_content_maintype() == "message":
            break
        if part.get_content_type() in ("text/plain", "text/html") or (
            not part.is_multipart() and part is msg
        ):
            decoded = part.get_payload(decode=True)
            payload = decoded if isinstance(decoded, bytes) else b""
            try:
                text = payload.decode(part.get_content_charset() or "latin-1", "replace")
            except LookupError:  # a charset Python does not know
                text = payload.decode("latin-1")
            if part.get_content_type() == "text/html":
                text = re.sub(r"<[^>]+>", " ", text)
            texts.append(text)
            if part.get_content_type() == "text/plain":
                break
    text = "\n".join(texts)
    cut = _ORIGINAL.search(text)
    return text[: cut.start()] if cut and cut.start() > 40 else text


def _heuristic(msg: StdMessage) -> BounceReport:
    """Non-standard bounces: warning words vs. failure words, and the addresses named."""
    subject = str(msg.get("Subject", ""))
    text = _report_text(msg)
    own = {a.lower() for a in _ADDR.findall(f"{msg.get('From', '')} {msg.get('To', '')}")}
    found = []
    for written in _ADDR.findall(text):
        addr = written.strip(".").lower()
        if addr not in own and not _DAEMON.match(addr) and addr not in found:
            found.append(addr)
    fatal_subject = _FATAL.search(subject)
    fatal = _FATAL.search(text) or fatal_subject
    if (_WARNING.search(subject) and not fatal_subject) or (_WARNING.search(text) and not fatal):
        return BounceReport(BounceKind.DELAYED, tuple(found), subject[:200])
    if fatal or found:
        line = fatal.group(0) if fatal else subject
        blamed = tuple(found) if blames_recipient("", f"{subject}\n{text}", named=True) else ()
        return BounceReport(BounceKind.PERMANENT, tuple(found), line[:200], blamed)
    return BounceReport(BounceKind.UNKNOWN, (), subject[:200])


def score(
    session: Session,
    settings: Settings,
    sub: Subscription | None,
    kind: BounceKind,
    weight: float | None = None,
) -> list[OutboxEntry]:
    """Add a bounce to a subscription's score (weight: of a copy reported before, what the kind
    adds to what was counted then); past the limit suspend it and tell the person."""
    weight = WEIGHT.get(kind, 0.0) if weight is None else weight
    if sub is None or weight <= 0.0:
        return []
    when = datetime.now(UTC)
    if sub.last_bounce_at is not None and when - sub.last_bounce_at > FORGET_AFTER:
        sub.bounce_score = 0.0
    sub.bounce_score += weight
    sub.last_bounce_at = when
    if sub.status != SubscriptionState.ACTIVE or sub.bounce_score < settings.bounce_score_limit:
        return []
    sub.status, sub.suspended_at = SubscriptionState.SUSPENDED, when
    mlist = session.get_one(MailingList, sub.list_id)
    log.warning(
        "suspended %s on %s after bounces (score %.1f)", sub.address, mlist.name, sub.bounce_score
    )
    return [
        dispatch.record(
            session,
            dispatch.SEND_NOTICE,
            sub.id,
            {
                "template": "suspended",
                "to": sub.address,
                "list": mlist.name,
                "score": sub.bounce_score,
                "kind": sub.kind,
                "thread_id": sub.thread_key,
            },
        )
    ]


def handle(
    session: Session, settings: Settings, entry: OutboxEntry, raw: bytes
) -> list[OutboxEntry]:
    """A mail to NAME+bounce-TOKEN@: record it against the copy it is about and score it."""
    payload = json.loads(entry.payload or "{}")
    found = tokens.read_verp_token(
        settings.secret_key, str(payload.get("arg", "")), partial(privacy.copy_made, session)
    )
    if found is None:
        log.info("bounce to an unknown or forged VERP token %r ignored", payload.get("arg"))
        return []
    report = parse_bounce(raw)
    copy = copy_named(session, *found)
    address = copy.address
    failure = report.kind
    if failure in (BounceKind.PERMANENT, BounceKind.TRANSIENT) and not report.blames(address):
        # the message failed (or someone else did): a failed post, not this subscriber's bounce
        failure = BounceKind.REFUSED
        log.warning(
            "a bounce for %s names no failure of theirs (a failed post, not counted): %s",
            address,
            report.diagnostic[:200],
        )
    log.info("%s bounce for %s: %s", failure, address, report.diagnostic[:120])
    return counted(session, settings, copy, failure, report.diagnostic)


def counted(
    session: Session, settings: Settings, copy: Copy, kind: BounceKind, diagnostic: str
) -> list[OutboxEntry]:
    """The one way a failure of a copy (a post's or a digest's, refused by the relay as it went
    out or reported by a bounce later) is recorded and scored: a Bounce row, then the score of
    the copy's subscription, unless the copy went out before the subscription last started.

    One copy fails once: a report of it again (a relay retrying its DSN, a storm of copies of
    one) adds only what a harder kind adds to what its earlier reports counted (a 4xx, then
    the 5xx that gave up: 1, not 1.5)."""
    sub = copy.subscription
    if sub is not None:
        # First, as every writer of the list: the subscription as changed meanwhile (left, come
        # back, scored by another report of a worker beside this one) is what is scored, never
        # overwritten by what was read before.
        lock_list(session, session.get_one(MailingList, sub.list_id))
        session.refresh(sub)
        if copy.digest is not None:
            session.refresh(copy.digest)
    before = _counted_before(session, copy)
    session.add(
        Bounce(
            delivery_id=copy.delivery_id,
            digest_id=copy.digest.id if copy.digest is not None else None,
            subscription_id=sub.id if sub else None,
            address=copy.address,
            kind=kind,
            diagnostic=diagnostic[:2000],
        )
    )
    if sub is not None and _before_return(copy.sent_at, sub):
        log.info(
            "a bounce for %s about a copy sent before they came back: not counted", copy.address
        )
        return []
    weight = WEIGHT.get(kind, 0.0)
    if weight > 0.0 and copy.digest is not None and copy.digest.sent_at is not None:
        copy.digest.last_error = f"{kind}: {diagnostic}"[:2000]  # it went out, and failed since
    if 0.0 < weight <= before:
        log.info("another report of a copy already counted against %s: not counted", copy.address)
        return []
    return score(session, settings, sub, kind, weight - before)


def _counted_before(session: Session, copy: Copy) -> float:
    """What earlier reports of this copy added to a score: the most any of its bounce rows
    weighs (a post's copy's by its deliveries row, a digest's by its digests_sent row; a relay's
    refusal as it goes out is its first). A digest reported before its rows were kept
    (migration 0021) counts what its row's last error names."""
    if copy.delivery_id is not None:
        mine = Bounce.delivery_id == copy.delivery_id
    elif copy.digest is not None:
        mine = Bounce.digest_id == copy.digest.id
    else:
        return 0.0
    weights = [WEIGHT.get(k, 0.0) for k in session.scalars(select(Bounce.kind).where(mine))]
    digest = copy.digest
    if digest is not None and digest.sent_at is not None and digest.last_error:
        said = digest.last_error.partition(":")[0]
        weights.append(next((w for k, w in WEIGHT.items() if k == said), 0.0))
    return max(weights, default=0.0)


@dataclass(frozen=True)
class Copy:
    """What a VERP token names: the subscription the copy went to, its address, when it went out
    (None: not known; for a refusal as it goes out, the try) and, for a post's copy, its
    deliveries row; for a digest's, its digests_sent row."""

    subscription: Subscription | None
    address: str
    sent_at: datetime | None = None
    delivery_id: int | None = None
    digest: DigestSent | None = None  # a digest's copy: its digests_sent row


def copy_named(session: Session, kind: str, ident: int) -> Copy:
    """The copy a VERP token (kind, ident) names: a post's (deliveries row), a digest's
    (digests_sent row, its subscription the address's digest row), or only a subscription (the
    tokens of digests mailed before digest copies were named: which one is not known, so it went
    out at the latest with the last digest that can have carried such a token). A digest's copy
    is scored where the address is now mailed (see _mailed_now)."""
    if kind == tokens.VERP_DELIVERY:
        delivery = session.get(Delivery, ident)
        if delivery is None:
            return Copy(None, "")
        sub = session.get(Subscription, delivery.subscription_id or 0)
        return Copy(sub, delivery.address, delivery.sent_at or delivery.created_at, delivery.id)
    if kind == tokens.VERP_DIGEST:
        digest = session.get(DigestSent, ident)
        if digest is None:
            return Copy(None, "")
        sub = _row(session, digest.list_id, digest.address, SubscriptionKind.DIGEST)
        sent = digest.sent_at or digest.created_at
        return Copy(_mailed_now(session, sub), digest.address, sent, digest=digest)
    sub = session.get(Subscription, ident)
    if sub is None:
        return Copy(None, "")
    return Copy(_mailed_now(session, sub), sub.address, _last_digest_sent(session, sub))


def _row(session: Session, list_id: int, address: str, kind: str) -> Subscription | None:
    """The address's row of kind (the digest, or every post) on the list."""
    return session.scalars(
        select(Subscription).where(
            Subscription.list_id == list_id,
            Subscription.address == address,
            Subscription.kind == kind,
            Subscription.thread_key == 0,
        )
    ).first()


def _mailed_now(session: Session, sub: Subscription | None) -> Subscription | None:
    """The row a digest's failure counts against: its digest row, or, when that ended by a
    switch to every post, the every-post row while it has not ended. Her mailbox is mailed
    there now (the digest of the day of the switch too): its failures must be able to suspend
    that mail. A digest mailed before the switch went out before that row started: recorded,
    not scored, as for any copy sent before its subscription last started."""
    if (
        sub is None
        or sub.kind != SubscriptionKind.DIGEST
        or sub.status != SubscriptionState.ENDED
        or sub.end_reason != SWITCHED_TO_LIST
    ):
        return sub
    listed = _row(session, sub.list_id, sub.address, SubscriptionKind.LIST)
    if listed is None or listed.status == SubscriptionState.ENDED:
        return sub
    return listed


def _last_digest_sent(session: Session, sub: Subscription) -> datetime | None:
    """The latest a digest named by the subscription's token (mailed before digest copies were
    named) can have gone out, so a report of one is known to be about the mailbox as it was
    before a later (re)start (None: none known).

    Such tokens stopped before digests were claimed (digests_sent.claimed_at, migration 0022):
    the digest went out at the latest with the newest digest sent to the address without a
    claim, and in any case before the first one claimed. A digest of a subscription started
    again since (claimed) does not make an old token's report about the new subscription."""
    mine = (DigestSent.list_id == sub.list_id, DigestSent.address == sub.address)
    unclaimed = session.scalar(
        select(func.max(DigestSent.sent_at)).where(
            *mine, DigestSent.sent_at.is_not(None), DigestSent.claimed_at.is_(None)
        )
    )
    if unclaimed is not None:
        return unclaimed
    return session.scalar(select(func.min(DigestSent.claimed_at)).where(*mine))


def _before_return(sent: datetime | None, sub: Subscription) -> bool:
    """True when the copy went out before sub was last (re)started: its late or repeated reports
    are about the mailbox as it was then, and must not suspend a fresh subscription again."""
    return sub.confirmed_at is not None and sent is not None and sent < sub.confirmed_at
