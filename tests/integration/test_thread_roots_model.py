"""Thread roots and dates over time, against a model, on SQLite and PostgreSQL.

Hypothesis draws a forest of posts (several starts, replies naming their whole chain of
ancestors or only their parent, dates a few days either side, members' posts published and a
stranger's held) and then drives random sequences of arrivals (in any order: replies before
their parents open threads that merge when the link arrives), approvals, rejections, hides
after reports and restores. The model predicts after every step which posts share a thread,
each post's parent, each live thread's count, participants (the authors of its visible posts),
start (created_at) and last activity (its visible posts' first and last dates), its root (a
published post without a parent once it has a visible one; exactly which when only one may
start it) with that root's subject and author, and the list's counts and last activity;
tests/support/roots.py's invariants hold throughout.

How long it searches: tests/support/searches.py (more under `make soak`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from listgate import lists, moderation, reports, threads
from listgate.db import make_engine, session_factory, transaction, writer
from listgate.forest import choose_parent
from listgate.ingest import HELD_FOR_MODERATION, STORED, ingest
from listgate.mail.parser import parse
from listgate.models import Message, Thread
from listgate.schema import upgrade
from listgate.states import PostState
from tests.integration.test_thread_roots import T0, mail
from tests.support import roots
from tests.support.config import make_settings
from tests.support.searches import TIMEOUT, settings_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(TIMEOUT)]

# examples of up to 25 steps per run (tests/support/searches.py: 10x under `make soak`)
SQLITE_EXAMPLES = 80
POSTGRESQL_EXAMPLES = 60
MOD, EVE = "Mod <mod@example.org>", "Eve <eve@example.org>"


@dataclass
class Post:
    """One post of the drawn forest and what the model knows of it."""

    msgid: str
    refs: tuple[str, ...]  # References, the start first
    chain: tuple[str, ...]  # every ancestor, the start first
    subject: str
    hours: int  # Date: hours after T0
    member: bool  # a member's post is published at once, a stranger's held
    status: PostState | None = None  # None: not arrived yet
    pk: int = 0
    published: bool = False  # visible once (a start hidden since keeps its place)

    @property
    def date(self) -> datetime:
        return T0 + timedelta(hours=self.hours)


def _has(*states: PostState | None) -> Any:
    """A rule's precondition: some post of the forest is in one of these states."""
    return precondition(lambda self: any(p.status in states for p in self.posts))


