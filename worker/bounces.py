"""Bounces: read a DSN (RFC 3464) or a common non-standard bounce, match it, score it.

Matching is by the VERP token in the address the bounce came to, never by guessing from
the text; the recipients found in the text are only recorded for the administrator.
"""

from __future__ import annotations

import email
import json
import email.policy
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.message import Message as StdMessage

from sqlalchemy.orm import Session

from listgate import dispatch
from listgate.config import Settings
from listgate.models import MailingList, OutboxEntry, Subscription
from listgate.models.people import ACTIVE, SUSPENDED

log = logging.getLogger(__name__)

PERMANENT, TRANSIENT, DELAYED, UNKNOWN = "permanent", "transient", "delayed", "unknown"
WEIGHT = {PERMANENT: 1.0, TRANSIENT: 0.5, DELAYED: 0.0, UNKNOWN: 0.0}
FORGET_AFTER = timedelta(days=30)  # a score older than this starts again from zero
_ADDR = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_DAEMON = re.compile(r"^(mailer-daemon|postmaster|mail-daemon|mailer|root|noreply|no-reply)@", re.I)
_ORIGINAL = re.compile(
    r"^\s*(?:-+\s*)?(?:original message|below this line is a copy|the original message|"
    r"message headers follow|unsent message below|returned message|original message follows|"
    r"--- original message|------ this is a copy of the message|received:|return-path:)",
    re.I | re.M,
)
_WARNING = re.compile(
    r"\bdelay(?:ed)?\b|\bwarning\b|will (?:continue to|keep) (?:try|retry|attempt)|will be retried|"
    r"still (?:trying|being retried)|not yet been delivered|has not been delivered yet|no action is required|"
    r"delivery (?:is|has been) delayed",
    re.I,
)
_FATAL = re.compile(
    r"permanent(?:ly)?|given up|giving up|not going to try again|could not be delivered|undeliverable|"
    r"user unknown|unknown user|does not exist|no such (?:user|mailbox|address)|unknown recipient|"
    r"delivery failed|failed (?:permanently|recipient)|unable to deliver|(?<![\d.])5\.\d{1,3}\.\d{1,3}\b|\b55\d\b",
    re.I,
)


@dataclass(frozen=True)
class BounceReport:
    """What a bounce says: its kind, the failed recipients it names, and why."""

    kind: str
    recipients: tuple[str, ...]
    diagnostic: str = ""


def parse_bounce(raw: bytes) -> BounceReport:
    """Classify a bounce; never raises on malformed mail."""
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
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
        kinds, diagnostic = [], ""
        for group in groups[1:] if len(groups) > 1 else groups:
            action = str(group.get("Action", "")).strip().lower()
            status = str(group.get("Status", "")).strip()
            rcpt = str(group.get("Final-Recipient", "") or group.get("Original-Recipient", ""))
            addr = rcpt.split(";", 1)[-1].strip().strip("<>")
            if action.startswith("delayed") or action in ("relayed", "delivered", "expanded"):
                kinds.append(DELAYED if action.startswith("delayed") else UNKNOWN)
                continue
            kind = TRANSIENT if status.startswith("4") else PERMANENT
            kinds.append(kind)
            if addr:
                failed[addr] = kind
            diagnostic = diagnostic or " ".join(str(group.get("Diagnostic-Code", "")).split()) or status
        if not kinds:
            return None
        kind = PERMANENT if PERMANENT in kinds else TRANSIENT if TRANSIENT in kinds else kinds[0]
        return BounceReport(kind, tuple(failed), diagnostic[:500])
    return None


def _report_text(msg: StdMessage) -> str:
    """The human-readable part of a bounce, cut before any quoted original."""
    texts = []
    for part in msg.walk():
        if part.get_content_maintype() == "message":
            break
        if part.get_content_type() in ("text/plain", "text/html") or (not part.is_multipart() and part is msg):
            payload = part.get_payload(decode=True) or b""
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
    for addr in _ADDR.findall(text):
        addr = addr.strip(".").lower()
        if addr not in own and not _DAEMON.match(addr) and addr not in found:
            found.append(addr)
    fatal_subject = _FATAL.search(subject)
    fatal = _FATAL.search(text) or fatal_subject
    if (_WARNING.search(subject) and not fatal_subject) or (_WARNING.search(text) and not fatal):
        return BounceReport(DELAYED, tuple(found), subject[:200])
    if fatal or found:
        line = fatal.group(0) if fatal else subject
        return BounceReport(PERMANENT, tuple(found), line[:200])
    return BounceReport(UNKNOWN, (), subject[:200])


def score(session: Session, settings: Settings, sub: Subscription | None, kind: str) -> list[OutboxEntry]:
    """Add a bounce to a subscription's score; past the limit suspend it and tell the person."""
    if sub is None or WEIGHT.get(kind, 0.0) == 0.0:
        return []
    when = datetime.now(timezone.utc)
    if sub.last_bounce_at is not None and when - sub.last_bounce_at > FORGET_AFTER:
        sub.bounce_score = 0.0
    sub.bounce_score += WEIGHT[kind]
    sub.last_bounce_at = when
    if sub.status != ACTIVE or sub.bounce_score < settings.bounce_score_limit:
        return []
    sub.status = SUSPENDED
    mlist = session.get_one(MailingList, sub.list_id)
    log.warning("suspended %s on %s after bounces (score %.1f)", sub.address, mlist.name, sub.bounce_score)
    return [dispatch.record(session, dispatch.SEND_NOTICE, sub.id, {
        "template": "suspended", "to": sub.address, "list": mlist.name, "score": sub.bounce_score,
    })]


def handle(session: Session, settings: Settings, entry: OutboxEntry, raw: bytes) -> list[OutboxEntry]:
    """A mail to NAME+bounce-TOKEN@: record it against its delivery and score it."""
    from listgate.models import Bounce, Delivery
    from listgate.tokens import read_verp_token

    payload = json.loads(entry.payload or "{}")
    found = read_verp_token(settings.secret_key, str(payload.get("arg", "")))
    if found is None:
        log.info("bounce to an unknown or forged VERP token %r ignored", payload.get("arg"))
        return []
    report = parse_bounce(raw)
    kind, ident = found
    delivery = session.get(Delivery, ident) if kind == "d" else None
    sub_id = delivery.subscription_id if delivery is not None else ident
    sub = session.get(Subscription, sub_id) if sub_id else None
    address = delivery.address if delivery is not None else (sub.address if sub is not None else "")
    session.add(Bounce(delivery_id=delivery.id if delivery else None, subscription_id=sub.id if sub else None,
                       address=address, kind=report.kind, diagnostic=report.diagnostic[:2000]))
    log.info("%s bounce for %s: %s", report.kind, address, report.diagnostic[:120])
    return score(session, settings, sub, report.kind)
