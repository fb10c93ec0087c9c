"""Subjects read for threading: reply and forward prefixes, list tags."""

from __future__ import annotations

import re

_REPLY_PREFIX = re.compile(
    r"^\s*(?:\[[^\]]{0,100}\]\s*)?(?:(?:re|aw|sv|antw|r[ée]f|ref|odp|vs|vl|tr|wg|fwd?|fw)\s*(?:\[\d+\]|\(\d+\))?\s*[:：]\s*(?:\[[^\]]{0,100}\]\s*)?)+",
    re.IGNORECASE,
)
_REPLY_WORD = re.compile(
    r"\b(?:re|aw|sv|antw|r[ée]f|odp|vs)\s*(?:\[\d+\]|\(\d+\))?\s*[:：]", re.IGNORECASE
)
_LIST_TAG = re.compile(r"^\s*\[[^\]]{0,100}\]\s*")
_SPACES = re.compile(r"\s+")


def normalize_subject(subject: str) -> str:
    """The subject without list tags and reply/forward prefixes, whitespace folded, lower case."""
    s = _REPLY_PREFIX.sub("", subject or "")
    s = _LIST_TAG.sub("", s)
    return _SPACES.sub(" ", s).strip().lower()[:255]


def is_reply_subject(subject: str) -> bool:
    """True when the subject carries a reply prefix, possibly after a list tag."""
    m = _REPLY_PREFIX.match(subject or "")
    return bool(m and _REPLY_WORD.search(m.group(0)))
