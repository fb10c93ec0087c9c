"""Random mail forests for the order-independence property, and the forest they must thread to.

A case is a set of mails (loops, duplicates, variants differing in body or in threading
headers, missing middles, several ids in In-Reply-To, References shuffled or parent-first,
junk tokens, header-less replies, dates spread past the subject window) and several arrival
orders. The expected forest is computed here from the whole set at once (no incremental
state), with the same parent rule (forest.choose_parent) the archive uses, so the test checks
the incremental machinery; of the copies of one Message-ID, the one with the earliest Date
(then the smallest sha256 of its bytes) places that id.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from listgate import threads
from listgate.addresses import Recipient
from listgate.batches import Item, ingest_batch
from listgate.db import transaction
from listgate.forest import choose_parent, thread_keys
from listgate.ingest import ingest
from listgate.lists import create, require
from listgate.mail.message import ParsedMessage
from listgate.mail.parser import parse
from listgate.mail.subjects import is_reply_subject, normalize_subject
from listgate.models import MailingList, Message, MessageVariant, Thread
from listgate.states import PostState
from tests.support import roots

T0 = datetime(2026, 1, 1, tzinfo=UTC)
Forest = tuple[set[frozenset[str]], dict[str, str | None]]


@dataclass(frozen=True)
class Case:
    """Raw mails (a mail may come twice, or in two versions) and arrival orders over them."""

    mails: tuple[bytes, ...]
    orders: tuple[tuple[int, ...], ...]


def _mail(mid: str, subject: str, hours: int, irt: str, refs: str, body: str) -> bytes:
    date = (T0 + timedelta(hours=hours)).strftime("%a, %d %b %Y %H:%M:%S +0000")
    head = (
        f"From: someone@forest.test\r\nSubject: {subject}\r\nDate: {date}\r\n"
        f"Message-ID: <{mid}>\r\n"
    )
    head += f"In-Reply-To: {irt}\r\n" if irt else ""
    head += f"References: {refs}\r\n" if refs else ""
    return (head + f"\r\n{body}\r\n").encode()


@st.composite
def cases(draw: st.DrawFn) -> Case:
    """A random forest of 2-10 mails as clients and
    gateways really write them, and three arrival orders.
    """
    n = draw(st.integers(2, 10))
    ids = [f"m{i}@forest.test" for i in range(n)]
    parent = [None] + [draw(st.one_of(st.none(), st.integers(0, i - 1))) for i in range(1, n)]
    topic = [draw(st.sampled_from(["Alpha", "Beta"])) for _ in range(n)]
    mails: list[bytes] = []
    hours: list[int] = []
    for i in range(n):
        chain = _chain(ids, parent, parent[i])
        p = parent[i]
        if p is not None:
            topic[i] = topic[p]  # a reply keeps its thread's subject
        irt, refs = _headers(draw, chain, ids, i)
        subject = ("Re: " if parent[i] is not None or draw(st.booleans()) else "") + topic[i]
        # replies may be dated before their parent (clock skew)
        hours.append(draw(st.integers(0, 24 * 45)))
        mails.append(_mail(ids[i], subject, hours[i], irt, refs, f"body {i}"))
    missing = draw(st.sets(st.integers(0, n - 1), max_size=n // 3))
    arrivals = [i for i in range(n) if i not in missing]
    for i in draw(st.sets(st.sampled_from(arrivals), max_size=3)):
        kind = draw(st.sampled_from(["same bytes", "other body", "other headers"]))
        if kind == "same bytes":
            arrivals.append(i)
            continue
        for copy in range(draw(st.integers(1, 2))):  # other bytes with the same Message-ID
            if kind == "other body":
                mails.append(mails[i].replace(b"\r\nbody ", f"\r\ncopy {copy} of body ".encode()))
            else:
                mails.append(_other_headers(draw, ids, parent, i, hours[i], copy))
            arrivals.append(len(mails) - 1)
    orders = tuple(tuple(draw(st.permutations(arrivals))) for _ in range(3))
    # some ids come from a stranger: held for moderation on arrival, threaded all the same
    held = {f"Message-ID: <{ids[i]}>".encode() for i in draw(st.sets(st.integers(0, n - 1)))}
    return Case(tuple(_from_stranger(m) if _id_line(m) in held else m for m in mails), orders)


STRANGER = "stranger@forest.test"


def _id_line(raw: bytes) -> bytes:
    return next(line for line in raw.split(b"\r\n") if line.startswith(b"Message-ID: "))


def _from_stranger(raw: bytes) -> bytes:
    return raw.replace(b"From: someone@forest.test", f"From: {STRANGER}".encode(), 1)


def _origin(parsed: ParsedMessage) -> str:
    """A stranger's mail arrives by SMTP (the moderated list holds it), the rest is imported."""
    return "smtp" if parsed.from_addr == STRANGER else "import"


