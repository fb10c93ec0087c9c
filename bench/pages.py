"""Pages over real HTTP (gunicorn), p50/p99 at concurrency 1 and 8, against public-inbox-httpd."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, urlencode

from bench.archive import Archive
from bench.common import Context, NotAvailable, Row, fmt_ms, verdict
from bench.http_load import HttpResult, fetch, load
from bench.import_rate import Imported, linux_man_archive, linux_man_peer
from bench.peer import start_httpd
from bench.procs import start_web

log = logging.getLogger(__name__)
NAME = "pages"
CONCURRENCY = (1, 8)
SEARCH_GOAL_1M = 0.050
MAP_GOAL = 0.050  # the map pages' p50 on linux-man
MSGID_SAFE = "@!$&'()*+,;=:~"


@dataclass
class Page:
    """One kind of page: our path and, where it has one, public-inbox's."""

    kind: str
    ours: str
    theirs: str | None


@dataclass
class Facts:
    """What the URLs are built from, read from our archive's database."""

    thread_id: int
    thread_size: int
    thread_root: str
    permalink: str
    month: tuple[int, int]
    author: str
    page_n: int
    cursor: str
    cursor_time: datetime


def _q(sql: str, archive: Archive) -> list[tuple]:
    from sqlalchemy import text

    engine = archive.engine()
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql))]
    finally:
        engine.dispose()


