"""Our threading against notmuch's, run here (Debian's notmuch): cases written from the RFCs, and
real mail.

notmuch does no subject fallback, so it is off for the comparisons. Where the RFCs let a
mail name several parents or list References parent-first, we choose the nearest archived
one and notmuch may not: those cases assert our answer and say where notmuch differs.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.support import notmuch
from tests.support.corpora import linux_man
from tests.support.services import require

D = "Mon, 2 Mar 2026 {:02d}:00:00 +0000"


def _mail(case: str, n: int, subject: str, irt: str = "", refs: str = "") -> bytes:
    """Message n of a case: ids look like <n.case@rfc.test>,
    '{k}' in headers names message k of the case.
    """
    ids = lambda text: text.replace("{", "<").replace("}", f".{case}@rfc.test>")  # noqa: E731
    head = (
        f"From: p{n}@example.org\r\nDate: {D.format(n)}\r\nSubject: {subject}\r\n"
        f"Message-ID: <{n}.{case}@rfc.test>\r\n"
    )
    head += f"In-Reply-To: {ids(irt)}\r\n" if irt else ""
    head += f"References: {ids(refs)}\r\n" if refs else ""
    return (head + f"\r\nmessage {n} of {case}\r\n").encode()


# (case, its mails by number, our parent of each message
# by number, does notmuch agree on every parent)
CASES: list[tuple[str, list[tuple[str, str, str] | None], dict[int, int | None], bool]] = [
    # RFC 5322 appendix A.2: a reply and a reply to the
    # reply, with both fields as the RFC fills them.
    (
        "a2",
        [
            ("Saying Hello", "", ""),
            ("Re: Saying Hello", "{1}", "{1}"),
            ("Re: Saying Hello", "{2}", "{1} {2}"),
        ],
        {1: None, 2: 1, 3: 2},
        True,
    ),
    # RFC 5322 3.6.4: In-Reply-To only, References only (RFC 1036 netnews), and both.
    (
        "irt-only",
        [("Plan", "", ""), ("Re: Plan", "{1}", ""), ("Re: Plan", "{2}", "")],
        {1: None, 2: 1, 3: 2},
        True,
    ),
    (
        "refs-only",
        [("Plan", "", ""), ("Re: Plan", "", "{1}"), ("Re: Plan", "", "{1} {2}")],
        {1: None, 2: 1, 3: 2},
        True,
    ),
    # RFC 5322 4.5.4 obs-in-reply-to: phrases beside the id ("Your message of ...").
    (
        "obs-phrase",
        [("Plan", "", ""), ("Re: Plan", 'Your message of "Mon, 2 Mar 2026" {1}', "")],
        {1: None, 2: 1},
        True,
    ),
    # A reply whose parent never arrived: the grandparent is the nearest archived ancestor.
    (
        "missing-middle",
        [("Plan", "", ""), None, ("Re: Plan", "{2}", "{1} {2}")],
        {1: None, 3: 1},
        True,
    ),
    # Replies arriving before what they answer.
    (
        "reversed",
        [("Plan", "", ""), ("Re: Plan", "{1}", "{1}"), ("Re: Plan", "{2}", "{1} {2}")],
        {1: None, 2: 1, 3: 2},
        True,
    ),
    # Clients that trim References to the first and the last ids.
    (
        "trimmed",
        [
            ("Plan", "", ""),
            ("Re: Plan", "{1}", "{1}"),
            ("Re: Plan", "{2}", "{1} {2}"),
            ("Re: Plan", "{3}", "{1} {3}"),
        ],
        {1: None, 2: 1, 3: 2, 4: 3},
        True,
    ),
    # notmuch's own test: In-Reply-To holds no id at all, References is used.
    ("broken-irt", [("one", "", ""), ("Re: one", "mumble", "{1}")], {1: None, 2: 1}, True),
    # A message naming itself.
    ("self", [("Plan", "", ""), ("Re: Plan", "{2} {1}", "{1} {2}")], {1: None, 2: 1}, True),
    # RFC 5322 3.6.4: a reply to several parents lists them
    # all in In-Reply-To; the nearest (3 names 2) wins.
    (
        "two-parents",
        [
            ("Plan", "", ""),
            ("Re: Plan", "{1}", "{1}"),
            ("Re: Plan", "{2}", "{1} {2}"),
            ("Re: Plan", "{2} {3}", "{1}"),
        ],
        {1: None, 2: 1, 3: 2, 4: 3},
        False,
    ),
    # gmane / nmh / Lotus Notes: References with the parent first, no In-Reply-To.
    (
        "parent-first",
        [
            ("Plan", "", ""),
            ("Re: Plan", "", "{1}"),
            ("Re: Plan", "", "{2} {1}"),
            ("Re: Plan", "", "{3} {2} {1}"),
        ],
        {1: None, 2: 1, 3: 2, 4: 3},
        False,
    ),
]


@pytest.fixture(scope="module")
def notmuch_installed() -> None:
    """notmuch from Debian (.ci/run installs it)."""
    if shutil.which("notmuch") is None:
        require("notmuch", "not installed (apt-get install notmuch)")


def test_rfc_cases_thread_as_the_rfcs_say_and_agree_with_notmuch(
    notmuch_installed: None, tmp_path: Path
) -> None:
    mails = []
    for case, specs, _, _ in CASES:  # specs by number; "reversed" arrives last first
        numbered = list(enumerate(specs, 1))
        mails += [
            _mail(case, n, *spec)
            for n, spec in (numbered[::-1] if case == "reversed" else numbered)
            if spec
        ]
    ours, our_groups, theirs, their_groups = notmuch.threadings(mails, tmp_path, fallback_days=0)
    for case, _, want, notmuch_agrees in CASES:

        def name(n: int, case: str = case) -> str:
            return f"{n}.{case}@rfc.test"

        expected = {name(n): None if p is None else name(p) for n, p in want.items()}
        assert {m: ours[m] for m in expected} == expected, case
        held = set(expected)
        assert [g & held for g in our_groups if g & held] == [held], f"{case}: one thread"
        assert [g & held for g in their_groups if g & held] == [held], (
            f"{case}: notmuch also has one thread"
        )
        if notmuch_agrees:
            assert {m: theirs[m] for m in expected} == expected, (
                f"{case}: notmuch threads it the same"
            )
        else:
            assert {m: theirs[m] for m in expected} != expected, (
                f"{case}: notmuch now agrees: move it up"
            )


@pytest.mark.long(26)
def test_a_linux_man_slice_threads_as_notmuch_threads_it(
    notmuch_installed: None, tmp_path: Path
) -> None:
    """The first 2,000 messages of linux-man (real mail: odd clients,
    missing parents); whole-archive figures in docs/benchmarks.md.
    """
    mails = list(linux_man(2000))
    figures = notmuch.both(mails, tmp_path, fallback_days=0)
    assert figures.messages >= 1990 and figures.parents_checked >= 1990
    assert figures.parent_rate >= 0.995 and figures.thread_rate >= 0.995, (
        figures.line(),
        figures.differences[:10],
    )
