"""Threading: nearest archived ancestor, placeholders, merges with redirects, subject fallback."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from listgate import threads
from listgate.db import make_engine, session_factory, transaction, writer
from listgate.ingest import ingest
from listgate.lists import require
from listgate.mail.parser import parse
from listgate.models import MailingList, Message, MessageVariant, Thread
from listgate.schema import upgrade
from tests.support import forests
from tests.support.config import make_settings
from tests.support.factories import MakeList
from tests.support.searches import TIMEOUT, settings_for

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def raw(
    mid: str,
    refs: str = "",
    irt: str = "",
    subject: str = "Topic",
    when: datetime = T0,
    frm: str = "ann@example.org",
) -> bytes:
    """A message with the given threading headers (verbatim)."""
    head = (
        f"From: {frm}\r\nSubject: {subject}\r\n"
        f"Date: {when.strftime('%a, %d %b %Y %H:%M:%S +0000')}\r\n"
    )
    if mid:
        head += f"Message-ID: {mid if '<' in mid or not mid else '<' + mid + '>'}\r\n"
    if refs:
        head += f"References: {refs}\r\n"
    if irt:
        head += f"In-Reply-To: {irt}\r\n"
    return (head + "\r\nbody\r\n").encode()


def _resolved(session: Session, thread_id: int) -> Thread:
    """The live thread thread_id is (or was merged into); an AssertionError when there is none."""
    thread = threads.resolve(session, thread_id)
    assert thread is not None, f"thread {thread_id} resolves to nothing"
    return thread


class Archive:
    """Post into one list and read the forest back."""

    def __init__(
        self, db: sessionmaker[Session], name: str = "dev", fallback_days: int = 30
    ) -> None:
        self.db, self.name, self.fallback_days = db, name, fallback_days

    def post(self, data: bytes) -> None:
        with transaction(self.db) as s:
            ingest(
                s,
                parse(data),
                require(s, self.name),
                domain="lists.test",
                origin="import",
                fallback_days=self.fallback_days,
            )

    def parents(self) -> dict[str, str | None]:
        """message_id -> parent's message_id."""
        with self.db() as s:
            rows = s.scalars(
                select(Message).join(MailingList).where(MailingList.name == self.name)
            ).all()
            by_pk = {m.id: m.message_id for m in rows}
            return {m.message_id: by_pk.get(m.parent_id) if m.parent_id else None for m in rows}

    def groups(self) -> set[frozenset[str]]:
        """The messages of each live thread."""
        with self.db() as s:
            rows = s.execute(
                select(Message.message_id, Message.thread_id)
                .join(MailingList)
                .where(MailingList.name == self.name)
            ).all()
            out: dict[int, set[str]] = {}
            for mid, tid in rows:
                out.setdefault(_resolved(s, tid).id, set()).add(mid)
            return {frozenset(v) for v in out.values()}

    def thread_of(self, mid: str) -> Thread:
        with self.db() as s:
            tid = s.scalar(
                select(Message.thread_id)
                .join(MailingList)
                .where(MailingList.name == self.name, Message.message_id == mid)
            )
            assert tid is not None, f"{mid} is not archived"
            return _resolved(s, tid)

    def mlist(self) -> MailingList:
        with self.db() as s:
            return require(s, self.name)


@pytest.fixture
def arc(db: sessionmaker[Session], make_list: MakeList) -> Archive:
    make_list("dev")
    return Archive(db)


def test_replies_in_order_form_a_tree(arc: Archive) -> None:
    arc.post(raw("a@x.test"))
    arc.post(raw("b@x.test", refs="<a@x.test>", irt="<a@x.test>", subject="Re: Topic"))
    arc.post(raw("c@x.test", refs="<a@x.test> <b@x.test>", irt="<b@x.test>", subject="Re: Topic"))
    arc.post(raw("d@x.test", refs="<a@x.test>", irt="<a@x.test>", subject="Re: Topic"))
    assert arc.parents() == {
        "a@x.test": None,
        "b@x.test": "a@x.test",
        "c@x.test": "b@x.test",
        "d@x.test": "a@x.test",
    }
    assert arc.groups() == {frozenset({"a@x.test", "b@x.test", "c@x.test", "d@x.test"})}
    t = arc.thread_of("c@x.test")
    assert (t.message_count, t.participant_count, t.subject) == (4, 1, "Topic")
    assert arc.mlist().thread_count == 1 and arc.mlist().message_count == 4