def facts(archive: Archive, want_page: int = 500, page_size: int = 50) -> Facts:
    """The largest thread, a permalink, the busiest month, the top author, a deep list page."""
    tid, size, root = _q(
        "SELECT t.id, t.message_count, m.message_id FROM threads t JOIN messages m "
        "ON m.id = t.root_message_pk WHERE t.merged_into_id IS NULL "
        "ORDER BY t.message_count DESC, t.id LIMIT 1",
        archive,
    )[0]
    n = _q("SELECT count(*) FROM messages", archive)[0][0]
    permalink = _q(f"SELECT message_id FROM messages ORDER BY id LIMIT 1 OFFSET {n // 2}", archive)[
        0
    ][0]
    month = _q(
        "SELECT strftime('%Y', date), strftime('%m', date), count(*) FROM messages "
        "GROUP BY 1, 2 ORDER BY 3 DESC LIMIT 1",
        archive,
    )[0]
    author = _q(
        "SELECT from_addr, count(*) FROM messages GROUP BY 1 ORDER BY 2 DESC LIMIT 1", archive
    )[0][0]
    threads = _q(
        "SELECT count(*) FROM threads WHERE merged_into_id IS NULL AND message_count > 0", archive
    )[0][0]
    page_n = max(2, min(want_page, (threads + page_size - 1) // page_size))
    when, pk = _q(
        f"SELECT last_activity, id FROM threads WHERE merged_into_id IS NULL AND message_count > 0 "
        f"ORDER BY last_activity DESC, id DESC LIMIT 1 OFFSET {(page_n - 1) * page_size - 1}",
        archive,
    )[0]
    when = datetime.fromisoformat(str(when)).replace(tzinfo=UTC)
    cursor = f"{round(when.timestamp() * 1_000_000)}_{pk}"
    return Facts(
        tid, size, root, permalink, (int(month[0]), int(month[1])), author, page_n, cursor, when
    )


def pages(f: Facts, list_name: str, words: str, inbox: str | None) -> list[Page]:
    """Every kind of page, ours and public-inbox's (None where it has no counterpart)."""
    ln, root = f"/lists/{list_name}", quote(f.thread_root, safe=MSGID_SAFE)
    pi = f"/{inbox}" if inbox else None
    y, m = f.month
    nxt = (y + (m == 12), m % 12 + 1)

    def their(path: str) -> str | None:
        return f"{pi}{path}" if pi else None

    word = words.split()[0]
    return [
        Page("home", "/", "/" if pi else None),
        Page("list page 1", f"{ln}/", their("/")),
        Page(
            f"list page {f.page_n}",
            f"{ln}/?after={f.cursor}",
            their(f"/?t={f.cursor_time:%Y%m%d%H%M%S}"),
        ),
        Page("month page", f"{ln}/{y}/{m}", their(f"/?q=d:{y}{m:02d}01..{nxt[0]}{nxt[1]:02d}01")),
        Page(
            f"largest thread ({f.thread_size} msgs), flat",
            f"/threads/{f.thread_id}?view=flat",
            their(f"/{root}/T/"),
        ),
        Page(
            f"largest thread ({f.thread_size} msgs), tree",
            f"/threads/{f.thread_id}",
            their(f"/{root}/t/"),
        ),
        Page(
            "message permalink",
            f"/m/{quote(f.permalink, safe=MSGID_SAFE)}",
            their(f"/{quote(f.permalink, safe=MSGID_SAFE)}/"),
        ),
        Page(
            f"search '{words}'",
            "/search?" + urlencode({"q": words, "list": list_name}),
            their("/?" + urlencode({"q": words})),
        ),
        Page(
            "author search",
            "/search?" + urlencode({"q": word, "author": f.author, "list": list_name}),
            their("/?" + urlencode({"q": f"f:{f.author} {word}"})),
        ),
        Page("list Atom feed", f"{ln}/feed.atom", their("/new.atom")),
        Page("thread mbox", f"/threads/{f.thread_id}.mbox", their(f"/{root}/t.mbox.gz")),
        Page(f"thread map ({f.thread_size} msgs)", f"/threads/{f.thread_id}/map", None),
        Page("list activity", f"{ln}/activity", None),
    ]


def _requests(ctx: Context, concurrency: int) -> int:
    if ctx.memo.get("tiny"):
        return 2 * concurrency
    return (8 if ctx.quick else 60) * max(1, concurrency // 2)


def signed_in_cookie(archive: Archive) -> dict[str, str]:
    """A signed-in reader's session cookie, made with the archive's secret (exports need one)."""
    from webarchive import create_app

    app = create_app(archive.settings)
    serializer = app.session_interface.get_signing_serializer(app)  # type: ignore[attr-defined]
    value = serializer.dumps({"address": "reader@bench.test", "csrf": "bench"})
    return {"Cookie": f"{app.config['SESSION_COOKIE_NAME']}={value}"}


def measure(
    ctx: Context, port: int, path: str, cookie: dict[str, str] | None = None
) -> dict[int, HttpResult]:
    """Warm the page (signing in if it sends us to sign in), then load it at each concurrency."""
    # Exports are counted per client for anonymous readers: measure them signed in, as before
    # they were public.
    headers: dict[str, str] = dict(cookie) if cookie and path.endswith((".mbox", ".eml")) else {}
    status, location = fetch(port, path, headers=headers)
    if status in (302, 303) and "signin" in location and cookie:
        headers = cookie
        status, location = fetch(port, path, headers=headers)
    if status != 200:
        return {c: HttpResult(statuses={status: 1}) for c in CONCURRENCY}
    return {c: load(port, path, c, _requests(ctx, c), headers=headers) for c in CONCURRENCY}


def _cell(res: dict[int, HttpResult]) -> str:
    parts = []
    for c, r in res.items():
        parts.append(
            f"c{c} p50 {fmt_ms(r.p50)} p99 {fmt_ms(r.p99)}"
            if r.latencies
            else f"c{c} {r.problem() or 'no answer'}"
        )
    return "; ".join(parts)


def compare(
    ctx: Context,
    label: str,
    archive: Archive,
    theirs_port: int | None,
    kinds: list[Page],
    search_goal: bool = False,
) -> list[Row]:
    """A row per kind of page; ratio our p50 / their p50 at c1 and c8."""
    rows = []
    try:
        cookie: dict[str, str] | None = signed_in_cookie(archive)
    except Exception as exc:  # noqa: BLE001 - without it only the sign-in-only exports go unmeasured
        log.warning("cannot make a signed-in session: %s", exc)
        cookie = None
    for page in kinds:
        ours = measure(ctx, archive.web_port, page.ours, cookie)
        theirs = measure(ctx, theirs_port, page.theirs) if theirs_port and page.theirs else None
        value, ratio, goal, ok = f"ours {_cell(ours)}", "", "", ""
        note = (
            "ours signed in (exports need it); public-inbox's is gzipped"
            if "mbox" in page.kind
            else ""
        )
        problems = "; ".join(f"ours: {r.problem()}" for r in ours.values() if r.problem())
        if theirs is not None:
            value += f" | public-inbox {_cell(theirs)}"
            problems += "; ".join(
                f"public-inbox: {r.problem()}" for r in theirs.values() if r.problem()
            )
            ratios = [
                ours[c].p50 / theirs[c].p50
                for c in CONCURRENCY
                if ours[c].latencies and theirs[c].latencies
            ]
            if len(ratios) == len(CONCURRENCY):
                ratio, goal = " / ".join(f"{r:.2f}" for r in ratios), "<= 1.0 (c1 / c8)"
                ok = verdict(all(r <= 1.0 for r in ratios))
        if search_goal and page.kind.startswith("search") and ours[1].latencies:
            goal, ok = (
                f"p50 < {SEARCH_GOAL_1M * 1000:.0f} ms",
                verdict(ours[1].p50 < SEARCH_GOAL_1M),
            )
        if (
            not search_goal
            and ("map" in page.kind or "activity" in page.kind)
            and ours[1].latencies
        ):
            goal, ok = f"p50 < {MAP_GOAL * 1000:.0f} ms", verdict(ours[1].p50 < MAP_GOAL)
        rows.append(
            Row(
                NAME,
                f"{label}: {page.kind}",
                value,
                ratio,
                goal,
                ok,
                "; ".join(x for x in (note, problems) if x)[:300],
            )
        )
    return rows


def _linux_man(ctx: Context) -> list[Row]:
    imported: Imported = linux_man_archive(ctx)
    web = start_web(ctx, imported.archive, 2, "web-linux-man")
    try:
        f = facts(imported.archive)
        theirs_port = None
        note = ""
        try:
            peer = linux_man_peer(ctx)
            _proc, theirs_port = start_httpd(ctx, peer)
            inbox = peer.name
        except NotAvailable as exc:
            inbox, note = None, f"public-inbox: {exc}"
        label = f"linux-man ({imported.messages:,} msgs)"
        rows = compare(
            ctx,
            label,
            imported.archive,
            theirs_port,
            pages(f, imported.archive.list_name, "signal handler", inbox),
        )
        if note:
            rows[0].note = (rows[0].note + " " + note).strip()
        return rows
    finally:
        web.stop()


def big(ctx: Context) -> list[Row]:
    """Pages of the big list: the 1M synthetic archive if this run imported one.

    Otherwise the prefilled list.
    """
    from bench.threading_cost import prefilled_archive, sizes

    imported = ctx.memo.get("synthetic-archive-1000000")
    if isinstance(imported, Imported):
        archive, label = imported.archive, f"synthetic ({imported.messages:,} msgs, imported)"
    else:
        n = sizes(ctx)[1]
        archive, label = prefilled_archive(ctx, n), f"prefilled list ({n:,} msgs)"
    web = start_web(ctx, archive, 2, "web-big")
    try:
        f = facts(archive)
        rows = compare(
            ctx,
            label,
            archive,
            None,
            pages(f, archive.list_name, "kernel memory", None),
            search_goal=True,
        )
    finally:
        web.stop()
    if not isinstance(imported, Imported):
        from bench.prefill import PREFILL_VERSION

        what = (
            "both words are in every prefilled message: the worst case for ranking"
            if PREFILL_VERSION == 1
            else "'kernel' and 'memory' are both in about 7% of the prefilled messages"
        )
        for row in rows:
            if "search" in row.case:
                row.note = "; ".join(x for x in (row.note, what) if x)
    return rows


def run(ctx: Context) -> list[Row]:
    """Rows for linux-man, against public-inbox (the big list's pages are bench.big_pages)."""
    return _linux_man(ctx)
