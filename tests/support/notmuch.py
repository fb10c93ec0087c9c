"""Compare listgate's threading with notmuch's, run on the same mail (Debian's notmuch).

`notmuch new` indexes a Maildir of the mails; `notmuch show --format=json` gives each
thread as trees of replies. Figures: same parent (over messages both archive and whose
notmuch parent we hold too) and same thread (messages whose notmuch thread we hold as
exactly one thread). Run as a script for a whole archive's figures:

    LISTGATE_TEST_CORPORA=../shared/corpora .venv/bin/python -m tests.support.notmuch [LIMIT]
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from sqlalchemy import select

log = logging.getLogger(__name__)
Parents = dict[str, "str | None"]


@dataclass
class Figures:
    """How far two threadings of the same mail agree."""

    parents_checked: int
    same_parent: int
    messages: int
    same_thread: int
    differences: list[tuple[str, str | None, str | None]]  # (message, ours, notmuch's)

    def line(self) -> str:
        """One human line."""
        return (
            f"same parent {self.same_parent}/{self.parents_checked} ({self.parent_rate:.2%}), "
            f"same thread {self.same_thread}/{self.messages} ({self.thread_rate:.2%})"
        )

    @property
    def parent_rate(self) -> float:
        """Share of messages with the same parent."""
        return self.same_parent / max(self.parents_checked, 1)

    @property
    def thread_rate(self) -> float:
        """Share of messages whose thread is the same set of messages."""
        return self.same_thread / max(self.messages, 1)


def notmuch_threads(mails: Iterable[bytes], workdir: Path) -> tuple[Parents, list[set[str]]]:
    """(parent of each Message-ID, thread groups) as notmuch threads these mails."""
    maildir = workdir / "mail"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    for n, raw in enumerate(mails):
        (maildir / "cur" / f"{n:07d}.mail:2,").write_bytes(raw)
    config = workdir / "notmuch-config"
    config.write_text(
        f"[database]\npath={maildir}\n[user]\nname=Test\nprimary_email=test@example.org\n"
        "[new]\ntags=\nignore=\n[search]\nexclude_tags=\n[maildir]\nsynchronize_flags=false\n"
    )
    env = {**os.environ, "NOTMUCH_CONFIG": str(config)}
    subprocess.run(
        ["notmuch", "new", "--quiet"], env=env, check=True, capture_output=True, timeout=3600
    )
    shown = subprocess.run(
        ["notmuch", "show", "--format=json", "--body=false", "--entire-thread=true", "*"],
        env=env,
        check=True,
        capture_output=True,
        timeout=3600,
    ).stdout
    parents: Parents = {}
    groups: list[set[str]] = []
    for thread in json.loads(shown):
        members: set[str] = set()
        for tree in thread:
            _walk(tree, None, parents, members)
        groups.append(members)
    return parents, groups


def _walk(tree: list[Any], parent: str | None, parents: Parents, members: set[str]) -> None:
    """A notmuch reply tree: [message, [subtrees...]]."""
    message, replies = tree
    mid = message["id"]
    parents[mid] = parent
    members.add(mid)
    for sub in replies:
        _walk(sub, mid, parents, members)


def compare(
    ours: Parents, our_groups: list[set[str]], theirs: Parents, their_groups: list[set[str]]
) -> Figures:
    """Agreement of our parents and threads with notmuch's, over the messages both hold."""
    common = set(ours) & set(theirs)
    checked = [m for m in sorted(common) if theirs[m] is None or theirs[m] in common]
    differences = [(m, ours[m], theirs[m]) for m in checked if ours[m] != theirs[m]]
    ours_sets = {frozenset(g & common) for g in our_groups}
    same_thread = sum(len(g & common) for g in their_groups if frozenset(g & common) in ours_sets)
    return Figures(
        len(checked), len(checked) - len(differences), len(common), same_thread, differences
    )


def listgate_threads(db: Any, list_name: str) -> tuple[Parents, list[set[str]]]:
    """(parent of each Message-ID, thread groups) of a list in our archive."""
    from listgate import threads
    from listgate.models import MailingList, Message

    with db() as s:
        rows = s.execute(
            select(Message.id, Message.message_id, Message.parent_id, Message.thread_id)
            .join(MailingList)
            .where(MailingList.name == list_name)
        ).all()
        by_pk = {r.id: r.message_id for r in rows}
        groups: dict[int, set[str]] = {}
        for r in rows:
            thread = threads.resolve(s, r.thread_id)
            assert thread is not None, f"{r.message_id} has no thread"
            groups.setdefault(thread.id, set()).add(r.message_id)
    return {r.message_id: by_pk.get(r.parent_id) for r in rows}, list(groups.values())


def threadings(
    mails: list[bytes], workdir: Path, fallback_days: int
) -> tuple[Parents, list[set[str]], Parents, list[set[str]]]:
    """(our parents, our threads, notmuch's parents,
    notmuch's threads) of mails (imported into a new list).
    """
    from listgate.db import make_engine, session_factory, transaction, writer
    from listgate.importer import Importer
    from listgate.lists import create
    from listgate.schema import upgrade
    from tests.support.config import make_settings

    engine = make_engine(make_settings(workdir / "listgate"))
    try:
        upgrade(engine)
        db = session_factory(writer(engine))
        with transaction(db) as s:
            create(s, "corpus")
        Importer(db, "corpus", "lists.test", fallback_days=fallback_days).run(iter(mails))
        ours, our_groups = listgate_threads(db, "corpus")
    finally:
        engine.dispose()
    theirs, their_groups = notmuch_threads(mails, workdir / "notmuch")
    return ours, our_groups, theirs, their_groups


def both(mails: list[bytes], workdir: Path, fallback_days: int) -> Figures:
    """Thread mails with listgate and with notmuch; their agreement."""
    return compare(*threadings(mails, workdir, fallback_days))


def main(argv: list[str]) -> None:
    """Print the figures for the first LIMIT messages
    of linux-man (all when 0), fallback off and on.
    """
    from listgate.importer import mbox_messages, open_stream

    limit = int(argv[1]) if len(argv) > 1 else 0
    corpus = Path(os.environ["LISTGATE_TEST_CORPORA"]) / "linux-man" / "linux-man.mbox.xz"
    with open(corpus, "rb") as raw:
        mails = list(islice(mbox_messages(open_stream(raw)), limit or None))
    for days in (0, 30):
        work = Path(tempfile.mkdtemp(prefix="listgate-notmuch-"))
        try:
            figures = both(mails, work, days)
            label = f"linux-man, {len(mails)} messages, subject fallback {days} days"
            print(f"{label}: {figures.line()}")  # noqa: T201 - the script's report
            for mid, ours, theirs in figures.differences[:15]:
                print(f"  {mid}: ours {ours}, notmuch {theirs}")  # noqa: T201 - the script's report
        finally:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    main(sys.argv)