def test_a_reply_before_its_parent_is_adopted_when_the_parent_arrives(arc: Archive) -> None:
    arc.post(raw("c@x.test", refs="<a@x.test> <b@x.test>", subject="Re: Topic"))
    arc.post(raw("a@x.test"))
    assert arc.parents() == {
        "a@x.test": None,
        "c@x.test": "a@x.test",
    }  # the missing b is a placeholder
    assert arc.groups() == {frozenset({"a@x.test", "c@x.test"})}
    # the missing middle takes its place
    arc.post(raw("b@x.test", refs="<a@x.test>", subject="Re: Topic"))
    assert arc.parents() == {"a@x.test": None, "b@x.test": "a@x.test", "c@x.test": "b@x.test"}
    t = arc.thread_of("a@x.test")
    assert t.root_message_pk is not None and t.message_count == 3 and t.subject == "Topic"
    assert arc.mlist().thread_count == 1


def test_two_threads_linked_by_a_message_merge_and_the_absorbed_one_redirects(arc: Archive) -> None:
    arc.post(raw("x1@x.test", subject="First"))
    arc.post(raw("x2@x.test", refs="<x1@x.test>", subject="Re: First"))
    arc.post(raw("y1@x.test", refs="<missing@x.test>", subject="Second"))
    absorbed = arc.thread_of("y1@x.test").id
    assert arc.mlist().thread_count == 2
    arc.post(raw("z@x.test", refs="<x1@x.test> <missing@x.test>", subject="Re: both"))
    assert arc.groups() == {frozenset({"x1@x.test", "x2@x.test", "y1@x.test", "z@x.test"})}
    with arc.db() as s:
        old = s.get_one(Thread, absorbed)
        survivor = _resolved(s, absorbed)
        assert old.merged_into_id == survivor.id != absorbed and old.message_count == 0
        assert survivor.message_count == 4
    assert arc.mlist().thread_count == 1
    # the placeholder arriving later keeps everything in the one thread
    arc.post(raw("missing@x.test", refs="<x1@x.test>", subject="Re: First"))
    assert (
        arc.parents()["y1@x.test"] == "missing@x.test"
        and arc.parents()["missing@x.test"] == "x1@x.test"
    )
    assert len(arc.groups()) == 1 and arc.mlist().thread_count == 1


def test_redirects_follow_merge_chains(arc: Archive) -> None:
    arc.post(raw("p@x.test", refs="<hole1@x.test>"))
    arc.post(raw("q@x.test", refs="<hole2@x.test>"))
    arc.post(raw("r@x.test", refs="<hole3@x.test>"))
    ids = [arc.thread_of(m).id for m in ("p@x.test", "q@x.test", "r@x.test")]
    arc.post(raw("s@x.test", refs="<hole1@x.test> <hole2@x.test>"))
    arc.post(raw("t@x.test", refs="<hole2@x.test> <hole3@x.test>"))
    with arc.db() as s:
        assert len({_resolved(s, i).id for i in ids}) == 1
        assert threads.resolve(s, 10_000) is None


def test_loops_and_self_references_never_make_a_cycle(arc: Archive) -> None:
    arc.post(raw("self@x.test", refs="<self@x.test>", irt="<self@x.test>"))
    arc.post(raw("l1@x.test", refs="<l2@x.test>"))
    arc.post(raw("l2@x.test", refs="<l1@x.test>"))
    arc.post(raw("l3@x.test", refs="<l1@x.test> <l2@x.test> <l3@x.test>"))
    parents = arc.parents()
    assert parents["self@x.test"] is None
    for start in parents:  # every parent walk ends at a root
        seen: set[str] = set()
        cur: str | None = start
        while cur is not None:
            assert cur not in seen, f"cycle through {cur}"
            seen.add(cur)
            cur = parents[cur]
    assert {
        frozenset({"l1@x.test", "l2@x.test", "l3@x.test"}),
        frozenset({"self@x.test"}),
    } == arc.groups()


