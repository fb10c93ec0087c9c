"""Very long lines, before DATA (a command) and inside it: a clear answer, memory in the budget.

The attacks: a command line of 100 KB, one of 100 MB that never ends, a DATA body that is one
line of 50 MB, and many clients sending lines of megabytes at once with a large configured line
length. asyncio's stream reader under aiosmtpd buffers up to twice its limit per connection; that
limit followed the configured line length, and a DATA line not yet ended was held outside the
memory budget. Each attack must get an SMTP answer with a reason (500/552) or a 421 and the
connection closed, the gateway process's peak memory (VmHWM) must stay within its budget plus a
small cost per connection, and another client's posts must get 250 and be stored meanwhile.
"""

from __future__ import annotations

import contextlib
import select
import smtplib
import threading
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.support.config import prepare, site_env
from tests.support.gateway import RawClient, archived_ids
from tests.support.memory import MB, reset_peak, settle, status
from tests.support.processes import Service, gateway
from tests.support.reliability import post, record, size

pytestmark = [pytest.mark.integration, pytest.mark.soak]
PIECE = b"x" * 65536
PER_CONNECTION = MB // 2  # what one connection may cost beside the budget (asyncio's buffers)
SLACK = 16 * MB  # the interpreter's own noise between two measurements


def _start(tmp_path: Path, **extra: str) -> tuple[Service, int, sessionmaker[Session]]:
    env = site_env(tmp_path, LISTGATE_SMTP_TIMEOUT="3600", **extra)  # no timeout answers here
    settings, db = prepare(env, "dev")
    gw = gateway(env, tmp_path / "gateway.log").start()
    return gw, settings.smtp_port, db


def _post(port: int, msgid: str, source: str = "127.0.0.9") -> int:
    """The code a post from another client address gets (250 or the refusing reply's code)."""
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=60, source_address=(source, 0)) as c:
            c.sendmail("bob@example.org", ["dev@lists.test"], post(msgid))
        return 250
    except smtplib.SMTPResponseException as exc:
        return exc.smtp_code


def _warm(gw: Service, port: int) -> int:
    """Post once and let the gateway settle; its resident size then, the peak reset."""
    assert _post(port, "warm@example.org") == 250
    pid = gw.process.pid
    settle(pid)
    return reset_peak(pid)


def _pump(c: RawClient, nbytes: int) -> int:
    """Send up to nbytes of 'x' (no line end); how many went before the server closed."""
    sent = 0
    try:
        while sent < nbytes:
            c.sock.sendall(PIECE)
            sent += len(PIECE)
    except OSError:  # closed by the server: its reply is read next
        pass
    return sent


def _reply(c: RawClient, timeout: float = 20.0) -> str:
    c.sock.settimeout(timeout)
    try:
        return c.reply()
    except TimeoutError:
        return "<no reply>"
    except OSError as exc:
        return f"<{type(exc).__name__}>"


def _in_data(port: int, source: str = "127.0.0.1") -> RawClient:
    c = RawClient(port, source=source)
    for command in ("EHLO a.example", "MAIL FROM:<a@example.org>", "RCPT TO:<dev@lists.test>"):
        assert c.cmd(command).startswith("250"), command
    assert c.cmd("DATA").startswith("354")
    return c


def test_a_long_command_line_is_answered_with_its_reason(tmp_path: Path) -> None:
    gw, port, db = _start(tmp_path)
    clients: list[RawClient] = []
    try:
        clients.append(c := RawClient(port))
        assert c.cmd("EHLO a.example").startswith("250")
        # over aiosmtpd's command limit, under the line length: 500 and the session goes on
        reply = c.cmd("NOOP " + "x" * 2000)
        assert reply.startswith("500 5.5.2 Line too long") and "at most" in reply, reply
        assert c.cmd("MAIL FROM:<ann@example.org>").startswith("250")
        assert c.cmd("RCPT TO:<dev@lists.test>").startswith("250")
        assert c.cmd("DATA").startswith("354")
        c.send(post("after-long-command@example.org") + b".\r\n")
        assert c.reply().startswith("250")
        # 100 KB, past the line length (100,000): 421 and closed
        clients.append(c := RawClient(port))
        c.send(b"NOOP " + b"x" * 102400 + b"\r\n")
        reply = _reply(c)
        assert reply.startswith("421 4.5.2 Line too long") and "100000 bytes" in reply, reply
        assert _reply(c) == "<closed>"
        assert _post(port, "other@example.org") == 250
    finally:
        for c in clients:
            c.close()
        gw.stop()
    assert "command line went on past 100000 bytes" in gw.text()
    assert sorted(archived_ids(db)) == ["after-long-command@example.org", "other@example.org"]


