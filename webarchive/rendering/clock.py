"""Times as a reader wants them.

In the reader's chosen zone, with the sender's own clock and "3 days ago".
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from markupsafe import Markup, escape

from webarchive.rendering.bodies import human_date

RECENT = timedelta(days=30)  # posts younger than this also say how long ago
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@lru_cache(maxsize=1)
def zone_names() -> tuple[str, ...]:
    """Every IANA zone name this system knows, sorted."""
    return tuple(sorted(available_timezones()))


@lru_cache(maxsize=512)
def zone(name: str) -> ZoneInfo | None:
    """The zone called name, or None for UTC, an empty or an unknown name."""
    if not name or name == "UTC" or len(name) > 64:
        return None
    try:
        return ZoneInfo(name) if name in zone_names() else None
    except (ZoneInfoNotFoundError, ValueError):
        return None


def offset_text(minutes: int) -> str:
    """A UTC offset as written in mail, e.g. +0100 or -0530."""
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}"


def local(value: datetime, tz: ZoneInfo | None) -> str:
    """value as 'Tue 3 Mar 2026 15:05 CET' in tz (UTC when None)."""
    if tz is None:
        return human_date(value)
    v = value.astimezone(tz)
    return (
        f"{_DAYS[v.weekday()]} {v.day} {_MONTHS[v.month - 1]} {v.year} "
        f"{v.hour:02d}:{v.minute:02d} {v.tzname()}"
    )


def ago(value: datetime, now: datetime) -> str:
    """'5 minutes ago', '3 days ago'; '' for posts older than RECENT (or from the future)."""
    delta = now - value
    if delta < timedelta(0) or delta >= RECENT:
        return ""
    for unit, seconds in (("day", 86400), ("hour", 3600), ("minute", 60)):
        n = int(delta.total_seconds() // seconds)
        if n >= 1:
            return f"{n} {unit}{'' if n == 1 else 's'} ago"
    return "just now"


def sender_clock(value: datetime, offset: int, tz: ZoneInfo | None) -> str:
    """The sender's own time as their Date header gave it, if not what the reader sees."""
    shown = value.astimezone(tz) if tz is not None else value.astimezone(UTC)
    if shown.utcoffset() == timedelta(minutes=offset):
        return ""
    theirs = value.astimezone(timezone(timedelta(minutes=offset)))
    return f"{theirs.hour:02d}:{theirs.minute:02d} {offset_text(offset)}"


def time_html(value: datetime, offset: int, tz: ZoneInfo | None, now: datetime) -> Markup:
    """<time datetime> in the reader's zone, then how long ago and the sender's clock if useful."""
    recent = ago(value, now)
    when, theirs = _stamp(value, offset, tz)
    return Markup(when + (f' <span class="ago">{recent}</span>' if recent else "") + theirs)


@lru_cache(maxsize=65536)
def _stamp(value: datetime, offset: int, tz: ZoneInfo | None) -> tuple[str, str]:
    """The parts of time_html that do not move with the clock (asked for by every thread view)."""
    when = f'<time datetime="{value.astimezone(UTC).isoformat()}">{escape(local(value, tz))}</time>'
    theirs = sender_clock(value, offset, tz)
    extra = f' <span class="their-time">sender\'s time {theirs}</span>' if theirs else ""
    return when, extra