@pytest.mark.parametrize(
    "refs,irt",
    [
        ("<a@x.test>\r\n\t<b@x.test>", ""),  # folded
        ("<a@x.test> (the original)  <b@x.test> (a reply)", ""),  # comments
        ("a@x.test b@x.test", ""),  # no brackets
        (
            "",
            "<a@x.test> <b@x.test>",
        ),  # several ids in In-Reply-To: the nearest (b names a) is the parent
        (
            "<a@x.test> garbage <not an id> <> <b@x.test>",
            "<b@x.test> (Ann's message of Monday)",
        ),  # junk
        ("<a@x.test>\r\n <b\r\n @x.test>", "<b@x.test>"),  # an id folded in the middle
    ],
)
def test_odd_reference_headers_still_find_the_parent(arc: Archive, refs: str, irt: str) -> None:
    arc.post(raw("a@x.test"))
    arc.post(raw("b@x.test", refs="<a@x.test>", subject="Re: Topic"))
    arc.post(raw("c@x.test", refs=refs, irt=irt, subject="Re: Topic"))
    assert arc.parents()["c@x.test"] == "b@x.test"
    assert len(arc.groups()) == 1


@pytest.mark.parametrize(
    "subject",
    [
        "Re: Hello world",
        "RE: Hello world",
        "Aw: Hello world",
        "Sv: Hello world",
        "Antw: Hello world",
        "Réf: Hello world",
        "[dev] Re: Hello world",
        "Re: [dev] Re: Re: hello   WORLD",
        "Re[2]: Hello world",
    ],
)
def test_subject_fallback_joins_a_recent_thread(arc: Archive, subject: str) -> None:
    arc.post(raw("orig@x.test", subject="Hello world"))
    arc.post(raw("web@x.test", subject=subject, when=T0 + timedelta(days=3)))
    assert arc.groups() == {frozenset({"orig@x.test", "web@x.test"})}
    assert arc.parents()["web@x.test"] == "orig@x.test"


def test_subject_fallback_is_bounded_and_can_be_turned_off(
    db: sessionmaker[Session], make_list: MakeList
) -> None:
    make_list("dev")
    make_list("off")
    on, off = Archive(db, "dev"), Archive(db, "off", fallback_days=0)
    for a in (on, off):
        a.post(raw(f"orig-{a.name}@x", subject="Hello"))
        a.post(raw(f"old-{a.name}@x.test", subject="Re: Hello", when=T0 + timedelta(days=45)))
        # not a reply: new thread
        a.post(raw(f"plain-{a.name}@x.test", subject="Hello", when=T0 + timedelta(days=1)))
    assert len(on.groups()) == 3 and len(off.groups()) == 3
    # joins the 45-day one
    on.post(raw("soon-dev@x.test", subject="Re: Hello", when=T0 + timedelta(days=50)))
    off.post(raw("soon-off@x.test", subject="Re: Hello", when=T0 + timedelta(days=50)))
    assert frozenset({"old-dev@x.test", "soon-dev@x.test"}) in on.groups()
    assert len(off.groups()) == 4


def test_an_original_arriving_after_its_subject_only_reply_adopts_it(arc: Archive) -> None:
    arc.post(raw("reply@x.test", subject="Re: Late original", when=T0 + timedelta(hours=2)))
    arc.post(raw("orig@x.test", subject="Late original", when=T0))
    assert arc.groups() == {frozenset({"orig@x.test", "reply@x.test"})}
    assert arc.parents()["reply@x.test"] == "orig@x.test"
    assert arc.thread_of("reply@x.test").subject == "Late original"
    assert arc.mlist().thread_count == 1


def test_threads_are_per_list(db: sessionmaker[Session], make_list: MakeList) -> None:
    make_list("dev")
    make_list("ops")
    dev, ops = Archive(db, "dev"), Archive(db, "ops")
    dev.post(raw("a@x.test"))
    ops.post(raw("b@x.test", refs="<a@x.test>"))
    assert ops.parents() == {"b@x.test": None}
    dev.post(raw("b@x.test", refs="<a@x.test>"))
    assert dev.parents() == {"a@x.test": None, "b@x.test": "a@x.test"}