def _chain(ids: list[str], parent: list[int | None], p: int | None) -> list[str]:
    """The ids from the root down to p (p last), as References lists them."""
    chain: list[str] = []
    while p is not None:
        chain.insert(0, ids[p])
        p = parent[p]
    return chain


def _other_headers(
    draw: st.DrawFn, ids: list[str], parent: list[int | None], i: int, hours: int, copy: int
) -> bytes:
    """A variant of mail i that threads differently: another
    parent (any mail, so loops too), subject or Date.
    """
    other = draw(st.one_of(st.none(), st.integers(0, len(ids) - 1)))
    chain = [x for x in _chain(ids, parent, other) if x != ids[i]]
    irt, refs = _headers(draw, chain, ids, i)
    subject = draw(st.sampled_from(["Alpha", "Beta", "Re: Alpha", "Re: Beta"]))
    # the same Date: the bytes decide
    when = draw(st.one_of(st.just(hours), st.integers(0, 24 * 45)))
    return _mail(ids[i], subject, when, irt, refs, f"copy {copy} of body {i}, sent again")


def _headers(draw: st.DrawFn, chain: list[str], ids: list[str], i: int) -> tuple[str, str]:
    """(In-Reply-To, References) in one of the shapes real mail has."""
    style = draw(
        st.sampled_from(
            [
                "full",
                "irt-only",
                "refs-only",
                "shuffled",
                "parent-first",
                "multi-irt",
                "none",
                "junk",
                "loop",
                "trimmed",
            ]
        )
    )
    brackets = lambda xs: " ".join(f"<{x}>" for x in xs)  # noqa: E731
    last = chain[-1:]
    if style == "none" or (not chain and style not in ("loop", "junk")):
        return "", ""
    if style == "irt-only":
        return brackets(last), ""
    if style == "refs-only":
        return "", brackets(chain)
    if style == "shuffled":
        return "", brackets(draw(st.permutations(chain)))
    if style == "parent-first":
        return brackets(last), brackets(list(reversed(chain)))
    if style == "multi-irt":
        extra = draw(st.sampled_from([*chain, "lost@elsewhere.test"]))
        pair = draw(st.permutations(list(dict.fromkeys([extra, *last]))))
        return " ".join(f"<{x}> (message from someone)" for x in pair), brackets(chain[:1])
    if style == "junk":
        return "<yes>", "<a@b> " + brackets(chain) + " <no-at-sign>"
    if style == "loop":  # names a later message too: a loop when that one descends from this
        later = draw(st.integers(i, len(ids) - 1))
        return brackets(last), brackets([*chain, ids[later]])
    return brackets(last), brackets(list(dict.fromkeys(chain[:1] + chain[-2:])))  # trimmed


def expected(mails: list[bytes], days: int) -> Forest:
    """The forest of a set of mails computed from the whole set at once."""
    by: dict[str, ParsedMessage] = {}
    for raw in sorted(set(mails), key=lambda r: (parse(r).date, hashlib.sha256(r).hexdigest())):
        p = parse(raw)
        # the copy with the earliest Date (then smallest sha256) places an id
        by.setdefault(p.message_id, p)
    ids = sorted(by)
    pk = {m: n for n, m in enumerate(ids)}
    named = {m: thread_keys(m, by[m].in_reply_to, by[m].references).named for m in ids}
    declared = {pk[m]: {k for k, _ in named[m]} for m in ids}
    key = {m: (by[m].date, m) for m in ids}
    pref: dict[str, str | None] = {}
    subject_link: set[str] = set()
    for m in ids:
        chosen, _ = choose_parent(named[m], pk, declared)
        pref[m] = None if chosen is None else ids[chosen]
        sn = normalize_subject(by[m].subject)
        if not named[m] and days > 0 and sn and is_reply_subject(by[m].subject):
            subject_link.add(m)
            earlier = [
                s
                for s in ids
                if s != m
                and normalize_subject(by[s].subject) == sn
                and key[s] < key[m]
                and by[s].date >= by[m].date - timedelta(days=days)
                and m not in declared[pk[s]]
            ]
            pref[m] = max(earlier, key=key.__getitem__, default=None)
    return _groups(ids, named, pref, subject_link), _cut_loops(ids, pref, key)


def _cut_loops(ids: list[str], pref: dict[str, str | None], key: dict) -> dict[str, str | None]:
    parents = dict(pref)
    done: set[str] = set()
    for start in ids:
        path: list[str] = []
        m: str | None = start
        while m is not None and m not in done and m not in path:
            path.append(m)
            m = pref[m]
        if m is not None and m in path:
            loop = path[path.index(m) :]
            parents[min(loop, key=key.__getitem__)] = None
        done.update(path)
    return parents


