"""Server-drawn SVG: a thread's reply graph and a list's weekly activity.

No JavaScript, no inline styles.
"""

from __future__ import annotations

import math
from datetime import datetime

from markupsafe import Markup, escape

from webarchive.reading.talk import Graph

MAX_NODES = 40  # more participants are listed in the table only
INK, ACCENT, LIGHT, LINE = "#1d1f21", "#2f5d8a", "#a9c0d6", "#8a8f94"


def _short(name: str, limit: int = 18) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


def graph_svg(graph: Graph, names: list[str], size: int = 520) -> Markup:
    """Participants on a circle (area by posts), joined by lines as thick as their replies."""
    people = graph.people[:MAX_NODES]
    n = len(people)
    centre, ring = size / 2, size / 2 - 90
    most = max((p.posts for p in people), default=1)
    pos: dict[int, tuple[float, float]] = {}
    for i, p in enumerate(people):
        angle = -math.pi / 2 + 2 * math.pi * i / max(n, 1)
        pos[p.key] = (
            (centre, centre)
            if n == 1
            else (centre + ring * math.cos(angle), centre + ring * math.sin(angle))
        )
    edges = [e for e in graph.edges() if e[0] in pos and e[1] in pos]
    heaviest = max((ab + ba for _, _, ab, ba in edges), default=1)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {size} {size}" role="img" '
        f'aria-labelledby="graph-title graph-desc">',
        '<title id="graph-title">Who replied to whom in this thread</title>',
        f'<desc id="graph-desc">{n} participants; circles sized by posts, '
        "lines as thick as the replies between two people. "
        "The same figures are in the table.</desc>",
    ]
    for a, b, ab, ba in edges:
        (x1, y1), (x2, y2) = pos[a], pos[b]
        width = 1 + 7 * (ab + ba) / heaviest
        out.append(
            f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{LINE}" '
            f'stroke-opacity="0.7" stroke-width="{width:.1f}">'
            f"<title>{escape(names[a])} and {escape(names[b])}: "
            f"{ab + ba} repl{'y' if ab + ba == 1 else 'ies'}</title></line>"
        )
    for p in people:
        x, y = pos[p.key]
        r = 5 + 17 * math.sqrt(p.posts / most)
        out.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r:.1f}" fill="{ACCENT}" fill-opacity="0.85">'
            f"<title>{escape(names[p.key])}: {p.posts} post{'' if p.posts == 1 else 's'}</title>"
            "</circle>"
        )
        right = x >= centre - 1
        lx = x + (r + 4 if right else -(r + 4))
        out.append(
            f'<text x="{lx:.1f}" y="{y + 4:.1f}" font-size="13" fill="{INK}" '
            f'text-anchor="{"start" if right else "end"}">{escape(_short(names[p.key]))}</text>'
        )
    out.append("</svg>")
    return Markup("".join(out))


def activity_svg(
    weeks: list[tuple[datetime, int, int]], width: int = 640, height: int = 220
) -> Markup:
    """Posts per week as bars, new threads per week as darker bars inside them."""
    left, bottom, top = 36, 28, 14
    plot_w, plot_h = width - left - 8, height - bottom - top
    most = max((p for _, p, _ in weeks), default=0) or 1
    step = plot_w / max(len(weeks), 1)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
        f'aria-labelledby="act-title act-desc">',
        '<title id="act-title">Posts and new threads per week</title>',
        f'<desc id="act-desc">{len(weeks)} weeks; at most {most} posts in a week. '
        "The numbers are in the table below.</desc>",
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 8}" y2="{top + plot_h}" '
        f'stroke="{LINE}"/>',
        f'<text x="{left - 4}" y="{top + 4}" font-size="11" fill="{INK}" '
        f'text-anchor="end">{most}</text>',
        f'<text x="{left - 4}" y="{top + plot_h}" font-size="11" fill="{INK}" '
        'text-anchor="end">0</text>',
    ]
    for i, (week, posts, threads) in enumerate(weeks):
        x = left + i * step
        for value, colour, inset in ((posts, LIGHT, 0.1), (threads, ACCENT, 0.3)):
            if value:
                h = plot_h * value / most
                out.append(
                    f'<rect x="{x + step * inset:.1f}" y="{top + plot_h - h:.1f}" '
                    f'width="{step * (1 - 2 * inset):.1f}" height="{h:.1f}" fill="{colour}">'
                    f"<title>week of {week:%d %b %Y}: {posts} posts, "
                    f"{threads} new threads</title></rect>"
                )
    for i in sorted({0, len(weeks) // 2, len(weeks) - 1}):
        if 0 <= i < len(weeks):
            anchor = "start" if i == 0 else "end" if i == len(weeks) - 1 else "middle"
            out.append(
                f'<text x="{left + (i + 0.5) * step:.1f}" y="{height - 8}" '
                f'font-size="11" fill="{INK}" '
                f'text-anchor="{anchor}">{weeks[i][0]:%d %b %Y}</text>'
            )
    out.append("</svg>")
    return Markup("".join(out))