# --- order independence -----------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sessionmaker[Session]]:
    """One database for every hypothesis example; each example uses fresh lists."""
    engine = make_engine(make_settings(tmp_path_factory.mktemp("threads")))
    upgrade(engine)
    yield session_factory(writer(engine))
    engine.dispose()


_example = [0]


@pytest.mark.long(48)
@pytest.mark.timeout(TIMEOUT)  # room for hypothesis to shrink a failure (up to 5 min)
@settings_for(examples=30)
@given(case=forests.cases())
def test_the_forest_does_not_depend_on_arrival_order(
    shared_db: sessionmaker[Session], case: forests.Case
) -> None:
    """Loops, duplicates, missing middles, multi-id
    In-Reply-To, shuffled References: any order, one forest.
    """
    _example[0] += 1
    forests.check(shared_db, case, f"p{_example[0]}")


def test_a_message_rolled_back_in_a_savepoint_leaves_the_thread_counts_right(arc: Archive) -> None:
    arc.post(raw("sp1@x.test"))
    with transaction(arc.db) as s:
        mlist = require(s, arc.name)
        ingest(
            s,
            parse(
                raw("sp2@x.test", refs="<sp1@x.test>", subject="Re: Topic", frm="bob@example.org")
            ),
            mlist,
            domain="lists.test",
            origin="import",
        )

        def store_two_then_fail() -> None:
            with s.begin_nested():
                ingest(
                    s,
                    parse(
                        raw(
                            "sp3@x.test",
                            refs="<sp1@x.test>",
                            subject="Re: Topic",
                            frm="cy@example.org",
                        )
                    ),
                    mlist,
                    domain="lists.test",
                    origin="import",
                )
                ingest(
                    s,
                    parse(raw("sp4@x.test", subject="Another")),
                    mlist,
                    domain="lists.test",
                    origin="import",
                )
                raise RuntimeError("this message could not be stored")

        with pytest.raises(RuntimeError, match="this message could not be stored"):
            store_two_then_fail()
        ingest(
            s,
            parse(
                raw("sp5@x.test", refs="<sp1@x.test>", subject="Re: Topic", frm="dee@example.org")
            ),
            mlist,
            domain="lists.test",
            origin="import",
        )
    t = arc.thread_of("sp1@x.test")
    assert (t.message_count, t.participant_count) == (3, 3)
    assert arc.groups() == {frozenset({"sp1@x.test", "sp2@x.test", "sp5@x.test"})}
    assert arc.mlist().message_count == 3 and arc.mlist().thread_count == 1


# --- round 2: every id, any order, loops and variants by content ---------------------------------


def test_every_in_reply_to_id_is_used_when_the_first_is_unknown(arc: Archive) -> None:
    arc.post(raw("a@x.test"))
    arc.post(raw("b@x.test", irt="<a@x.test>", subject="Re: Topic"))
    arc.post(
        raw(
            "c@x.test",
            irt="<never-arrived@x.test> <b@x.test> (message from Ann)",
            subject="Re: Topic",
        )
    )
    assert arc.parents()["c@x.test"] == "b@x.test" and len(arc.groups()) == 1


@pytest.mark.parametrize(
    "refs",
    [
        "<c@x.test> <b@x.test> <a@x.test>",
        "<b@x.test> <c@x.test> <a@x.test>",
        "<a@x.test> <c@x.test> <b@x.test>",
    ],
)
def test_the_deepest_archived_reference_wins_whatever_the_list_order(
    arc: Archive, refs: str
) -> None:
    """gmane, nmh and Lotus Notes list the parent first:
    the reference whose own ids include the others wins.
    """
    arc.post(raw("a@x.test"))
    arc.post(raw("b@x.test", refs="<a@x.test>", subject="Re: Topic"))
    arc.post(raw("c@x.test", refs="<a@x.test> <b@x.test>", subject="Re: Topic"))
    arc.post(raw("d@x.test", refs=refs, subject="Re: Topic"))
    assert arc.parents()["d@x.test"] == "c@x.test"


