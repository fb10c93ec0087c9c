"""public-inbox, the peer we compare with: installed from Debian when missing, fed the same mbox."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from bench.common import Context, NotAvailable, Proc, free_port, run_measured, wait_port

log = logging.getLogger(__name__)

# Feeds an mboxrd on stdin to an inbox made by public-inbox-init, with the inbox's own indexing
# (V2Writable: git, over.sqlite3 and the Xapian full-text index, as `public-inbox-index` builds).
IMPORT_PL = r"""
use strict; use v5.10.1;
use PublicInbox::Config; use PublicInbox::InboxWritable;
my $cfg = PublicInbox::Config->new;
my $ibx = $cfg->lookup_name($ARGV[0]) or die "no inbox named $ARGV[0]\n";
$ibx = PublicInbox::InboxWritable->new($ibx);
binmode STDIN;
$ibx->import_mbox(\*STDIN, 'mboxrd');
"""


@dataclass
class PublicInbox:
    """One public-inbox inbox in the run's work dir."""

    name: str
    inbox_dir: Path
    env: dict[str, str]
    seconds: float = 0.0
    peak_rss_kib: int = 0

    def count(self) -> int:
        """Messages in the inbox (its msgmap)."""
        import sqlite3

        with sqlite3.connect(self.inbox_dir / "msgmap.sqlite3") as conn:
            return int(conn.execute("SELECT count(*) FROM msgmap").fetchone()[0])


def ensure_installed(ctx: Context) -> None:
    """public-inbox on PATH, installing Debian's package once if we can; else NotAvailable (why)."""

    def install() -> bool:
        if shutil.which("public-inbox-init"):
            return True
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            raise NotAvailable(
                "public-inbox is not installed (as root: apt-get install public-inbox)"
            )
        log.info("public-inbox is missing: installing Debian's package")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        for cmd in (
            ["apt-get", "update", "-q"],
            ["apt-get", "install", "-y", "-q", "public-inbox"],
        ):
            done = subprocess.run(
                cmd, env=env, capture_output=True, text=True, timeout=900, check=False
            )
            if done.returncode != 0 and cmd[1] == "install":
                raise NotAvailable(
                    f"public-inbox could not be installed: {done.stderr.strip()[-200:]}"
                )
        if not shutil.which("public-inbox-init"):
            raise NotAvailable("public-inbox could not be installed (apt-get reported no error)")
        ctx.notes.append("public-inbox was not installed: this run installed Debian's package.")
        return True

    ctx.once("public-inbox-installed", install)


def import_mbox(ctx: Context, name: str, mbox: Path) -> PublicInbox:
    """public-inbox-init -V2 (full indexing) then import mbox; timed, with peak RSS."""
    ensure_installed(ctx)
    base = ctx.path("public-inbox", name, "x").parent
    env = {k: v for k, v in os.environ.items() if not k.startswith("PI_")}
    env.update({"PI_CONFIG": str(base / "config"), "HOME": str(base)})
    inbox = PublicInbox(name, base / name, env)
    init = subprocess.run(
        [
            "public-inbox-init",
            "-V2",
            "-L",
            "full",
            name,
            str(inbox.inbox_dir),
            f"http://127.0.0.1/{name}",
            f"{name}@peer.bench.test",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if init.returncode != 0:
        raise NotAvailable(
            f"public-inbox-init failed: {(init.stderr or init.stdout).strip()[-200:]}"
        )
    script = base / "import.pl"
    script.write_text(IMPORT_PL)
    log_path = ctx.path("logs", f"public-inbox-import-{name}.log")
    status, inbox.seconds, inbox.peak_rss_kib = run_measured(
        ["perl", str(script), name], env, log_path, timeout=4 * 3600, stdin=mbox
    )
    if status != 0:
        tail = (
            log_path.read_text(errors="replace").strip().splitlines()[-1:]
            if log_path.exists()
            else []
        )
        raise NotAvailable(f"public-inbox import exited {status}: {' '.join(tail)[-200:]}")
    return inbox


def start_httpd(ctx: Context, inbox: PublicInbox) -> tuple[Proc, int]:
    """public-inbox-httpd serving the inbox on a free port."""
    # list the inboxes on / (off by default), so the home page has a counterpart
    subprocess.run(
        ["git", "config", "-f", inbox.env["PI_CONFIG"], "publicinbox.wwwListing", "all"],
        capture_output=True,
        timeout=30,
        check=False,
    )
    port = free_port()
    proc = ctx.start(
        f"public-inbox-httpd-{inbox.name}",
        ["public-inbox-httpd", "-l", f"http://127.0.0.1:{port}", "-W", "2"],
        env=inbox.env,
    )
    wait_port("127.0.0.1", port, 30, proc.popen)
    return proc, port
