"""`listgate import` killed (SIGKILL) or interrupted (Ctrl-C) while its parsing process works: no
process it started is left running, and Ctrl-C ends it with click's "Aborted!", no traceback.

The import is the installed `listgate` command, as an operator runs it, in a session of its own;
its processes are found by pid under /proc before the signal.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from listgate.models import Message
from tests.support.config import prepare, site_env, wait_until

pytestmark = pytest.mark.integration

COMMAND = Path(sys.executable).parent / "listgate"  # the console script, not `python -m`
COUNT = 4000


def _mbox(path: Path, count: int) -> Path:
    """An mbox of count messages, a thread of ten at a time, with bodies worth parsing."""
    body = "".join(f"Line {n} of the message.\n> an older line\n" for n in range(40))
    with open(path, "w", encoding="ascii") as out:
        for i in range(count):
            refs = f"References: <kill{i - 1}@example.org>\n" if i % 10 else ""
            out.write(
                "From mboxrd@z Thu Jan  1 00:00:00 1970\n"
                f"From: user{i % 37}@example.org\nSubject: Topic {i // 10}\n"
                f"Message-ID: <kill{i}@example.org>\n{refs}"
                f"Date: Mon, 2 Mar 2026 10:{i % 60:02d}:00 +0000\n\n{body}\n"
            )
    return path


def _children(pid: int) -> set[int]:
    """pid's descendants, from /proc's children lists."""
    found: set[int] = set()
    todo = [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                kids = {int(k) for k in (task / "children").read_text().split()}
            except OSError:  # the task ended meanwhile
                continue
            todo += sorted(kids - found)
            found |= kids
    return found


def _running(pid: int) -> bool:
    """The process exists and is not a zombie (an orphan's zombie waits for init to reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return "(gone)"


def _start_import(
    tmp_path: Path,
) -> tuple[subprocess.Popen[bytes], set[int], sessionmaker[Session]]:
    """`listgate import` of COUNT messages in batches of 100, once its parsing process works.

    Its output goes to files: a process it leaves behind would hold a pipe open."""
    env = site_env(tmp_path)
    _, db = prepare(env, "dev")
    mbox = _mbox(tmp_path / "big.mbox", COUNT)
    with open(tmp_path / "stderr", "wb") as stderr:  # the import holds its own copy
        proc = subprocess.Popen(
            [str(COMMAND), "import", str(mbox), "--list", "dev", "--batch", "100", "--quiet"],
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,  # its own process group, as a shell's foreground job
        )
    helpers = wait_until(
        lambda: _children(proc.pid) or None if proc.poll() is None else set(),
        timeout=60,
        what="the import's parsing process",
    )
    assert proc.poll() is None, "the import ended before its parsing process was seen"
    time.sleep(1.0)  # a few batches in: the helper is parsing or waiting for the next batch
    assert proc.poll() is None, "the import ended too soon to be interrupted"
    return proc, helpers | _children(proc.pid), db


def _survivors(helpers: set[int]) -> list[str]:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(_running(p) for p in helpers):
        time.sleep(0.1)
    left = [f"{p}: {_cmdline(p)}" for p in sorted(helpers) if _running(p)]
    for p in helpers:  # clean up what the test started, by pid
        if _running(p):
            os.kill(p, signal.SIGKILL)
    return left


def test_sigkill_of_the_import_leaves_no_parsing_process(tmp_path: Path) -> None:
    proc, helpers, _ = _start_import(tmp_path)
    proc.kill()
    proc.wait(timeout=30)
    assert helpers, "the import started no parsing process"
    assert _survivors(helpers) == [], "the import's processes outlived it"


def test_ctrl_c_of_the_import_ends_it_and_its_parsing_process_quietly(tmp_path: Path) -> None:
    proc, helpers, _ = _start_import(tmp_path)
    os.killpg(proc.pid, signal.SIGINT)  # what the terminal sends to the foreground group
    proc.wait(timeout=60)
    assert _survivors(helpers) == [], "the import's processes outlived it"
    err = (tmp_path / "stderr").read_text()
    assert proc.returncode == 1 and "Aborted!" in err, err[-2000:]
    assert "Traceback" not in err, err[-2000:]


def test_the_parsing_process_killed_the_import_parses_the_rest_itself(tmp_path: Path) -> None:
    """The parsing process dies (the kernel's OOM killer, an operator): the import goes on,
    parses the rest itself, and archives every message once."""
    proc, helpers, db = _start_import(tmp_path)
    for pid in helpers:
        os.kill(pid, signal.SIGKILL)
    assert proc.wait(timeout=300) == 0, (tmp_path / "stderr").read_text()[-2000:]
    err = (tmp_path / "stderr").read_text()
    assert "Traceback" not in err, err[-2000:]
    assert "parsing the rest in the importer" in err, err[-2000:]  # it was killed mid-import
    with db() as session:
        archived = session.scalar(select(func.count(func.distinct(Message.message_id))))
        rows = session.scalar(select(func.count()).select_from(Message))
    assert (archived, rows) == (COUNT, COUNT)
