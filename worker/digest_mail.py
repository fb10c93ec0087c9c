"""A digest as mail: MIME (multipart/digest, the default) or RFC 1153 plain text.

The table of contents links each post's archive page and carries a reply link per post
(mailto: with In-Reply-To, References and its subject), so an answer lands in that thread.
"""

from __future__ import annotations

import email
import email.policy
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.message import Message as StdMessage
from email.mime.message import MIMEMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime, formataddr

from listgate import plurals
from listgate.digests import Period
from listgate.mail import mime
from listgate.models import Message
from listgate.replies import reply_mailto
from listgate.states import DigestFormat
from worker.headers import ListInfo, archived_at, list_headers
from worker.longlines import fit_lines

SEPARATOR_70, SEPARATOR_30 = "-" * 70, "-" * 30  # RFC 1153
PLAIN_POLICY = email.policy.SMTP.clone(max_line_length=998)  # long reply links stay on one line


@dataclass(frozen=True)
class Entry:
    """One post of a digest, detached from the database session."""

    message_id: str
    thread_id: int
    thread_subject: str
    subject: str
    author: str
    date: datetime
    references: str
    body_text: str
    raw: bytes
    edited: bool = False  # a web post its author has edited since: body_text is how it reads now

    @classmethod
    def of(cls, msg: Message, thread_subject: str, raw: bytes) -> Entry:
        """An entry from an archived post."""
        return cls(
            msg.message_id,
            msg.thread_id,
            thread_subject or msg.subject,
            msg.subject,
            formataddr((msg.from_name, msg.from_addr)) if msg.from_name else msg.from_addr,
            msg.date,
            msg.references,
            msg.body_text,
            raw,
            msg.edited_at is not None,
        )

    def mail(self) -> StdMessage:
        """The post as the digest encloses it: as received, or an edited web post (one text part,
        as the archive writes it) with its text as it now reads, its headers kept."""
        msg = mime.message(self.raw)
        if self.edited and not msg.is_multipart():
            del msg["Content-Transfer-Encoding"]
            del msg["Content-Type"]
            msg.set_payload(self.body_text, "utf-8")
        return msg


def table_of_contents(info: ListInfo, period: Period, entries: list[Entry]) -> str:
    """The plain-text table of contents, by thread: each post's archive page and reply link."""
    by_thread: OrderedDict[int, list[tuple[int, Entry]]] = OrderedDict()
    for number, entry in enumerate(entries, 1):
        by_thread.setdefault(entry.thread_id, []).append((number, entry))
    lines = [
        f"{info.title or info.name} digest, {period.label}: "
        f"{plurals.count(len(entries), 'message')} in "
        f"{plurals.count(len(by_thread), 'thread')}",
        "",
        "Topics:",
        "",
    ]
    for items in by_thread.values():
        first = items[0][1]
        lines.append(
            f"* {first.thread_subject or '(no subject)'} ({plurals.count(len(items), 'message')})"
        )
        for number, e in items:
            lines += [
                f"  {number:3d}. {e.subject or '(no subject)'} - {e.author}",
                f"       Read:  {archived_at(info, e.message_id)}",
                f"       Reply: "
                f"{reply_mailto(info.address, e.subject, e.message_id, e.references)}",
            ]
        lines.append("")
    lines += [
        "To answer one post, use its Reply link: your answer then lands in that thread.",
        f"Archive: {info.base_url}/lists/{info.name}/",
        "",
    ]
    return "\n".join(lines)


def _headers(
    info: ListInfo, subject: str, message_id: str, to: str, unsubscribe_url: str
) -> list[tuple[str, str]]:
    items = [
        ("From", formataddr((info.title or info.name, info.address))),
        ("To", to),
        ("Subject", subject),
        ("Date", format_datetime(datetime.now(UTC))),
        ("Message-ID", f"<{message_id}>"),
    ]
    items += [
        (k, v.replace("\r\n", ""))
        for k, v in list_headers(info, message_id, unsubscribe_url, None)
        if k != "Archived-At"
    ]
    return items + [("Auto-Submitted", "auto-generated")]


def build(
    info: ListInfo,
    period: Period,
    entries: list[Entry],
    *,
    to: str,
    subject: str,
    message_id: str,
    unsubscribe_url: str,
    fmt: str = DigestFormat.MIME,
) -> bytes:
    """The digest one subscriber gets, in their format."""
    toc = table_of_contents(info, period, entries)
    if fmt == DigestFormat.PLAIN:
        plain = EmailMessage(policy=PLAIN_POLICY)
        plain.set_content(plain_body(info, period, entries, toc))
        msg: EmailMessage | MIMEMultipart = plain
    else:
        msg = MIMEMultipart("digest")
        msg.attach(MIMEText(toc, "plain", "utf-8"))
        for entry in entries:
            msg.attach(MIMEMessage(entry.mail()))
    for name, value in _headers(info, subject, message_id, to, unsubscribe_url):
        msg[name] = value
    # A post with a line over 998 bytes would get the whole digest refused: such a part is
    # re-encoded.
    return fit_lines(msg.as_bytes())


def plain_body(info: ListInfo, period: Period, entries: list[Entry], toc: str) -> str:
    """RFC 1153: the table of contents, then each post's main headers and text, with separators."""
    parts = [toc, SEPARATOR_70, ""]
    for entry in entries:
        text = "\n".join(
            "- " + line if line == SEPARATOR_30 else line
            for line in entry.body_text.rstrip().splitlines()
        )
        parts += [
            f"Date: {format_datetime(entry.date)}",
            f"From: {entry.author}",
            f"Subject: {entry.subject}",
            f"Message-ID: <{entry.message_id}>",
            "",
            text,
            "",
            SEPARATOR_30,
            "",
        ]
    end = f"End of {info.title or info.name} Digest, {period.label}"
    return "\n".join(parts + [end, "*" * len(end), ""])
