"""Header values decoded: RFC 2047 words, 8-bit bytes, Message-IDs, addresses."""

from __future__ import annotations

import email.header
import email.utils
import functools
import hashlib
import re

from listgate.mail.fields import Header
from listgate.mail.names import FROM, MESSAGE_ID, SENDER

_ID_IN_BRACKETS = re.compile(r"<([^<>]*)>")
_SPACES = re.compile(r"\s+")
_SURROGATES = re.compile("[\udc80-\udcff]")  # 8-bit header bytes read as surrogateescape


def text_value(value: object) -> str:
    """8-bit header bytes (surrogates) recovered as UTF-8, else Latin-1."""
    text = str(value)
    if not text.isascii() and _SURROGATES.search(text):
        data = text.encode("utf-8", "surrogateescape")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = data.decode("latin-1")
    return text


def decode_header(value: str | None) -> str:
    """Decode RFC 2047 words; unknown or lying charsets fall back instead of failing."""
    if not value:
        return ""
    value = str(value)
    try:
        parts = email.header.decode_header(value)
    except Exception:  # noqa: BLE001 - a malformed encoded word must not lose the header
        return _SPACES.sub(" ", value).strip()
    out = []
    for chunk, charset in parts:
        if isinstance(chunk, str):
            out.append(chunk)
            continue
        for cs in (charset, "utf-8", "latin-1"):
            if not cs:
                continue
            try:
                out.append(chunk.decode(cs))
                break
            except (
                LookupError,
                UnicodeDecodeError,
                ValueError,
            ):  # ValueError: a NUL in the charset name
                continue
    return _SPACES.sub(" ", "".join(out).replace("\x00", "")).strip()


def first_text(fields: tuple[tuple[str, str], ...], name: str) -> str:
    """The first value of a header among fields, decoded, or ''."""
    name = name.lower()
    for key, value in fields:
        if key.lower() == name:
            return decode_header(text_value(value))
    return ""


def header_text(header: Header, name: str) -> str:
    """The first value of the named field, decoded, or ''."""
    value = header.first(name)
    return decode_header(text_value(value)) if value else ""


def addresses(header: Header, name: str) -> list[tuple[str, str]]:
    """(display name, lower-cased address) of each address in the named fields."""
    values = tuple(header.all(name))
    if sum(map(len, values)) > _REMEMBERED:  # a long list is read, not kept
        return list(_read_addresses(values))
    return list(_remembered_addresses(values))


def _read_addresses(values: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    try:
        pairs = email.utils.getaddresses([text_value(v) for v in values])
    except Exception:  # noqa: BLE001 - a broken address list yields no addresses, not a crash
        return ()
    return tuple((decode_header(n), a.strip().lower()) for n, a in pairs if "@" in a)


# The addresses of field values read lately, read once while they are asked often: an archive's
# authors write many messages each (linux-man: 1,465 From values in 17,885 messages), and the
# standard library reads an address list a character at a time (about 0.08 ms a From). At most
# 4,096 values of up to 1,000 characters: a few MB at worst.
_REMEMBERED = 1000
_remembered_addresses = functools.lru_cache(maxsize=4096)(_read_addresses)


def sender(header: Header) -> tuple[str, str]:
    """(display name, address) of the author: From, else Sender."""
    froms = addresses(header, FROM) or addresses(header, SENDER)
    return froms[0] if froms else ("", "")


def extract_msgids(value: str) -> list[str]:
    """Every Message-ID in a header value, in order; tolerant of folding, comments and no
    brackets."""
    if not value:
        return []
    value = value.replace("\x00", "")
    found = [_SPACES.sub("", m) for m in _ID_IN_BRACKETS.findall(value)]
    found = [m for m in found if m and len(m) <= 900]
    if found:
        return found
    # No brackets: take bare tokens that look like addr-specs, ignoring (comments).
    bare = re.sub(r"\([^)]*\)", " ", value)
    return [t.strip("<>,;\"'") for t in bare.split() if "@" in t and len(t) <= 900]


def generated_msgid(raw: bytes) -> str:
    """A deterministic Message-ID for mail that has none: the same bytes give the same id."""
    return f"{hashlib.sha256(raw).hexdigest()[:40]}@generated.listgate.invalid"


def message_id(header: Header, raw: bytes) -> tuple[str, bool]:
    """(the message's Message-ID, generated?): its first Message-ID field's first id, else one made
    from raw."""
    ids = extract_msgids(text_value(header.first(MESSAGE_ID)))
    return (ids[0], False) if ids else (generated_msgid(raw), True)


def reference_chain(
    own: str, references: tuple[str, ...] | list[str], in_reply_to: tuple[str, ...] | list[str]
) -> tuple[str, ...]:
    """The ancestors a message names, oldest first; In-Reply-To's first id is taken as the
    nearest."""
    chain: list[str] = []
    for ref in list(references) + list(in_reply_to[:1]):
        if ref and ref != own:
            if ref in chain:
                chain.remove(ref)
            chain.append(ref)
    return tuple(chain[-200:])  # a bound against junk: 200 ancestors is more than any real thread
