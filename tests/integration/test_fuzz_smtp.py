"""Hostile SMTP dialogue over raw sockets against the
real gateway process: it stays up and serves others.
"""

from __future__ import annotations

import random
import re
import smtplib
import socket
from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.support.config import prepare, site_env
from tests.support.gateway import RawClient, archived_ids
from tests.support.processes import Service, gateway
from tests.support.reliability import post, record, size

pytestmark = [pytest.mark.integration, pytest.mark.soak]
REPLY = re.compile(r"^[2-5]\d\d[ -]")
VERBS = [
    "HELO x",
    "EHLO x.example",
    "MAIL FROM:<a@example.org>",
    "MAIL FROM:<>",
    "RCPT TO:<dev@lists.test>",
    "RCPT TO:<x@elsewhere.example>",
    "DATA",
    "RSET",
    "NOOP",
    "VRFY dev",
    "EXPN dev",
    "HELP",
    "QUIT",
    "STARTTLS",
    "AUTH PLAIN AGFhAGI=",
    "MAIL FROM:",
    "RCPT TO:",
    "MAIL FROM:<a@b> SIZE=x",
    "BDAT 10",
    "MAIL FROM:<a@example.org> BODY=8BITMIME SMTPUTF8",
    "RCPT TO:<dev@lists.test> NOTIFY=NEVER",
]


class Client(RawClient):
    """A raw client that remembers how far along the happy transaction it got."""

    step = 0


class Site:
    """A running gateway process and its database."""

    def __init__(self, gw: Service, db: sessionmaker[Session], port: int) -> None:
        self.gw, self.db, self.port = gw, db, port

    def raw(self) -> Client:
        return Client(self.port)

    def alive(self) -> bool:
        """The process runs and a normal client gets a post through."""
        assert self.gw.proc is not None and self.gw.proc.poll() is None, self.gw.text()[-3000:]
        with smtplib.SMTP("127.0.0.1", self.port, timeout=30) as c:
            return (
                c.sendmail(
                    "ann@example.org", ["dev@lists.test"], post(f"ok{random.random()}@example.org")
                )
                == {}
            )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("fuzz-smtp")
    env = site_env(
        tmp,
        LISTGATE_SMTP_TIMEOUT="3",
        LISTGATE_MAX_LINE_LENGTH="998",
        LISTGATE_MAX_CONNECTIONS_PER_CLIENT="1000",
        LISTGATE_MAX_MESSAGES_PER_MINUTE="100000",
    )
    settings, db = prepare(env, "dev")
    gw = gateway(env, tmp / "gateway.log").start()
    yield Site(gw, db, settings.smtp_port)
    gw.stop()


def _replies(c: RawClient, n: int) -> list[str]:
    out = []
    for _ in range(n):
        line = c.reply()
        out.append(line)
        if line == "<closed>":
            break
    return out


def test_garbage_commands_get_errors_and_the_session_goes_on(site: Site) -> None:
    c = site.raw()
    rng = random.Random(1)
    for _ in range(5):
        junk = bytes(rng.randrange(32, 256) for _ in range(rng.randrange(1, 80)))
        c.send(junk + b"\r\n")
        assert c.reply()[:1] == "5"
    assert c.cmd("NOOP").startswith("250")
    c.close()
    assert site.alive()


def test_a_1_mb_line_is_refused_and_the_server_goes_on(site: Site) -> None:
    c = site.raw()
    c.send(b"EHLO " + b"a" * 1_000_000 + b"\r\n")
    reply = c.reply()
    assert reply.startswith(("500", "421 4.5.2")) or reply == "<closed>", reply
    c.close()
    c = site.raw()
    for cmd in ("EHLO x", "MAIL FROM:<a@example.org>", "RCPT TO:<dev@lists.test>", "DATA"):
        c.cmd(cmd)
    c.send(b"Subject: huge\r\nMessage-ID: <huge-line@x>\r\n\r\n" + b"b" * 1_000_000 + b"\r\n.\r\n")
    reply = c.reply()
    assert reply.startswith("552 5.3.4") or reply == "<closed>", reply
    c.close()
    assert site.alive() and "huge-line@x" not in archived_ids(site.db)