def test_list_order_decides_only_when_no_reference_is_deeper(arc: Archive) -> None:
    arc.post(raw("p@x.test"))
    arc.post(raw("q@x.test"))
    arc.post(raw("r@x.test", refs="<q@x.test> <p@x.test>", subject="Re: Topic"))
    assert arc.parents()["r@x.test"] == "p@x.test" and len(arc.groups()) == 1


@pytest.mark.parametrize("first", ["early", "late"])
def test_a_loop_is_cut_above_its_earliest_message_in_any_arrival_order(
    arc: Archive, first: str
) -> None:
    early = raw("early@x.test", refs="<late@x.test>", when=T0)
    late = raw("late@x.test", refs="<early@x.test>", when=T0 + timedelta(hours=1))
    for data in (early, late) if first == "early" else (late, early):
        arc.post(data)
    assert arc.parents() == {"early@x.test": None, "late@x.test": "early@x.test"}
    assert arc.thread_of("late@x.test").root_message_pk is not None
    assert arc.thread_of("late@x.test").subject == "Topic"


def test_a_loop_opened_by_a_later_message_gets_its_cut_edge_back(arc: Archive) -> None:
    """b and c name each other (cut above b, the
    earlier); c's real parent a arriving opens the loop.
    """
    arc.post(raw("b@x.test", refs="<c@x.test>", when=T0 + timedelta(hours=1)))
    arc.post(
        raw(
            "c@x.test", refs="<a@x.test> <b@x.test>", irt="<b@x.test>", when=T0 + timedelta(hours=2)
        )
    )
    assert arc.parents() == {"b@x.test": None, "c@x.test": "b@x.test"}
    arc.post(raw("a@x.test", when=T0))
    # c still answers b (In-Reply-To), b answers c: a loop again, cut above the earliest, b
    assert arc.parents() == {"a@x.test": None, "b@x.test": None, "c@x.test": "b@x.test"}
    assert arc.groups() == {frozenset({"a@x.test", "b@x.test", "c@x.test"})}


@pytest.mark.parametrize("junk", ["<yes>", "<no>", "<a@b>", "<1234>", "<@x.test>", "<x.test@>"])
def test_junk_reference_tokens_never_join_unrelated_threads(arc: Archive, junk: str) -> None:
    arc.post(raw("one@x.test", subject="First", irt=junk, refs=junk))
    arc.post(raw("two@x.test", subject="Second", irt=junk, refs=junk))
    assert arc.groups() == {frozenset({"one@x.test"}), frozenset({"two@x.test"})}
    with arc.db() as s:  # kept as text
        assert s.scalar(
            select(Message.in_reply_to).where(Message.message_id == "two@x.test")
        ) == junk.strip("<>")


def test_a_subject_reply_moves_under_a_nearer_earlier_message_that_arrives_later(
    arc: Archive,
) -> None:
    arc.post(raw("orig@x.test", subject="Plan", when=T0))
    arc.post(raw("late@x.test", subject="Re: Plan", when=T0 + timedelta(days=2)))
    assert arc.parents()["late@x.test"] == "orig@x.test"
    arc.post(raw("mid@x.test", subject="Re: Plan", when=T0 + timedelta(days=1)))
    assert arc.parents() == {
        "orig@x.test": None,
        "mid@x.test": "orig@x.test",
        "late@x.test": "mid@x.test",
    }
    assert len(arc.groups()) == 1 and arc.thread_of("late@x.test").message_count == 3


def test_a_header_less_reply_arriving_after_its_own_replies_still_joins_by_subject(
    arc: Archive,
) -> None:
    arc.post(
        raw(
            "answer@x.test",
            refs="<webreply@x.test>",
            subject="Re: Plan",
            when=T0 + timedelta(days=2),
        )
    )
    arc.post(raw("orig@x.test", subject="Plan", when=T0))
    arc.post(raw("webreply@x.test", subject="Re: Plan", when=T0 + timedelta(days=1)))
    assert arc.parents() == {
        "orig@x.test": None,
        "webreply@x.test": "orig@x.test",
        "answer@x.test": "webreply@x.test",
    }
    assert arc.groups() == {frozenset({"orig@x.test", "webreply@x.test", "answer@x.test"})}
    assert arc.mlist().thread_count == 1 and arc.thread_of("answer@x.test").subject == "Plan"