def test_an_endless_command_line_is_cut_off_with_421(tmp_path: Path) -> None:
    gw, port, db = _start(tmp_path)
    try:
        base = _warm(gw, port)
        with contextlib.closing(RawClient(port)) as c:
            sent = _pump(c, 100 * MB)
            reply = _reply(c)
        growth = status(gw.process.pid, "VmHWM") - base
        meanwhile = _post(port, "other@example.org")
    finally:
        gw.stop()
    record(
        "a command line of 100 MB without CRLF",
        1,
        0,
        0,
        None,
        f"{reply[:24]} after {sent // 1024} KB sent; gateway peak +{growth / MB:.1f} MB",
        held=int(reply.startswith("421")),
    )
    assert reply.startswith("421 4.5.2 Line too long"), (
        f"after {sent / MB:.0f} MB of one command line, the gateway said {reply!r}"
    )
    assert sent < 16 * MB, f"the gateway read {sent / MB:.0f} MB of one command line"
    assert growth < 8 * MB, f"the gateway grew {growth / MB:.0f} MB"
    assert meanwhile == 250
    assert sorted(archived_ids(db)) == ["other@example.org", "warm@example.org"]


def test_a_data_line_of_50_mb_gets_552_and_costs_little(tmp_path: Path) -> None:
    gw, port, db = _start(tmp_path)
    try:
        base = _warm(gw, port)
        with contextlib.closing(_in_data(port)) as c:
            sent = _pump(c, size(50, 200) * MB)
            c.send(b"\r\n.\r\n")
            reply = _reply(c, 60)
            growth = status(gw.process.pid, "VmHWM") - base
            assert c.cmd("MAIL FROM:<ann@example.org>").startswith("250")  # the session goes on
            assert c.cmd("RCPT TO:<dev@lists.test>").startswith("250")
            assert c.cmd("DATA").startswith("354")
            c.send(post("same-session@example.org") + b".\r\n")
            after = c.reply()
    finally:
        gw.stop()
    record(
        f"a DATA body of one {sent // MB} MB line",
        1,
        0,
        0,
        None,
        f"{reply[:40]}; gateway peak +{growth / MB:.1f} MB",
        held=int(reply.startswith("552")),
    )
    assert reply == "552 5.3.4 Refused: a line longer than 100000 bytes", reply
    assert growth < 8 * MB, f"the gateway grew {growth / MB:.0f} MB for one line"
    assert after.startswith("250")
    assert sorted(archived_ids(db)) == [
        "same-session@example.org",
        "warm@example.org",
    ]


class LongLine(threading.Thread):
    """A client sending one line of nbytes that it never ends, in a command or in DATA."""

    def __init__(self, port: int, source: str, in_data: bool, nbytes: int) -> None:
        super().__init__(daemon=True)
        self.client = _in_data(port, source) if in_data else RawClient(port, source=source)
        self.nbytes, self.sent = nbytes, 0

    def run(self) -> None:
        self.sent = _pump(self.client, self.nbytes)

    def said(self) -> str:
        """'' while the gateway is still reading, else its reply."""
        readable = select.select([self.client.sock], [], [], 0.2)[0]
        return _reply(self.client, 5) if readable else ""


def test_many_long_lines_at_once_stay_within_the_memory_budget(tmp_path: Path) -> None:
    budget, line = 16 * MB, 3 * MB
    gw, port, db = _start(
        tmp_path,
        LISTGATE_MAX_LINE_LENGTH=str(4 * MB),
        LISTGATE_MAX_DATA_MEMORY=str(budget),
        LISTGATE_MAX_MESSAGE_SIZE=str(8 * MB),
    )
    addresses = [f"127.0.{i}.10" for i in range(10, 10 + size(8, 12))]  # one per network
    per_address = 6
    attackers: list[LongLine] = []
    codes: list[int] = []
    try:
        base = _warm(gw, port)
        for n in range(per_address):
            attackers += [LongLine(port, a, n % 2 == 1, line) for a in addresses]
        for a in attackers:
            a.start()
        codes += [_post(port, f"during{i}@example.org") for i in range(5)]
        for a in attackers:
            a.join(120)
        settle(gw.process.pid)
        growth = status(gw.process.pid, "VmHWM") - base
        replies = [a.said() for a in attackers]
        codes += [_post(port, f"after{i}@example.org") for i in range(5)]
    finally:
        for a in attackers:
            a.client.close()
        gw.stop()
    bound = budget + len(attackers) * PER_CONNECTION + SLACK
    refused = [r for r in replies if r]
    record(
        f"long lines ({line // MB} MB, never ended) on {len(attackers)} connections from "
        f"{len(addresses)} addresses, half in DATA (line length 4 MB, budget {budget // MB} MB)",
        len(attackers),
        0,
        0,
        None,
        f"{len(refused)} got 421; gateway peak +{growth / MB:.0f} MB; other posts: {codes}",
        held=len(attackers) if growth < bound else 0,
    )
    # within their limits, the lines are still being read; past the budget, 421 and closed
    assert all(r in ("", "<closed>") or r.startswith("421 4.3.2") for r in replies), replies
    assert growth < bound, (
        f"the gateway grew {growth / MB:.0f} MB with a {budget / MB:.0f} MB budget and "
        f"{len(attackers)} connections (bound {bound / MB:.0f} MB)"
    )
    assert codes == [250] * 10
    stored = archived_ids(db)
    assert sorted(stored) == sorted(
        ["warm@example.org"]
        + [f"during{i}@example.org" for i in range(5)]
        + [f"after{i}@example.org" for i in range(5)]
    )
