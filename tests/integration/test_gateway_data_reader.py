"""DATA as clients really send it, over a plain socket: pipelined after the final dot, one byte at a
time, a final dot or a smuggled dot split across TCP segments."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator

import pytest

from tests.support.gateway import Env, RawClient, archived_ids, mail, raw_of

pytestmark = pytest.mark.integration


@contextlib.contextmanager
def _client(env: Env) -> Iterator[RawClient]:
    c = RawClient(env.settings.smtp_port)
    try:
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # small writes, small segments
        assert c.cmd("EHLO client.example").startswith("250")
        yield c
    finally:
        c.close()


def _stuffed(raw: bytes) -> bytes:
    """raw as it travels after the 354 (dot-stuffed), without the final dot."""
    return raw.replace(b"\r\n.", b"\r\n..")


def _envelope(c: RawClient) -> None:
    assert c.cmd("MAIL FROM:<ann@example.org>").startswith("250")
    assert c.cmd("RCPT TO:<dev@lists.test>").startswith("250")
    assert c.cmd("DATA").startswith("354")


def _trickle(c: RawClient, data: bytes, piece: int) -> None:
    for i in range(0, len(data), piece):
        c.send(data[i : i + piece])
        time.sleep(0.0005)


def test_a_pipelined_transaction_after_the_final_dot_and_a_post_sent_byte_by_byte(
    env: Env,
) -> None:
    first = mail(msgid="first@example.org", body="one.\r\n.starts with a dot\r\n..two\r\n\r\n")
    second = mail(msgid="second@example.org", body="slow.\r\n.x\r\n\r\n..\r\nend.\r\n")
    with _client(env) as c:
        _envelope(c)
        # the next transaction's commands in the same write as the final dot (RFC 2920 pipelining)
        c.send(
            _stuffed(first)
            + b".\r\nMAIL FROM:<ann@example.org>\r\nRCPT TO:<dev@lists.test>\r\nDATA\r\n"
        )
        replies = [c.reply() for _ in range(4)]
        assert [r[:3] for r in replies] == ["250", "250", "250", "354"], replies
        _trickle(c, _stuffed(second) + b".\r\n", 1)
        assert c.reply().startswith("250")
        assert c.cmd("QUIT").startswith("221")
    assert sorted(archived_ids(env.db)) == ["first@example.org", "second@example.org"]
    assert raw_of(env.db, "first@example.org") == first
    assert raw_of(env.db, "second@example.org") == second


def test_an_empty_message_and_a_final_dot_split_across_segments_keep_the_session_in_step(
    env: Env,
) -> None:
    with _client(env) as c:
        _envelope(c)
        c.send(b".\r\nNOOP\r\n")  # the first line is the final dot: an empty message
        assert c.reply().startswith("554 5.6.0 Refused: an empty message")  # not an empty post
        assert c.reply().startswith("250")  # the NOOP, not swallowed as message text
        raw = mail(msgid="split@example.org", body="a line.\r\n")
        for cut in (1, 2, 3, 4):  # the final dot's CRLF . CRLF cut after each of its bytes
            c.send(b"RSET\r\n")
            assert c.reply().startswith("250")
            _envelope(c)
            wire = _stuffed(raw) + b".\r\n"
            head, tail = wire[: len(wire) - 5 + cut], wire[len(wire) - 5 + cut :]
            c.send(head)
            time.sleep(0.05)
            c.send(tail + b"NOOP\r\n")
            assert c.reply().startswith("250")  # the first time stored, then already archived
            assert c.reply().startswith("250")
    assert archived_ids(env.db) == ["split@example.org"]


def test_a_smuggled_dot_and_a_long_line_sent_in_pieces_are_refused(env: Env) -> None:
    with _client(env) as c:
        _envelope(c)
        smuggled = mail(msgid="smuggled@example.org", body="a\r\n.\nMAIL FROM:<x@evil.example>\r\n")
        _trickle(c, smuggled + b".\r\n", 3)
        reply = c.reply()
        assert reply.startswith("554 5.5.2") and "smuggling" in reply, reply
        assert c.cmd("RSET").startswith("250")
        _envelope(c)
        long = mail(msgid="long@example.org", body="x" * 120_000 + "\r\nafter\r\n")
        _trickle(c, long + b".\r\n", 7000)  # past the default limit of 100,000
        reply = c.reply()
        assert reply.startswith("552 5.3.4") and "line longer than" in reply, reply
        assert c.cmd("NOOP").startswith("250")
    assert archived_ids(env.db) == []