def test_a_second_original_with_the_same_subject_takes_the_later_subject_replies_with_it(
    arc: Archive,
) -> None:
    """The re-hang splits the old thread: the reply and its own answers move; counts follow."""
    arc.post(raw("first@x.test", subject="Weekly call", when=T0, frm="ann@example.org"))
    arc.post(
        raw(
            "reply@x.test",
            subject="Re: Weekly call",
            when=T0 + timedelta(days=8),
            frm="bob@example.org",
        )
    )
    arc.post(
        raw(
            "answer@x.test",
            refs="<reply@x.test>",
            subject="Re: Weekly call",
            when=T0 + timedelta(days=9),
            frm="cy@example.org",
        )
    )
    assert len(arc.groups()) == 1 and arc.thread_of("first@x.test").message_count == 3
    arc.post(
        raw(
            "second@x.test",
            subject="Weekly call",
            when=T0 + timedelta(days=7),
            frm="dee@example.org",
        )
    )
    assert arc.groups() == {
        frozenset({"first@x.test"}),
        frozenset({"second@x.test", "reply@x.test", "answer@x.test"}),
    }
    assert arc.parents()["reply@x.test"] == "second@x.test"
    old, new = arc.thread_of("first@x.test"), arc.thread_of("second@x.test")
    assert (old.message_count, old.participant_count) == (1, 1)
    assert (new.message_count, new.participant_count, new.subject) == (3, 3, "Weekly call")
    assert arc.mlist().thread_count == 2 and arc.mlist().message_count == 4


def test_a_variant_is_kept_beside_the_message_and_the_same_headers_move_nothing(
    arc: Archive,
) -> None:
    arc.post(raw("a@x.test"))
    first = raw("b@x.test", refs="<a@x.test>", subject="Re: Topic")
    arc.post(first)
    arc.post(first)  # the same bytes: a duplicate
    arc.post(first.replace(b"body", b"another body"))
    with arc.db() as s:
        variants = s.scalars(select(MessageVariant)).all()
        assert len(variants) == 1 and variants[0].raw.data == first.replace(
            b"body", b"another body"
        )
    assert arc.parents() == {"a@x.test": None, "b@x.test": "a@x.test"}
    assert arc.thread_of("a@x.test").message_count == 2 and arc.mlist().message_count == 2


@pytest.mark.parametrize(
    "irt,refs,parent",
    [
        (
            "<p@x.test> <q@x.test>",
            "",
            "q@x.test",
        ),  # a reply to two messages, neither naming the other: the last
        (
            "<p@x.test> <q@x.test>",
            "<q@x.test> <p@x.test>",
            "p@x.test",
        ),  # References order settles it
    ],
)
def test_two_unrelated_parents_in_in_reply_to_tie_to_the_one_listed_last(
    arc: Archive, irt: str, refs: str, parent: str
) -> None:
    arc.post(raw("p@x.test", subject="One"))
    arc.post(raw("q@x.test", subject="Two"))
    arc.post(raw("r@x.test", irt=irt, refs=refs, subject="Re: One and Two"))
    assert arc.parents()["r@x.test"] == parent and len(arc.groups()) == 1


def _moved_reply() -> list[bytes]:
    """a and c start two threads; b answers a, and an
    earlier-dated copy of b answers c under another subject.
    """
    return [
        raw("a@x.test"),
        raw("c@x.test", subject="Other"),
        raw("b@x.test", refs="<a@x.test>", subject="Re: Topic", when=T0 + timedelta(hours=2)),
        raw("b@x.test", refs="<c@x.test>", subject="Re: Other", when=T0 + timedelta(hours=1)),
    ]