@pytest.mark.parametrize("eol", [b"\n", b"\r"])
def test_bare_line_ends_in_commands(site: Site, eol: bytes) -> None:
    c = site.raw()
    c.send(b"EHLO x" + eol + b"NOOP" + eol)
    c.sock.settimeout(5)
    try:
        got = c.reply()
    except TimeoutError:
        got = "<silent>"  # bare CR: still waiting for a line end, which is fine
    assert got == "<silent>" or REPLY.match(got) or got == "<closed>"
    c.close()
    assert site.alive()


def test_pipelined_transaction_gets_replies_in_order(site: Site) -> None:
    c = site.raw()
    assert c.cmd("EHLO pipe.example").startswith("250")
    c.send(
        b"MAIL FROM:<a@example.org>\r\nRCPT TO:<nobody@lists.test>\r\n"
        b"RCPT TO:<dev@lists.test>\r\nDATA\r\n"
    )
    assert [r[:3] for r in _replies(c, 4)] == ["250", "550", "250", "354"]
    c.send(post("pipelined@example.org") + b".\r\nNOOP\r\nQUIT\r\n")
    assert [r[:3] for r in _replies(c, 3)] == ["250", "250", "221"]
    c.close()
    assert "pipelined@example.org" in archived_ids(site.db)


def test_out_of_order_commands_are_refused(site: Site) -> None:
    c = site.raw()
    assert c.cmd("EHLO x").startswith("250")
    assert c.cmd("DATA").startswith("503")  # DATA without MAIL
    assert c.cmd("RCPT TO:<dev@lists.test>").startswith("503")  # RCPT without MAIL
    assert c.cmd("MAIL FROM:<a@example.org>").startswith("250")
    assert c.cmd("DATA").startswith("503")  # DATA without RCPT
    assert c.cmd("MAIL FROM:<b@example.org>").startswith("503")  # nested MAIL
    c.close()
    assert site.alive()


def test_connection_dropped_mid_data_stores_nothing(site: Site) -> None:
    for i in range(5):
        c = site.raw()
        for cmd in ("EHLO x", "MAIL FROM:<a@example.org>", "RCPT TO:<dev@lists.test>", "DATA"):
            c.cmd(cmd)
        c.send(post(f"dropped{i}@example.org")[: 40 + 10 * i])
        # RST
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        c.close()
    assert site.alive()
    assert not [m for m in archived_ids(site.db) if m.startswith("dropped")]


def test_random_dialogues_never_break_the_server(site: Site) -> None:
    """Random command sequences (with junk, odd line ends,
    DATA bodies and drops): every reply well-formed.
    """
    rng = random.Random(7)
    sessions = size(40, 1000)
    completed: set[str] = set()
    for n in range(sessions):
        c = site.raw()
        c.sock.settimeout(10)
        in_data = False
        for _ in range(rng.randrange(1, 16)):
            try:
                reply, in_data = _step(c, rng, n, in_data, completed)
            except OSError:  # the server closed the connection (after junk, a timeout): fine
                break
            assert reply in ("<closed>", "<drop>") or REPLY.match(reply), reply
            if reply in ("<closed>", "<drop>") or reply.startswith(("221", "421")):
                break
        c.close()
    assert site.alive()
    missing = completed - set(archived_ids(site.db))
    assert completed, "no random session completed a post: the fuzz explores nothing"
    record("SMTP dialogue fuzz (random sessions)", sessions, len(missing), 0)
    assert not missing


def _step(
    c: Client, rng: random.Random, n: int, in_data: bool, completed: set[str]
) -> tuple[str, bool]:
    """One random client move; (reply, whether the server now waits for DATA content)."""
    if in_data:
        msgid = f"rnd{n}.{rng.randrange(10**6)}@example.org"
        c.send(post(msgid) + b".\r\n")
        reply = c.reply()
        if reply.startswith("250") and "stored" in reply:  # a null sender's mail is not posted
            completed.add(msgid)
        return reply, False
    pick = rng.random()
    if pick < 0.1:
        junk = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
        # one line: replies stay in step
        c.send(junk.replace(b"\r", b"").replace(b"\n", b"") + b"\r\n")
        return c.reply(), False
    if pick < 0.15:
        return "<drop>", False
    happy = ["EHLO x.example", "MAIL FROM:<a@example.org>", "RCPT TO:<dev@lists.test>", "DATA"]
    if pick < 0.6:  # mostly follow a real transaction, so the fuzz reaches DATA and storage
        step = c.step
        c.step = step + 1
        reply = c.cmd(happy[step % len(happy)])
    else:
        reply = c.cmd(rng.choice(VERBS))
    return reply, reply.startswith("354")
