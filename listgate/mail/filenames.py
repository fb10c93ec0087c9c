"""The names attachments are archived under: the mail's own, made safe for a file, else one made
from what the part is (an attached message's Subject), the same on every parse of the same mail.
"""

from __future__ import annotations

import functools
import mimetypes
import re
from email.message import Message as StdMessage

from listgate.mail.bodies import mime_headers
from listgate.mail.names import SUBJECT
from listgate.mail.values import decode_header, first_text, text_value

MAX_NAME = 200  # characters, its extension kept
MAX_STEM = 100  # characters of an attached message's Subject in its name
# Path separators and control characters (the browser that saves a file knows its own system's
# other limits); runs of white space, a folded line's included.
_UNSAFE = re.compile(r"[/\\\x00-\x1f\x7f]+")
_SPACES = re.compile(r"\s+")
# Types mail carries unnamed that Python's table does not know (an OpenPGP signature part).
_OWN_EXTENSIONS = {
    "application/pgp-signature": ".asc",
    "application/pgp-keys": ".asc",
    "application/pgp-encrypted": ".asc",
}
# Main types that are read (as body text, or a message's parts), not kept as files when unnamed.
_NOT_FILES = ("text", "message", "multipart")
# The fields whose parameters name a part (Message.get_filename's).
_NAMING_FIELDS = ("content-disposition", "content-type")


def safe_filename(name: str, fallback: str = "attachment") -> str:
    """name as a file name: no path separators or control characters, one line, bounded length
    (its extension kept); fallback when nothing is left."""
    name = _UNSAFE.sub("_", _SPACES.sub(" ", name)).strip(" ._")
    stem, dot, ext = name.rpartition(".")
    if len(name) > MAX_NAME:
        keep = f"{dot}{ext}" if stem and len(ext) <= 16 else ""
        name = name[: MAX_NAME - len(keep)].rstrip(" ._") + keep
    return name or fallback


def unnamed(part: StdMessage, n: int) -> str:
    """The name of the n-th attachment a message leaves unnamed: an attached message's Subject
    and .eml (else message-N.eml), else attachment-N with the extension of its type."""
    ctype = part.get_content_type()
    if ctype in ("message/rfc822", "message/global"):
        payload = part.get_payload()
        inner = payload[0] if isinstance(payload, list) and payload else None
        fields = tuple(inner.raw_items()) if isinstance(inner, StdMessage) else ()
        subject = safe_filename(first_text(fields, SUBJECT), "")[:MAX_STEM].rstrip(" ._")
        return f"{subject or f'message-{n}'}.eml"
    return f"attachment-{n}{_extension(ctype)}"


def may_be_named(part: StdMessage) -> bool:
    """Whether part's fields may give it a name: a name is a Content-Disposition `filename` or a
    Content-Type `name` parameter (RFC 2231's `filename*0*` too), so a part none of whose two
    fields holds "name" has none (most parts: reading their parameters is most of a name's cost).
    """
    return any(
        n.lower() in _NAMING_FIELDS and "name" in str(v).lower() for n, v in part.raw_items()
    )


def given_name(part: StdMessage) -> str | None:
    """The name part's fields give it, RFC 2047 decoded, 8-bit bytes read as UTF-8 (else Latin-1),
    not as U+FFFD as the standard library reads them; None if none, or one that leaves nothing
    once made safe (`filename=""`, "..": no name, as the mail had given none)."""
    if not may_be_named(part):
        return None
    fields = tuple((n, text_value(v)) for n, v in part.raw_items())
    name = mime_headers(fields).get_filename() if fields else None
    return (
        None if name is None or not safe_filename(decode_header(name), "") else decode_header(name)
    )


def is_unnamed_attachment(part: StdMessage, name: str | bool | None = False) -> bool:
    """A part shown as a file though the mail gives it no name (given_name; name: its given_name,
    read already): one marked attachment, RTF, or any file that is not text, a message or a
    multipart and has no Content-ID to be named by (an image sent inline without a name is not
    lost)."""
    if (given_name(part) if name is False else name) is not None:
        return False
    maintype = part.get_content_maintype()
    return (
        part.get_content_disposition() == "attachment"
        or part.get_content_subtype() == "rtf"
        or (maintype not in _NOT_FILES and not part.get("Content-ID"))
    )


@functools.cache
def _types() -> mimetypes.MimeTypes:
    """Python's own table of types and extensions (not the system's: the same on every site)."""
    return mimetypes.MimeTypes()


def _extension(ctype: str) -> str:
    if ctype in _OWN_EXTENSIONS or ctype.endswith("/rtf"):
        return _OWN_EXTENSIONS.get(ctype, ".rtf")
    known = _types().guess_extension(ctype, strict=False)
    return known or (".txt" if ctype.startswith(("text/", "message/")) else ".bin")
