"""How to answer one post by mail: the mailto: link with its subject, In-Reply-To and References."""

from __future__ import annotations

from urllib.parse import quote

from listgate.mail.subjects import is_reply_subject

MAX_REFS = 10  # References kept in a link (mail clients choke on very long mailto: URLs)


def reply_subject(subject: str) -> str:
    """The subject of a reply: 'Re: ' added once."""
    return subject if is_reply_subject(subject) else f"Re: {subject}"


def reply_mailto(list_address: str, subject: str, message_id: str, references: str) -> str:
    """A mailto: link that replies to the post on the list, threaded under it."""
    refs = " ".join(f"<{r}>" for r in (references.split() + [message_id])[-MAX_REFS:])
    return (
        f"mailto:{list_address}?subject={quote(reply_subject(subject), safe='')}"
        f"&In-Reply-To={quote('<' + message_id + '>', safe='')}&References={quote(refs, safe='')}"
    )
