"""How much a person may write in each field: one definition each, read by the models, the web
forms (their pattern and their check) and the command line.

A value over its limit is refused with a message naming the field and the limit, never cut:
what a person wrote is stored whole or not at all. Limits count characters (code points), as
Python's len() and PostgreSQL's VARCHAR(n) do; line ends count once ("\\r\\n" as the browser
sends a textarea's is one), as a browser's maxlength counts them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limit:
    """A field as the person knows it, and the characters it may hold."""

    field: str
    chars: int


class TooLong(ValueError):
    """A value over its field's limit; the message names the field and the limit."""


SUBJECT = Limit("subject", 300)  # a web post's subject (Message.subject is TEXT)
BODY = Limit("text", 200_000)  # a web post's text, first written or edited
DISPLAY_NAME = Limit("display name", 100)  # typed on the profile (Person.name holds mail's 255)
REASON = Limit("reason", 2_000)  # a moderator's or a reader's: report, reject, ban, refuse, remove
TITLE = Limit("title", 200)  # a list's title: MailingList.title is VARCHAR(TITLE.chars)
# a list's description (MailingList.description is TEXT): shown whole under the list's name on
# the home page, on the list's page and in /api/lists, so a paragraph or a few (about 300 words),
# not a charter (link to one): at most a few KB per list where every list is shown
DESCRIPTION = Limit("description", 2_000)
# who acted (the command line's --by; on the web, the signed-in address) as AuditEntry.actor,
# Subscription.approved_by and NotPosted.released_by hold it: an address's 320
ACTOR = Limit("by", 320)


def typed(value: str) -> str:
    """A form's value as the person typed it: a browser's CRLF line ends are one character."""
    return value.replace("\r\n", "\n")


def within(limit: Limit, value: str) -> str:
    """value, or TooLong naming the field and its limit: never read or stored in part."""
    if len(value) > limit.chars:
        where = f"{limit.field}: " if limit.field else ""
        raise TooLong(where + excess(limit, value))
    return value


def excess(limit: Limit, value: str) -> str:
    """'too long: at most N characters (this one has M)': TooLong's words, for a sentence that
    names the field itself ("the reason is too long: …")."""
    return f"too long: at most {limit.chars:,} characters (this one has {len(value):,})"


def suggested(limit: Limit, value: str) -> str:
    """A value the site proposes (a reply's "Re: " subject), shortened to fit with a visible "…".

    Only for what the person has not written yet: the form shows it, and they may change it.
    """
    if len(value) <= limit.chars:
        return value
    return value[: limit.chars - 1].rstrip() + "…"


def problem(limit: Limit, value: str) -> str:
    """'' when value is within limit, else what TooLong says (for a form to show)."""
    try:
        within(limit, value)
    except TooLong as exc:
        return str(exc)
    return ""
