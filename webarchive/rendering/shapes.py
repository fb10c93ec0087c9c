"""What a body's lines are.

Text, quotes, an earlier mail quoted whole, a signature; prose or fixed-width.

Mail clients quote in three shapes: `>` lines (interleaved or trailing), Outlook's
"-----Original Message-----" or "From: … Sent: …" header block with the earlier mail
under it, and Gmail's trailing "On … wrote:" with `>` lines to the end. The last two
hide a whole earlier mail under a top-posted reply: it becomes one "earlier" block.
Text is then told apart per paragraph: prose reads best in a proportional font, while
patches, indented code and tables aligned with spaces need a fixed-width one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_ORIGINAL = re.compile(
    r"^\s*-{2,}\s*"
    r"(Original Message|Forwarded message|Ursprüngliche Nachricht|Message d'origine)"
    r"\s*-{2,}\s*$",
    re.IGNORECASE,
)
_HEADER_FROM = re.compile(r"^\s*\*?(From|De|Von|Van)\s*:\*?\s+\S", re.IGNORECASE)
_HEADER_NEXT = re.compile(r"^\s*\*?(Sent|Date|Envoyé|Gesendet|To|Subject|Cc)\s*:", re.IGNORECASE)
_ON_WROTE_START = re.compile(r"^(On|Le|Am|El|Il|Op)\s.{4,}", re.IGNORECASE)
_WROTE_END = re.compile(
    r"(wrote|a écrit|schrieb|escribió|ha scritto|schreef)\s*:\s*$", re.IGNORECASE
)
_PATCH_START = re.compile(
    r"^(diff --git |Index: \S|--- a/|--- \S+\t|@@ -\d+(,\d+)? \+\d+(,\d+)? @@)"
)
_TABLE_GAP = re.compile(r"\S {2,}\S|\t")
_ART = re.compile(r"[|+\-=_*#/\\<>^~]{3,}|[\u2500-\u257f]")


@dataclass(frozen=True)
class Block:
    """A run of body lines of one kind: text, quote, earlier (a quoted earlier mail) or sig."""

    kind: str
    lines: tuple[str, ...]


def blocks(text: str) -> list[Block]:
    """Split a body into text, quote, earlier-mail and signature blocks."""
    lines = text.replace("\r\n", "\n").rstrip().split("\n")
    tail_at = _earlier_mail_at(lines)
    head, tail = lines[:tail_at], lines[tail_at:]
    sig_at = len(head)
    for i in range(len(head) - 1, -1, -1):
        if head[i] == "-- " or (head[i] == "--" and len(head) - i <= 15):
            sig_at = i
            break
    result: list[Block] = []
    for line in head[:sig_at]:
        kind = "quote" if line.startswith(">") else "text"
        if result and result[-1].kind == kind:
            result[-1] = Block(kind, result[-1].lines + (line,))
        else:
            result.append(Block(kind, (line,)))
    if sig_at < len(head):
        result.append(Block("sig", tuple(head[sig_at:])))
    if tail:
        result.append(Block("earlier", tuple(tail)))
    return result


def _earlier_mail_at(lines: list[str]) -> int:
    """Where a quoted earlier mail starts (Outlook or Gmail top-posting shapes), or len(lines)."""
    for i, line in enumerate(lines):
        if i == 0:
            continue  # a body that is only a quote is a forward, shown as it is
        if _ORIGINAL.match(line) or (
            line.strip().startswith("_" * 10) and _header_block(lines, i + 1)
        ):
            return i
        if _header_block(lines, i):
            return i
        if _ON_WROTE_START.match(line):
            end = _wrote_line(lines, i)
            if end is not None and _only_quotes_after(lines, end + 1):
                return i
    return len(lines)


def _header_block(lines: list[str], i: int) -> bool:
    """An Outlook header block: "From: …" followed at once by "Sent:"/"Date:"/"To:" lines."""
    if i >= len(lines) or not _HEADER_FROM.match(lines[i]):
        return False
    following = lines[i + 1 : i + 3]
    return (
        len(following) > 0
        and all(_HEADER_NEXT.match(x) for x in following[:1])
        and (i == 0 or not lines[i - 1].startswith(">"))
    )


def _wrote_line(lines: list[str], i: int) -> int | None:
    """The line ending an "On … wrote:" attribution starting at i (wrapped over up to 3 lines)."""
    for j in range(i, min(i + 3, len(lines))):
        if _WROTE_END.search(lines[j]):
            return j
    return None


def _only_quotes_after(lines: list[str], start: int) -> bool:
    """True when what follows is a `>` quote running to the end (blank lines allowed)."""
    rest = [x for x in lines[start:] if x.strip()]
    return len(rest) > 0 and all(x.startswith(">") for x in rest)


def fixed_width(lines: tuple[str, ...] | list[str]) -> bool:
    """Whether a paragraph needs a fixed-width font: a patch, indented code, a table, drawn art."""
    body = [x.lstrip(">").removeprefix(" ") if x.startswith(">") else x for x in lines]
    body = [x for x in body if x.strip()]
    if not body:
        return False
    if any(_PATCH_START.match(x) for x in body):
        return True
    indented = sum(1 for x in body if x.startswith(("    ", "\t")))
    if indented == len(body):
        return True
    aligned = sum(1 for x in body if _TABLE_GAP.search(x.strip()))
    drawn = sum(1 for x in body if _ART.search(x))
    many = max(2, (len(body) + 1) // 2)
    return len(body) >= 2 and (aligned >= many or drawn >= many)


def paragraphs(lines: tuple[str, ...]) -> list[tuple[bool, list[str]]]:
    """Runs of lines as (fixed_width, lines), split at blank lines; a patch runs to the end."""
    runs: list[tuple[bool, list[str]]] = []
    current: list[str] = []
    in_patch = False

    def close() -> None:
        if current:
            mono = in_patch or fixed_width(current)
            if runs and runs[-1][0] == mono:
                runs[-1][1].extend(current)
            else:
                runs.append((mono, list(current)))
            current.clear()

    for line in lines:
        if not in_patch and _PATCH_START.match(line):
            close()
            in_patch = True
        current.append(line)
        if line == "" and not in_patch:
            close()
    close()
    return runs
