"""`listgate import` into a list in use, through real processes.

Sam gets every post, Kim the daily digest, Ann started a thread. An mbox is imported while the
gateway takes live posts: some imported mail answers Ann's live post, a live reply answers an
imported post (which may not be in yet). Every live post is answered 250 and stored once, the
replies land in their parents' threads, the live posts reach Sam (and only the live ones),
nobody is mailed an imported message (nor in the digest), and a rerun imports nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.test_journeys import ANN, BOB, SAM, Journey, digest_posts
from tests.support.sink import SmtpSink
from tests.support.stack import Stack

pytestmark = pytest.mark.integration
SHARED_STACK: dict[str, str] = {}  # a shared `listgate up` (up_stack, sink)

KIM = "kim@example.org"
IMPORTED = 300  # enough for the import to take a while beside the live posts
LIVE_MAX = 30


def _mbox(path: Path, live_root: str) -> Path:
    """An archive: a thread of its own, an answer to the live post, and old topics."""
    mails = []
    for i in range(IMPORTED):
        head = f"From: old{i % 7}@example.com\nMessage-ID: <old{i}@example.com>\n"
        head += f"Date: Mon, 2 Mar 2026 10:{i % 60:02d}:00 +0000\n"
        if i == 1:
            head += "Subject: Re: Old topic 0\nIn-Reply-To: <old0@example.com>\n"
        elif i == 2:
            head += f"Subject: Re: Live topic\nIn-Reply-To: <{live_root}>\n"
        else:
            head += f"Subject: Old topic {i}\n"
        mails.append(f"From old@example.com Mon Mar  2 10:00:00 2026\n{head}\nOld words {i}.\n\n")
    path.write_text("".join(mails))
    return path


def thread_of(j: Journey, msgid: str) -> int:
    """The thread a post is in now (through the JSON API)."""
    found = j.web.get(f"/api/messages/{msgid}")
    assert found.status == 200, f"<{msgid}> is not archived: {found.body[:200]}"
    return int(json.loads(found.body)["thread_id"])


@pytest.mark.long(30)
def test_importing_into_a_list_in_use(up_stack: Stack, sink: SmtpSink, tmp_path: Path) -> None:
    j = Journey(up_stack, sink)
    j.cli("lists", "create", j.list, "--title", "Developers")
    j.cli("subscribe", SAM, "--list", j.list)
    j.cli("subscribe", KIM, "--list", j.list, "--digest")
    live_root = j.mail(ANN, j.address, "Live topic", "Live words.\n")
    j.expect((SAM, live_root))

    mbox = _mbox(tmp_path / "old.mbox", live_root)
    args = [sys.executable, "-m", "listgate.cli", "import", str(mbox), "--list", j.list, "--quiet"]
    importing = subprocess.Popen(
        args, env=up_stack.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    # Live posts while the import runs: each answered 250 (Journey.mail asserts it).
    live = [j.mail(BOB, j.address, "Re: Old topic 0", "A live answer.\n", "old0@example.com")]
    while importing.poll() is None and len(live) < LIVE_MAX:
        live.append(j.mail(ANN, j.address, f"Live news {len(live)}", "News.\n"))
    out, _ = importing.communicate(timeout=120)
    assert importing.returncode == 0, out
    assert f"imported:   {IMPORTED}" in out, out
    j.expect(*[(SAM, msgid) for msgid in live])

    # Each live post stored once, every imported one in: the list counts them all.
    lists = json.loads(j.web.get("/api/lists").body)["lists"]
    count = next(entry["messages"] for entry in lists if entry["name"] == j.list)
    assert count == 1 + len(live) + IMPORTED, (count, len(live))
    # Answers across the two ways in land in their parents' threads.
    assert thread_of(j, "old2@example.com") == thread_of(j, live_root)
    assert thread_of(j, live[0]) == thread_of(j, "old0@example.com")

    # A rerun imports nothing and mails nobody.
    again = j.cli("import", str(mbox), "--list", j.list, "--quiet")
    assert "imported:   0" in again and f"duplicates: {IMPORTED}" in again, again
    j.expect()

    # The day's digest holds the live posts, not the archive's.
    j.send_digest()
    got = j.expect((KIM, "digest"))
    assert digest_posts(got, KIM, [live_root, *live, "old0@example.com", "old2@example.com"]) == [
        live_root,
        *live,
    ]