def _groups(ids: list[str], named: dict, pref: dict, subject_link: set[str]) -> set[frozenset[str]]:
    root: dict[str, str] = {}

    def find(x: str) -> str:
        while root.setdefault(x, x) != x:
            x = root[x]
        return x

    for m in ids:
        for k, _ in named[m]:
            root[find(k)] = find(m)
        if m in subject_link and pref[m] is not None:
            root[find(pref[m])] = find(m)
    out: dict[str, set[str]] = {}
    for m in ids:
        out.setdefault(find(m), set()).add(m)
    return {frozenset(g) for g in out.values()}


def archive(
    db: sessionmaker[Session],
    name: str,
    mails: list[bytes],
    days: int,
    one_transaction: bool,
    batch: int = 0,
) -> Forest:
    """Post mails into a new list (one transaction each, all in one, or batches of `batch` the
    way the archiver and `listgate import` do) and read its forest back."""
    with transaction(db) as s:
        create(s, name, policy="moderated", moderators="someone@forest.test")
    if batch:
        for start in range(0, len(mails), batch):
            with transaction(db) as s:
                parsed = [parse(raw) for raw in mails[start : start + batch]]
                items = [Item(p, (Recipient(name),), _origin(p)) for p in parsed]
                results = ingest_batch(s, items, domain="lists.test", fallback_days=days)
                assert not [r for r in results if isinstance(r, Exception)], results
    elif one_transaction:
        with transaction(db) as s:
            for raw in mails:
                ingest(
                    s,
                    (p := parse(raw)),
                    require(s, name),
                    domain="lists.test",
                    origin=_origin(p),
                    fallback_days=days,
                )
    else:
        for raw in mails:
            with transaction(db) as s:
                ingest(
                    s,
                    (p := parse(raw)),
                    require(s, name),
                    domain="lists.test",
                    origin=_origin(p),
                    fallback_days=days,
                )
    return read_forest(db, name)


def read_forest(db: sessionmaker[Session], name: str) -> Forest:
    """(thread groups, parent of each message) of a list (held posts included), after checking
    its counts and roots agree with its rows."""
    with db() as s:
        mlist = require(s, name)
        rows = s.execute(
            select(
                Message.id, Message.message_id, Message.parent_id, Message.thread_id, Message.status
            ).where(Message.list_id == mlist.id)
        ).all()
        by_pk = {r.id: r.message_id for r in rows}
        groups: dict[int, set[str]] = {}
        shown: Counter[int] = Counter()
        for r in rows:
            live = threads.resolve(s, r.thread_id)
            assert live is not None
            groups.setdefault(live.id, set()).add(r.message_id)
            shown[live.id] += r.status == PostState.VISIBLE
        assert mlist.message_count == shown.total(), "list counts"
        assert mlist.thread_count == sum(1 for n in shown.values() if n), "list counts"
        for tid in groups:
            t = s.get_one(Thread, tid)
            assert t.message_count == shown[tid], "thread counts"
            # pages find a thread's start by the thread's key: its root is one of its messages
            root = s.get(Message, t.root_message_pk or 0)  # no root: roots.problems says so
            assert root is None or root.thread_id == tid, "root in another thread"
        # each start is a published message of its own; merged-away threads name no root
        assert not (broken := roots.problems(s, mlist.id)), broken
        return {frozenset(g) for g in groups.values()}, {
            r.message_id: by_pk.get(r.parent_id) for r in rows
        }


def variant_count(db: sessionmaker[Session], name: str) -> int:
    """How many variants a list keeps."""
    with db() as s:
        return len(
            s.scalars(
                select(MessageVariant.id)
                .join(Message)
                .join(MailingList)
                .where(MailingList.name == name)
            ).all()
        )


def distinct_variants(mails: list[bytes]) -> int:
    """How many mails have a Message-ID seen before with other bytes (counted once per version)."""
    seen: Counter[str] = Counter(parse(raw).message_id for raw in set(mails))
    return sum(n - 1 for n in seen.values())


def check(db: sessionmaker[Session], case: Case, tag: str) -> None:
    """Every arrival order (one transaction per mail, one for all, or batches through
    ingest_batch) threads to the expected forest, fallback on and off.
    """
    for days in (0, 30):
        want = expected([case.mails[i] for i in case.orders[0]], days)
        for k, order in enumerate(case.orders):
            mails = [case.mails[i] for i in order]
            name = f"{tag}-{days}-{k}"
            got = archive(db, name, mails, days, one_transaction=k == 1, batch=4 * (k == 2))
            assert got == want, f"order {k} (fallback {days} days) differs"
            assert variant_count(db, name) == distinct_variants(mails)
