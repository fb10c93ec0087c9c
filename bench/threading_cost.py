"""Threading cost at scale: ingest the same kind of 1,000 posts into a small list and a huge one."""

from __future__ import annotations

import hashlib
import logging
import random
import shutil
import time
from pathlib import Path

from bench.archive import Archive, make_archive
from bench.common import Context, NotAvailable, Row, fmt_ms, median, verdict
from bench.corpora import cache_dir
from bench.prefill import PREFILL_VERSION, prefill, reply_targets
from bench.smtp_load import make_post

log = logging.getLogger(__name__)
NAME = "threading at scale"
GOAL = 1.5


def sizes(ctx: Context) -> tuple[int, int, int]:
    """(small list, big list, posts to ingest)."""
    if ctx.memo.get("tiny"):
        return 50, 500, 20
    return (1_000, 100_000, 200) if ctx.quick else (1_000, 1_000_000, 1_000)


def _schema_key() -> str:
    """A hash of the shipped migrations: a cached archive is reused only with the same schema."""
    from listgate.schema import MIGRATIONS

    digest = hashlib.sha256()
    for path in sorted((MIGRATIONS / "versions").glob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def prefilled_archive(ctx: Context, n: int) -> Archive:
    """An archive whose list holds n messages; built once per schema and kept in the cache."""

    def make() -> Archive:
        archive = make_archive(ctx, f"prefilled-{n}")
        if not archive.settings.is_sqlite:
            prefill(archive, n, progress=n >= 100_000)
            return archive
        db = Path(archive.settings.database_url.split("///", 1)[1])
        cached = cache_dir() / f"prefill-v{PREFILL_VERSION}-{n}-{_schema_key()}.sqlite3"
        if cached.exists():
            for extra in (Path(f"{db}-wal"), Path(f"{db}-shm")):
                extra.unlink(missing_ok=True)
            shutil.copyfile(cached, db)
            return archive
        began = time.monotonic()
        prefill(archive, n, progress=n >= 100_000)
        log.info(
            "prefilled %d messages in %.0fs (cached for next runs)", n, time.monotonic() - began
        )
        archive.checkpoint()
        tmp = cached.with_suffix(".part")
        shutil.copyfile(db, tmp)
        tmp.rename(cached)
        return archive

    return ctx.once(f"prefilled-{n}", make)


def make_posts(prefilled: int, n: int, tag: str, seed: int) -> list[bytes]:
    """n posts: replies to old messages, to each other, new threads, a few with lost parents."""
    rng = random.Random(seed)
    targets = list(reply_targets(prefilled, n, seed))
    posts: list[bytes] = []
    mine: list[str] = []
    for k in range(n):
        roll = rng.random()
        if roll < 0.6:
            parent, chain = targets[k]
            refs = chain
        elif roll < 0.7 and mine:
            parent = rng.choice(mine)
            refs = [parent]
        elif roll < 0.75:
            parent = f"lost{k}.{tag}@elsewhere.example"
            refs = [parent]
        else:
            parent, refs = "", []
        msgid, raw = make_post("bench@bench.test", f"{tag}{k}", 2048, reply_to=parent)
        if refs and len(refs) > 1:
            raw = raw.replace(
                f"References: <{parent}>".encode(),
                ("References: " + " ".join(f"<{r}>" for r in refs)).encode(),
            )
        mine.append(msgid)
        posts.append(raw)
    return posts


def ingest_posts(archive: Archive, posts: list[bytes]) -> list[float]:
    """Parse and ingest each post in its own committed transaction, as the gateway does; seconds."""
    from listgate import lists
    from listgate.db import make_engine, session_factory, transaction, writer
    from listgate.ingest import ingest
    from listgate.mail.parser import parse

    settings = archive.settings
    engine = make_engine(settings)
    factory = session_factory(writer(engine))
    times = []
    try:
        for raw in posts:
            began = time.perf_counter()
            parsed = parse(raw)
            with transaction(factory) as session:
                mlist = lists.require(session, archive.list_name)
                ingest(
                    session,
                    parsed,
                    mlist,
                    domain=settings.domain,
                    origin="smtp",
                    envelope_from="poster@example.org",
                    fallback_days=settings.subject_fallback_days,
                )
            times.append(time.perf_counter() - began)
    finally:
        engine.dispose()
    return times


def run(ctx: Context) -> list[Row]:
    """One row: seconds for the posts on the small and the big list, and their ratio."""
    small_n, big_n, posts_n = sizes(ctx)
    case = f"{posts_n} posts into {small_n:,} vs {big_n:,} messages"
    archives: dict[int, Archive] = {n: prefilled_archive(ctx, n) for n in (small_n, big_n)}
    totals: dict[int, list[float]] = {small_n: [], big_n: []}
    per_post: dict[int, list[float]] = {small_n: [], big_n: []}
    for r in range(ctx.repeats):
        for n in (small_n, big_n):
            times = ingest_posts(archives[n], make_posts(n, posts_n, f"r{r}n{n}", seed=100 + r))
            totals[n].append(sum(times))
            per_post[n].extend(times)
    small, big = median(totals[small_n]), median(totals[big_n])
    if not small:
        raise NotAvailable("no posts were ingested")
    ratio = big / small
    value = (
        f"{small:.1f} s vs {big:.1f} s (p50 per post {fmt_ms(median(per_post[small_n]))} vs "
        f"{fmt_ms(median(per_post[big_n]))})"
    )
    return [
        Row(
            NAME,
            case,
            value,
            f"{ratio:.2f}",
            f"<= {GOAL}x",
            verdict(ratio <= GOAL),
            "in-process parse+ingest+commit per post; big list bulk-prefilled",
        )
    ]