@pytest.mark.parametrize("order", [(0, 1, 2, 3), (3, 2, 1, 0), (1, 3, 0, 2)])
def test_the_copy_with_the_earliest_date_places_a_message_id_in_any_arrival_order(
    arc: Archive, order: tuple[int, ...]
) -> None:
    mails = _moved_reply()
    for i in order:
        arc.post(mails[i])
    assert arc.parents() == {"a@x.test": None, "c@x.test": None, "b@x.test": "c@x.test"}
    assert arc.groups() == {frozenset({"a@x.test"}), frozenset({"b@x.test", "c@x.test"})}
    assert (arc.thread_of("a@x.test").message_count, arc.thread_of("c@x.test").message_count) == (
        1,
        2,
    )
    assert (arc.mlist().thread_count, arc.mlist().message_count) == (2, 3)
    with (
        arc.db() as s
    ):  # the page shows the copy that arrived first, and the other one as a variant
        shown = s.scalars(select(Message).where(Message.message_id == "b@x.test")).one()
        first = mails[min(2, 3, key=order.index)]
        assert shown.raw.data == first and len(s.scalars(select(MessageVariant)).all()) == 1


def test_a_later_dated_copy_with_other_headers_moves_nothing(arc: Archive) -> None:
    mails = _moved_reply()
    for i in (0, 1, 3):
        arc.post(mails[i])
    arc.post(raw("b@x.test", refs="<a@x.test>", subject="Re: Topic", when=T0 + timedelta(hours=5)))
    assert arc.parents()["b@x.test"] == "c@x.test"
    assert arc.groups() == {frozenset({"a@x.test"}), frozenset({"b@x.test", "c@x.test"})}


def test_a_re_placed_message_takes_its_replies_along_and_its_subject_replies_choose_again(
    arc: Archive,
) -> None:
    mails = _moved_reply()
    for i in (0, 1, 2):
        arc.post(mails[i])
    arc.post(raw("d@x.test", refs="<b@x.test>", subject="Re: Detail", when=T0 + timedelta(hours=3)))
    # no ids: hangs by subject
    arc.post(raw("e@x.test", subject="Re: Topic", when=T0 + timedelta(hours=4)))
    assert arc.parents()["e@x.test"] == "b@x.test"
    assert arc.groups() == {
        frozenset({"a@x.test", "b@x.test", "d@x.test", "e@x.test"}),
        frozenset({"c@x.test"}),
    }
    arc.post(mails[3])
    assert arc.parents() == {
        "a@x.test": None,
        "c@x.test": None,
        "b@x.test": "c@x.test",
        "d@x.test": "b@x.test",
        "e@x.test": "a@x.test",
    }  # b's place now says "Re: Other": e's nearest Topic is a
    assert arc.groups() == {
        frozenset({"a@x.test", "e@x.test"}),
        frozenset({"b@x.test", "c@x.test", "d@x.test"}),
    }
    assert (arc.thread_of("a@x.test").message_count, arc.thread_of("c@x.test").message_count) == (
        2,
        3,
    )
    assert (arc.mlist().thread_count, arc.mlist().message_count) == (2, 5)


def test_place_variants_places_messages_whose_variants_were_kept_before_0010(
    arc: Archive, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from types import SimpleNamespace

    from click.testing import CliRunner

    from listgate import cli

    with (
        monkeypatch.context() as patched
    ):  # the code before 0010: a variant was kept and placed nothing
        patched.setattr(threads, "place_copies", lambda *args: (SimpleNamespace(id=0), False))
        for mail in _moved_reply():
            arc.post(mail)
    assert arc.parents()["b@x.test"] == "a@x.test"
    env = {
        "LISTGATE_DATA_DIR": str(tmp_path / "var"),
        "LISTGATE_SECRET_KEY": "test-secret-key-0123456789",
    }
    for placed in (1, 0):  # a second run finds each message placed by its earliest copy already
        result = CliRunner().invoke(cli.main, ["messages", "place-variants", "--quiet"], env=env)
        assert (
            result.exit_code == 0
            and f"1 message with variants, {placed} placed anew" in result.output
        ), result.output
    assert arc.parents() == {"a@x.test": None, "c@x.test": None, "b@x.test": "c@x.test"}
    assert arc.groups() == {frozenset({"a@x.test"}), frozenset({"b@x.test", "c@x.test"})}
    assert (arc.mlist().thread_count, arc.thread_of("c@x.test").message_count) == (2, 2)
