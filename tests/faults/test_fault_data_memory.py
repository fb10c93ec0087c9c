"""DATA that never ends: the gateway's memory stays near what it was sent, within its budget.

The attack: DATA made of bare CRLF lines, without the final dot, held open. aiosmtpd keeps a
bytearray per line (about 36 bytes of memory per byte sent); here the gateway process's peak
resident memory is measured (VmHWM) while one connection, then many from several addresses, do
it, and another client's post must still get 250 meanwhile.
"""

from __future__ import annotations

import select
import smtplib
import socket
from pathlib import Path

import pytest

from tests.support.config import prepare, site_env
from tests.support.gateway import archived_ids
from tests.support.memory import reset_peak as _reset_peak
from tests.support.memory import settle as _settle
from tests.support.memory import status as _status
from tests.support.processes import gateway
from tests.support.reliability import post, record, size

pytestmark = [pytest.mark.integration, pytest.mark.soak]
MB = 1024 * 1024
CRLFS = b"\r\n" * 32768


class Attacker:
    """A connection that starts DATA, sends `nbytes` of bare CRLF lines and never the final dot."""

    def __init__(self, port: int, source: str, nbytes: int) -> None:
        self.sock = socket.create_connection(
            ("127.0.0.1", port), timeout=30, source_address=(source, 0)
        )
        self.buf = b""
        self.sent = 0
        assert self._reply().startswith("220")
        for command in (
            b"EHLO flood.example",
            b"MAIL FROM:<x@example.org>",
            b"RCPT TO:<dev@lists.test>",
            b"DATA",
        ):
            self.sock.sendall(command + b"\r\n")
            assert self._reply()[:1] in "23", command
        try:
            while self.sent < nbytes:
                self.sock.sendall(CRLFS)
                self.sent += len(CRLFS)
        except OSError:  # the server answered and closed: see reply()
            pass

    def _reply(self) -> str:
        """One reply (the last line of a multi-line one)."""
        while True:
            while b"\r\n" not in self.buf:
                chunk = self.sock.recv(4096)
                if not chunk:
                    return "<closed>"
                self.buf += chunk
            line, self.buf = self.buf.split(b"\r\n", 1)
            if line[3:4] != b"-":
                return line.decode()

    def reply(self) -> str:
        """What the server said during DATA ('' when it is still waiting for more)."""
        if b"\r\n" in self.buf or select.select([self.sock], [], [], 0.5)[0]:
            try:
                return self._reply()
            except OSError:
                return "<closed>"
        return ""

    def close(self) -> None:
        self.sock.close()


def _post_meanwhile(port: int, msgid: str) -> int:
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=60, source_address=("127.0.0.9", 0)) as c:
            c.sendmail("bob@example.org", ["dev@lists.test"], post(msgid))
        return 250
    except smtplib.SMTPResponseException as exc:
        return exc.smtp_code


def test_endless_data_of_empty_lines_costs_about_its_size(tmp_path: Path) -> None:
    nbytes = size(8, 24) * MB
    env = site_env(tmp_path)
    settings, db = prepare(env, "dev")
    gw = gateway(env, tmp_path / "gateway.log").start()
    attacker = None
    try:
        pid = gw.process.pid
        assert _post_meanwhile(settings.smtp_port, "warm@example.org") == 250
        base = _reset_peak(pid)
        attacker = Attacker(settings.smtp_port, "127.0.0.1", nbytes)
        _settle(pid)
        growth = _status(pid, "VmHWM") - base
        assert attacker.reply() == "", "the server refused a message within its limits"
        assert _post_meanwhile(settings.smtp_port, "other@example.org") == 250
    finally:
        if attacker:
            attacker.close()
        gw.stop()
    bounded = growth < 2 * nbytes + 48 * MB
    record(
        f"DATA of {nbytes // MB} MB of empty lines, no final dot",
        1,
        0,
        0,
        None,
        f"gateway peak +{growth / MB:.0f} MB ({growth / nbytes:.1f} x the bytes sent)",
        held=int(bounded),
    )
    assert bounded, f"the gateway grew {growth / MB:.0f} MB for {nbytes / MB:.0f} MB sent"
    assert sorted(archived_ids(db)) == ["other@example.org", "warm@example.org"]


def test_many_endless_data_connections_stay_within_the_memory_budget(tmp_path: Path) -> None:
    budget, each = 32 * MB, size(6, 20) * MB
    addresses = [f"127.0.0.{i}" for i in range(2, 2 + size(6, 8))]
    per_address = size(2, 8)
    env = site_env(
        tmp_path,
        LISTGATE_MAX_DATA_MEMORY=str(budget),
        LISTGATE_MAX_MESSAGE_SIZE=str(each + MB),
        LISTGATE_SMTP_TIMEOUT="3600",
    )  # the connections within the budget stay until measured
    settings, db = prepare(env, "dev")
    gw = gateway(env, tmp_path / "gateway.log").start()
    attackers: list[Attacker] = []
    try:
        pid = gw.process.pid
        assert _post_meanwhile(settings.smtp_port, "warm@example.org") == 250
        base = _reset_peak(pid)
        for _ in range(per_address):
            attackers += [Attacker(settings.smtp_port, a, each) for a in addresses]
        _settle(pid)
        growth = _status(pid, "VmHWM") - base
        replies = [a.reply() for a in attackers]
        meanwhile = _post_meanwhile(settings.smtp_port, "other@example.org")
    finally:
        for a in attackers:
            a.close()
        gw.stop()
    refused = [r for r in replies if r.startswith("421 4.3.2")]
    offered = len(attackers) * each
    bounded = growth < 1.5 * budget + 48 * MB
    record(
        f"DATA without end on {len(attackers)} connections from {len(addresses)} addresses "
        f"({offered // MB} MB, budget {budget // MB} MB)",
        len(attackers),
        0,
        0,
        None,
        f"{len(refused)} got 421; gateway peak +{growth / MB:.0f} MB; "
        f"another client's post: {meanwhile}",
        held=len(attackers) if bounded else 0,
    )
    assert refused and all(r in ("", "<closed>") or r.startswith("421 4.3.2") for r in replies), (
        replies
    )
    assert bounded, f"the gateway grew {growth / MB:.0f} MB with a {budget / MB:.0f} MB budget"
    assert meanwhile == 250
    assert sorted(archived_ids(db)) == ["other@example.org", "warm@example.org"]
    assert "DATA over the memory budget" in gw.text()