class Roots(RuleBasedStateMachine):
    """One moderated list per example; posts of a drawn forest arrive, are moderated, hidden,
    restored."""

    def __init__(self, db: sessionmaker[Session], serial: Iterator[int]) -> None:
        super().__init__()
        self.db = db
        self.name = f"roots{next(serial)}"
        self.posts: list[Post] = []
        with transaction(db) as s:
            lists.create(s, self.name, policy="moderated", moderators="mod@example.org")

    @initialize(data=st.data(), n=st.integers(2, 7))
    def a_forest_is_drawn(self, data: st.DataObject, n: int) -> None:
        for i in range(n):
            up = data.draw(st.integers(-1, i - 1), label=f"parent of {i}")
            self._draw(data, self.posts[up] if up >= 0 else None, None)

    def _draw(self, data: st.DataObject, parent: Post | None, member: bool | None) -> Post:
        """A new post of the forest (not arrived yet), under parent."""
        i = len(self.posts)
        chain = (*parent.chain, parent.msgid) if parent else ()
        whole = data.draw(st.booleans(), label=f"{i} names its whole chain")
        top = self.posts[_index(chain[0])].subject if chain else f"Topic {i}"
        self.posts.append(
            Post(
                msgid=f"p{i}@roots.test",
                refs=chain if whole else chain[-1:],
                chain=chain,
                subject=f"Re: {top}" if chain else top,
                hours=data.draw(st.integers(-72, 72), label=f"{i}'s hours after T0"),
                member=data.draw(st.booleans(), label=f"{i} by a member")
                if member is None
                else member,
            )
        )
        return self.posts[-1]

    def _pick(self, data: st.DataObject, *states: PostState | None) -> Post:
        return data.draw(st.sampled_from([p for p in self.posts if p.status in states]))

    @rule(data=st.data())
    def a_member_replies(self, data: st.DataObject) -> None:
        """A member answers any post of the forest (arrived or not yet: the parent comes later)."""
        self._arrive(self._draw(data, data.draw(st.sampled_from(self.posts)), True))

    @_has(None)
    @rule(data=st.data())
    def a_post_arrives(self, data: st.DataObject) -> None:
        self._arrive(self._pick(data, None))

    def _arrive(self, post: Post) -> None:
        refs = " ".join(f"<{r}>" for r in post.refs)
        raw = mail(post.msgid, post.subject, post.hours, MOD if post.member else EVE, refs=refs)
        with transaction(self.db) as s:
            result = ingest(s, parse(raw), lists.require(s, self.name), domain="lists.test")
        assert result.status == (STORED if post.member else HELD_FOR_MODERATION)
        assert result.message_pk is not None
        post.pk = result.message_pk
        post.status = PostState.VISIBLE if post.member else PostState.HELD
        post.published = post.member

    @_has(PostState.HELD)
    @rule(data=st.data(), approve=st.booleans())
    def a_moderator_decides(self, data: st.DataObject, approve: bool) -> None:
        post = self._pick(data, PostState.HELD)
        with transaction(self.db) as s:
            mlist, msg = lists.require(s, self.name), s.get_one(Message, post.pk)
            if approve:
                moderation.approve(s, mlist, msg, "mod@example.org")
            else:
                moderation.reject(s, mlist, msg, "mod@example.org", "off topic")
        post.status = PostState.VISIBLE if approve else PostState.REJECTED
        post.published |= approve

    @_has(PostState.VISIBLE)
    @rule(data=st.data())
    def a_post_is_hidden_after_reports(self, data: st.DataObject) -> None:
        post = self._pick(data, PostState.VISIBLE)
        with transaction(self.db) as s:
            reports.hide(s, s.get_one(Message, post.pk))
        post.status = PostState.HIDDEN

    @_has(PostState.HIDDEN)
    @rule(data=st.data())
    def a_hidden_post_is_restored(self, data: st.DataObject) -> None:
        post = self._pick(data, PostState.HIDDEN)
        with transaction(self.db) as s:
            reports.restore(s, s.get_one(Message, post.pk))
        post.status = PostState.VISIBLE

    # -- what the model predicts -----------------------------------------------------------------

    def _parent(self, post: Post) -> str | None:
        """The nearest post it names that has arrived (held and rejected posts count), by the
        archive's rule (forest.choose_parent: the one naming most of the others)."""
        here = {p.msgid: n for n, p in enumerate(self.posts) if p.status is not None}
        declared = {n: set(self.posts[n].refs) for n in here.values()}
        pk, _ = choose_parent([(r, 0) for r in post.refs], here, declared)
        return None if pk is None else self.posts[pk].msgid

    def _groups(self) -> set[frozenset[str]]:
        """Posts joined by the ids they name (placeholders too) share a thread."""
        home: dict[str, str] = {}

        def find(x: str) -> str:
            while home.setdefault(x, x) != x:
                x = home[x]
            return x

        for post in self.posts:
            if post.status is not None:
                for ref in post.refs:
                    home[find(ref)] = find(post.msgid)
        out: dict[str, set[str]] = {}
        for post in self.posts:
            if post.status is not None:
                out.setdefault(find(post.msgid), set()).add(post.msgid)
        return {frozenset(g) for g in out.values()}

    @invariant()
    def threads_are_as_predicted(self) -> None:
        arrived = {p.msgid: p for p in self.posts if p.status is not None}
        with self.db() as s:
            mlist = lists.require(s, self.name)
            # the list's threads read once and held: resolve() and get_one() below find them in
            # the session instead of asking the database for each post and thread
            held = s.scalars(select(Thread).where(Thread.list_id == mlist.id)).all()
            assert not (broken := roots.problems(s, mlist.id)), broken
            rows = s.execute(
                select(Message.id, Message.message_id, Message.thread_id, Message.parent_id).where(
                    Message.list_id == mlist.id
                )
            ).all()
            by_pk = {r.id: r.message_id for r in rows}
            assert {r.message_id: by_pk.get(r.parent_id) for r in rows} == {
                m: self._parent(p) for m, p in arrived.items()
            }
            found: dict[int, set[str]] = {}
            for r in rows:
                live = threads.resolve(s, r.thread_id)
                assert live is not None
                found.setdefault(live.id, set()).add(r.message_id)
            assert {frozenset(g) for g in found.values()} == self._groups()
            for thread_id, ids in found.items():
                self._check_thread(s, thread_id, [arrived[m] for m in ids])
            shown = [p for p in arrived.values() if p.status == PostState.VISIBLE]
            assert mlist.message_count == len(shown)
            assert mlist.thread_count == sum(
                any(arrived[m].status == PostState.VISIBLE for m in ids) for ids in found.values()
            )
            assert mlist.last_activity == max((p.date for p in shown), default=None)
            del held

    def _check_thread(self, s: Session, thread_id: int, posts: list[Post]) -> None:
        thread = s.get_one(Thread, thread_id)
        shown = [p for p in posts if p.status == PostState.VISIBLE]
        assert thread.message_count == len(shown)
        # the people with a visible post in it
        assert thread.participant_count == len({p.member for p in shown})
        if not shown:  # not one of the list's threads: nothing of it is shown
            return
        dates = [p.date for p in shown]
        assert (thread.created_at, thread.last_activity) == (min(dates), max(dates))
        # a published post without a parent starts it once one of those is visible; before, any
        # published post may (a reply shown while its start is held, a start hidden since)
        starts = [p for p in posts if p.published and self._parent(p) is None]
        shown_start = any(p.status == PostState.VISIBLE for p in starts)
        may = starts if shown_start else [p for p in posts if p.published]
        root = next(p for p in posts if p.pk == thread.root_message_pk)
        assert root in may, f"root {root.msgid}, may be {[p.msgid for p in may]}"
        assert (thread.subject, thread.starter_name) == (
            root.subject,
            "Mod" if root.member else "Eve",
        )


def _index(msgid: str) -> int:
    return int(msgid[1:].split("@")[0])


def _run(engine: Engine, examples: int) -> None:
    db = session_factory(writer(engine))
    serial = iter(range(10**9))
    try:

        class OnDatabase(Roots):  # hypothesis builds the machine from a class with no arguments
            def __init__(self) -> None:
                super().__init__(db, serial)

        run_state_machine_as_test(OnDatabase, settings=settings_for(examples, steps=25))
    finally:
        engine.dispose()


@pytest.mark.long(81)
def test_model_on_sqlite(tmp_path: Path) -> None:
    engine = make_engine(make_settings(tmp_path))
    upgrade(engine)
    _run(engine, SQLITE_EXAMPLES)


@pytest.mark.long(98)
def test_model_on_postgresql(tmp_path: Path, postgres_db: str) -> None:
    _run(
        make_engine(make_settings(tmp_path, LISTGATE_DATABASE_URL=postgres_db)), POSTGRESQL_EXAMPLES
    )
