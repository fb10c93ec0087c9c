"""A private Postfix instance for tests: its own config, queue and log in a temp dir, SMTP on a free
port.

It uses Debian's postfix package (/usr/sbin/postfix) but not the system instance: nothing in
/etc/postfix is read or changed, and nothing listens on port 25. Postfix's master must start
as root (it drops to the `postfix` user); elsewhere `require` skips or fails the test.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support.services import require

POSTFIX = "/usr/sbin/postfix"
# The services a relay to LMTP needs; every one unchrooted, so the temp dir needs no copies of /etc.
MASTER_CF = """\
{listen} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


class PostfixInstance:
    """Start, drive and stop a private Postfix whose
    main.cf ends with `extra` (e.g. the README's lines).
    """

    def __init__(self, port: int, extra: str) -> None:
        if not os.path.exists(POSTFIX):
            require("Postfix", f"{POSTFIX} not found (apt-get install postfix)")
        if os.geteuid() != 0:
            require("Postfix", "a private Postfix instance needs root to start its master")
        self.port = port
        self.dir = Path(tempfile.mkdtemp(prefix="listgate-postfix-"))
        self.dir.chmod(0o755)  # the daemons run as `postfix` and must reach their directories
        self.etc, self.log = self.dir / "etc", self.dir / "maillog"
        self.etc.mkdir()
        (self.etc / "master.cf").write_text(MASTER_CF.format(listen=f"127.0.0.1:{port}"))
        (self.etc / "main.cf").write_text(self._main_cf() + extra + "\n")

    def _main_cf(self) -> str:
        return "\n".join(
            [
                "compatibility_level = 3.6",
                f"queue_directory = {self.dir / 'queue'}",
                f"data_directory = {self.dir / 'data'}",
                "mail_owner = postfix",
                "setgid_group = postdrop",
                "myhostname = mta.test",
                "mydestination =",
                "inet_interfaces = 127.0.0.1",
                "inet_protocols = ipv4",
                "mynetworks = 127.0.0.0/8",
                "smtpd_peername_lookup = no",
                "smtp_dns_support_level = disabled",
                "lmtp_dns_support_level = disabled",
                "alias_maps =",
                "alias_database =",
                f"maillog_file = {self.log}",
                f"maillog_file_prefixes = {self.dir}",
                "",
            ]
        )

    def postfix(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run `postfix -c ETC ARGS`."""
        return subprocess.run(
            [POSTFIX, "-c", str(self.etc), *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,  # callers read Postfix's status and words
        )

    def start(self) -> None:
        """Create the queue and start the master; fail with Postfix's words when it cannot."""
        for sub in ("queue", "data"):
            (self.dir / sub).mkdir(exist_ok=True)
        shutil.chown(self.dir / "data", "postfix")
        self.postfix("set-permissions")
        done = self.postfix("start")
        if done.returncode != 0:
            require(
                "Postfix", f"postfix start failed: {(done.stderr or done.stdout).strip()[-400:]}"
            )

    def queue_empty(self) -> bool:
        """True when nothing waits in any queue (active, incoming, deferred, maildrop)."""
        queue = self.dir / "queue"
        return not any(
            any((queue / q).rglob("*"))
            for q in ("incoming", "active", "deferred", "maildrop")
            if (queue / q).exists()
        )

    def wait_drained(self, timeout: float) -> bool:
        """Wait until the queue is empty (twice in a row, so nothing was between two steps)."""
        deadline, empty = time.monotonic() + timeout, 0
        while time.monotonic() < deadline:
            empty = empty + 1 if self.queue_empty() else 0
            if empty >= 2:
                return True
            time.sleep(0.5)
        return False

    def deliveries(self) -> dict[str, int]:
        """Delivery outcomes in the log: status=sent, deferred, bounced counts."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        found: dict[str, int] = {}
        for status in re.findall(r"postfix/lmtp\[\d+\]: \w+: to=<[^>]*>.*? status=(\w+)", text):
            found[status] = found.get(status, 0) + 1
        return found

    def stop(self) -> None:
        """Stop the master and delete the instance."""
        self.postfix("stop")
        for _ in range(100):
            if not (self.dir / "queue" / "pid" / "master.pid").exists():
                break
            time.sleep(0.1)
        shutil.rmtree(self.dir, ignore_errors=True)
