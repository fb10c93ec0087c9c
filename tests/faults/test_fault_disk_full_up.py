"""The whole `listgate up` stack on a small data disk that fills up, then frees: it serves again by
itself.

Before: the broker's writes failed, Celery's consumer restarted in a loop leaking pooled
connections until "QueuePool limit ... reached", the worker exited with status 0 and `up`
stopped everything for good. Now: the worker keeps its pool, a child that dies anyway is
restarted by `up`, and once space is back the same processes accept and deliver again.

The data dir is a size-limited tmpfs (mounting needs root). Where this sandbox cannot mount,
the test skips locally (and fails under CI=true, like a missing service): a simulated full
disk would not exercise the broker's writes.
"""

from __future__ import annotations

import os
import signal
import smtplib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from listgate.supervisor import read_state, state_file
from tests.support.config import prepare, site_env, wait_until
from tests.support.mounts import tmpfs
from tests.support.reliability import record
from tests.support.services import require

pytestmark = [pytest.mark.integration, pytest.mark.soak]
BODY = ("x" * 76 + "\r\n") * 600  # ~47 KB per post


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 24 MB tmpfs at tmp_path/disk."""
    mnt = tmp_path / "disk"
    with tmpfs(mnt, "24m") as refused:
        if refused:
            require("a mountable tmpfs", refused)
        yield mnt


def send(port: int, tag: str) -> int:
    """Post once; the SMTP code (or 0 when the connection failed)."""
    raw = (
        f"From: ann@example.org\r\nTo: dev@lists.test\r\nSubject: {tag}\r\n"
        f"Message-ID: <{tag}@t>\r\n\r\n{BODY}"
    )
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
            smtp.sendmail("ann@example.org", ["dev@lists.test"], raw)
        return 250
    except smtplib.SMTPResponseException as exc:
        return exc.smtp_code
    except smtplib.SMTPRecipientsRefused as exc:
        return next(iter(exc.recipients.values()))[0]
    except OSError:
        return 0


def delivered(outbound: Path) -> dict[str, int]:
    """Copies in the outbound Maildir by subject."""
    found: dict[str, int] = {}
    for path in (outbound / "new").glob("*") if (outbound / "new").exists() else ():
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("Subject: "):
                found[line[9:]] = found.get(line[9:], 0) + 1
                break
    return found


def fill(directory: Path) -> Path:
    """Write a file until the filesystem is full."""
    filler = directory / "filler"
    with open(
        filler, "wb", buffering=0
    ) as fh:  # unbuffered: a partly written chunk is not flushed again at close
        try:
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        except OSError:
            pass
    return filler


def worker_pid(data_dir: Path) -> int:
    """The pid of the worker child of `listgate up`
    (its main Celery process), from up's state file.
    """
    state = read_state(state_file(data_dir))
    assert state is not None, "listgate up wrote no state file"
    return int(state["children"]["worker"]["pid"])


@pytest.mark.long(65)
def test_a_full_disk_then_freed_serves_again_without_a_manual_step(
    tmp_path: Path, small_disk: Path
) -> None:
    env = site_env(
        tmp_path,
        LISTGATE_DATA_DIR=str(small_disk / "var"),
        LISTGATE_BROKER_URL=f"sqla+sqlite:///{small_disk / 'var' / 'broker.sqlite3'}",
    )
    prepare(env, "dev")
    subprocess.run(
        [sys.executable, "-m", "listgate.cli", "subscribe", "bob@example.org", "--list", "dev"],
        env={**os.environ, **env},
        check=True,
        capture_output=True,
    )
    port = int(env["LISTGATE_SMTP_LISTEN"].rsplit(":", 1)[1])
    outbound = small_disk / "var" / "outbound"
    log_path = tmp_path / "up.log"
    with open(log_path, "wb") as log:
        up = subprocess.Popen(
            [sys.executable, "-m", "listgate.cli", "up", "--no-demo"],
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        assert wait_until(lambda: "listgate is up" in log_path.read_text(), 60), (
            log_path.read_text()
        )
        assert send(port, "before") == 250
        assert wait_until(lambda: delivered(outbound).get("before") == 1, 60), log_path.read_text()[
            -3000:
        ]

        # The worker is busy (stopped) while posts queue up, then the disk fills under it.
        worker = worker_pid(small_disk / "var")
        os.kill(worker, signal.SIGSTOP)
        queued = [f"queued-{i}" for i in range(4)]
        assert [send(port, tag) for tag in queued] == [250] * 4
        filler = fill(small_disk)
        os.kill(worker, signal.SIGCONT)
        during = [send(port, f"during-{i}") for i in range(6)]
        assert all(code in (250, 451, 452) for code in during), during  # never a dead server
        time.sleep(45)  # long enough for the old consumer to exhaust its pool (it took ~30 s)
        text = log_path.read_text()
        assert up.poll() is None, "listgate up stopped"
        assert "QueuePool limit" not in text, "the worker leaked pooled broker connections"

        filler.unlink()
        freed = time.monotonic()
        assert wait_until(lambda: send(port, "after") == 250, 60), log_path.read_text()[-3000:]
        expected = ["before", *queued, "after"] + [
            f"during-{i}" for i, code in enumerate(during) if code == 250
        ]
        assert wait_until(lambda: all(delivered(outbound).get(tag) for tag in expected), 120), (
            expected,
            delivered(outbound),
            log_path.read_text()[-3000:],
        )
        recovery = time.monotonic() - freed
        time.sleep(2)
        copies = delivered(outbound)
        assert all(copies[tag] == 1 for tag in expected), copies
        status = subprocess.run(
            [sys.executable, "-m", "listgate.cli", "status"],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,  # the report on stdout is what is checked
        )
        assert "worker     ok" in status.stdout and "gateway    ok" in status.stdout, status.stdout
    finally:
        up.send_signal(signal.SIGTERM)
        code = up.wait(60)
    assert code == 0, log_path.read_text()[-3000:]
    record(
        "full data disk under `listgate up`, then freed",
        len(expected),
        0,
        0,
        recovery,
        "worker kept its pool; same processes served again",
    )
