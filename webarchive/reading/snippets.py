"""Scoring and snippets for search hits: scores from word counts, snippets only for the posts shown.

Ranking every match with the engine's own function (FTS5 bm25) costs time in proportion to
how common the words are, so the newest candidates are scored from counts the database
returns, and only the posts a page shows get a highlighted snippet.
"""

from __future__ import annotations

import re

START, STOP = "\x02", "\x03"
SCORE_CHARS = 2_000  # of a body, enough to score it
SNIPPET_CHARS = 200
_SCAN_CHARS = 100_000  # of a body, searched for a passage to show
K1, B = 1.2, 0.75
SUBJECT_WEIGHT, NAME_WEIGHT = 2.0, 0.5


def score(tokens: list[str], subject: str, name: str, body: str, avg_len: float) -> float:
    """A BM25-like relevance of a post for lowercase tokens: counts saturated, length-normalised."""
    subject_l, name_l, body_l = subject.lower(), name.lower(), body.lower()
    norm = K1 * (1 - B + B * len(body_l) / max(avg_len, 1.0))
    total = 0.0
    for token in tokens:
        tf = body_l.count(token)
        total += tf * (K1 + 1) / (tf + norm) if tf else 0.0
        total += SUBJECT_WEIGHT * (token in subject_l) + NAME_WEIGHT * (token in name_l)
    return total


def token_pattern(tokens: list[str], prefix_last: bool) -> re.Pattern[str] | None:
    """A regex finding the tokens as whole words (the last one as a prefix when asked)."""
    if not tokens:
        return None
    parts = [
        re.escape(t) + (r"\w*" if prefix_last and i == len(tokens) - 1 else r"(?!\w)")
        for i, t in enumerate(tokens)
    ]
    return re.compile(r"(?<!\w)(?:" + "|".join(parts) + ")", re.IGNORECASE)


def make_snippet(body: str, pattern: re.Pattern[str] | None, size: int = SNIPPET_CHARS) -> str:
    """About size characters of body around the first match; matches wrapped in START/STOP."""
    text = body[:_SCAN_CHARS]
    first = pattern.search(text) if pattern is not None else None
    if pattern is None or first is None:
        return body[:size]
    begin = _word_start(text, max(0, first.start() - size // 4))
    end = _word_end(text, min(len(text), begin + size))
    out = ["…" if begin > 0 else ""]
    pos = begin
    for found in pattern.finditer(text, begin, end):
        out += [text[pos : found.start()], START, found.group(0), STOP]
        pos = found.end()
    out.append(text[pos:end])
    if end < len(body):
        out.append("…")
    return "".join(out)


def _word_start(text: str, at: int) -> int:
    if at == 0:
        return 0
    space = text.rfind(" ", max(0, at - 20), at)
    return space + 1 if space >= 0 else at


def _word_end(text: str, at: int) -> int:
    if at >= len(text):
        return len(text)
    space = text.find(" ", at, at + 20)
    return space if space >= 0 else at
