"""The copy a subscriber gets: list headers prepended to the original bytes.

Prepending keeps the author's DKIM signature valid (signed headers are picked from the
bottom up, and the body is untouched). Only DMARC mode touches an original header (From).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.header import Header
from email.utils import formataddr
from urllib.parse import quote

from listgate.mail import fields
from listgate.mail.fields import raw_fields
from listgate.mail.names import DKIM_SIGNATURE, LOOP_HEADER, REPLY_TO
from listgate.mail.split import split
from listgate.mail.values import addresses
from listgate.states import ReplyTo


@dataclass(frozen=True)
class ListInfo:
    """What the headers need to know about the list and this site."""

    name: str
    title: str
    domain: str
    base_url: str

    @property
    def address(self) -> str:
        """The posting address."""
        return f"{self.name}@{self.domain}"


def newline_of(raw: bytes) -> bytes:
    """The line ending the message uses (CRLF or LF)."""
    head = raw[:4096]
    return b"\r\n" if b"\r\n" in head else b"\n"


def has_header(raw: bytes, name: str) -> bool:
    """True when the original carries a header of that name."""
    return bool(fields.read(raw).all(name))


def phrase(text: str) -> str:
    """A display phrase, RFC 2047 encoded when it is not ASCII."""
    if text.isascii():
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return Header(text, "utf-8").encode()


def verp_address(info: ListInfo, token: str) -> str:
    """The envelope sender whose bounces come back to us."""
    return f"{info.name}+bounce-{token}@{info.domain}"


def archived_at(info: ListInfo, message_id: str) -> str:
    """The post's permalink (RFC 5064)."""
    return f"{info.base_url}/m/{quote(message_id, safe='')}"


def list_headers(
    info: ListInfo, message_id: str, unsubscribe_url: str, reply_to: str | None
) -> list[tuple[str, str]]:
    """The RFC 2369/2919/5064/8058 headers for one recipient, in order."""
    list_id = f"<{info.name}.{info.domain}>"
    if info.title and info.title != info.name:
        list_id = f"{phrase(info.title)} {list_id}"
    items = [
        ("List-Id", list_id),
        ("List-Post", f"<mailto:{info.address}>"),
        ("List-Archive", f"<{info.base_url}/lists/{info.name}/>"),
        ("List-Help", f"<mailto:{info.name}+help@{info.domain}>"),
        (
            "List-Unsubscribe",
            f"<mailto:{info.name}+unsubscribe@{info.domain}>,\r\n <{unsubscribe_url}>",
        ),
        ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
        ("Archived-At", f"<{archived_at(info, message_id)}>"),
        ("Precedence", "list"),
    ]
    if reply_to:
        items.append(("Reply-To", reply_to))
    items.append((LOOP_HEADER, info.domain))
    return items


def render_headers(items: list[tuple[str, str]], newline: bytes) -> bytes:
    """Header fields as bytes with the message's own line ending."""
    text = "".join(f"{name}: {value}\r\n" for name, value in items)
    return text.encode("ascii", "replace").replace(b"\r\n", newline)


def rewrite_from(raw: bytes, info: ListInfo, author_name: str, author_addr: str) -> bytes:
    """DMARC mode: From becomes '"Name via LIST" <list>'; other headers and the body untouched."""
    head, body = split(raw)
    newline = newline_of(raw)
    display = f"{author_name or author_addr.split('@')[0]} via {info.title or info.name}"
    new_from = (
        f"From: {formataddr((display, info.address), charset='utf-8')}".encode("ascii") + newline
    )
    out: list[bytes] = []
    done = False
    lines = raw_fields(raw)
    for field in lines:
        name = field.split(b":", 1)[0].strip().lower()
        if name == b"from" and not done:
            out.append(new_from)
            done = True
        elif name == b"from":
            continue
        else:
            out.append(field)
    if not done:
        out.insert(0, new_from)
    blank = head[len(b"".join(lines)) :]
    return b"".join(out) + blank + body


def signed_headers(raw: bytes) -> set[str]:
    """The header names the original's DKIM signatures cover (their h= tags), lower-cased."""
    names: set[str] = set()
    for value in fields.read(raw).all(DKIM_SIGNATURE):
        for tag in re.sub(r"\s+", "", value).split(";"):
            if tag.lower().startswith("h="):
                names.update(h.lower() for h in tag[2:].split(":") if h)
    return names


def added_reply_to(
    raw: bytes,
    info: ListInfo,
    policy: str,
    author_addr: str,
    author_name: str = "",
    dmarc: bool = False,
) -> str | None:
    """The Reply-To the list's policy adds ("none", "list", "author"), or None.

    Never when the original has one (the author's own is kept: a second would make the message
    invalid). Without DMARC, never when the author's DKIM signature covers Reply-To (h= names it
    even when absent: adding one breaks it). With the DMARC From rewrite the author is always in
    it (From is the list's, so a reply must still find the author), and the list too under
    "list"; h= does not matter then, the rewritten From already broke that signature.
    """
    if has_header(raw, REPLY_TO):
        return None
    if dmarc:
        author = formataddr((author_name, author_addr), charset="utf-8") if author_addr else ""
        return (
            ", ".join(a for a in (author, info.address if policy == ReplyTo.LIST else "") if a)
            or None
        )
    if policy not in (ReplyTo.LIST, ReplyTo.AUTHOR) or "reply-to" in signed_headers(raw):
        return None
    if policy == ReplyTo.AUTHOR:
        return author_addr or None
    return info.address


def build_copy(
    raw: bytes,
    info: ListInfo,
    message_id: str,
    unsubscribe_url: str,
    dmarc: bool = False,
    author_name: str = "",
    author_addr: str = "",
    reply_to: str = ReplyTo.NONE,
) -> bytes:
    """The bytes one recipient gets: list headers on top of the untouched original.

    In DMARC mode the From is rewritten.
    """
    newline = newline_of(raw)
    if dmarc:
        raw = rewrite_from(raw, info, author_name, author_addr)
    added = added_reply_to(raw, info, reply_to, author_addr, author_name, dmarc)
    return render_headers(list_headers(info, message_id, unsubscribe_url, added), newline) + raw


def addresses_in(raw: bytes, *names: str) -> set[str]:
    """Lower-cased addresses in the named headers of the original."""
    header = fields.read(raw)
    return {addr for name in names for _, addr in addresses(header, name)}
