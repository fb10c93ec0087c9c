"""Per-client limits and message-shape checks, without sockets."""

from __future__ import annotations

import pytest

from gateway.limits import ClientLimits, header_count, mime_depth, shape_problem, smuggling, trusted_networks


def test_connections_per_client_are_bounded_and_released() -> None:
    limits = ClientLimits(max_connections=2, max_per_minute=10)
    assert limits.connect("10.0.0.1") and limits.connect("10.0.0.1")
    assert not limits.connect("10.0.0.1")
    assert limits.connect("10.0.0.2")  # another client is unaffected
    limits.disconnect("10.0.0.1")
    assert limits.connections("10.0.0.1") == 1 and limits.connect("10.0.0.1")


def test_messages_per_minute_slide() -> None:
    now = [1000.0]
    limits = ClientLimits(max_connections=2, max_per_minute=3, clock=lambda: now[0])
    assert all(limits.allow_message("a") for _ in range(3))
    assert not limits.allow_message("a") and limits.allow_message("b")
    now[0] += 61
    assert limits.allow_message("a")


@pytest.mark.parametrize("raw,expected", [
    (b"a\r\n.\r\nb", False),  # a dot-stuffed "..", unstuffed
    (b".\r\nstart", False),
    (b"a\n.\nb", True),
    (b"a\r\n.\nb", True),
    (b"a\n.\r\nb", True),
    (b"a\r.\rb", True),
    (b"a\r\n.. x\r\n", False),
    (b"no dots at all\n", False),
])
def test_smuggling_patterns(raw: bytes, expected: bool) -> None:
    assert smuggling(raw) is expected


def test_header_count_ignores_folded_lines_and_the_body() -> None:
    assert header_count(b"A: 1\r\nB: 2\r\n  folded\r\n\r\nC: not a header\r\n") == 2
    assert header_count(b"\r\nbody only") == 0


def _nested(depth: int, boundary: bytes = b"B") -> bytes:
    out = b"Subject: x\r\n"
    for i in range(depth - 1):
        out += b'Content-Type: multipart/mixed; boundary="%s%d"\r\n\r\n--%s%d\r\n' % (boundary, i, boundary, i)
    out += b"Content-Type: text/plain\r\n\r\nleaf\r\n"
    for i in reversed(range(depth - 1)):
        out += b"--%s%d--\r\n" % (boundary, i)
    return out


def test_mime_depth_counts_nesting_not_siblings() -> None:
    assert mime_depth(b"Subject: x\r\n\r\nplain") == 1
    assert mime_depth(_nested(5)) == 5
    assert mime_depth(_nested(5, b"CaseSensitive")) == 5
    siblings = (b'Content-Type: multipart/mixed; boundary="s"\r\n\r\n' + b"--s\r\nContent-Type: text/plain\r\n\r\nx\r\n" * 100
                + b"--s--\r\n")
    assert mime_depth(siblings) == 2
    attached = (b'Content-Type: multipart/mixed; boundary="o"\r\n\r\n--o\r\nContent-Type: message/rfc822\r\n\r\n'
                b'Subject: inner\r\nContent-Type: multipart/mixed; boundary="i"\r\n\r\n--i\r\n\r\nx\r\n--i--\r\n--o--\r\n')
    assert mime_depth(attached) == 4


def test_shape_problem_names_the_limit() -> None:
    ok = b"A: 1\r\n\r\nbody\r\n"
    assert shape_problem(ok, 10, 1000, 5) is None
    assert shape_problem(b"".join(b"H%d: v\r\n" % i for i in range(11)) + b"\r\n", 10, 1000, 5) == (
        "too-many-headers", "552 5.3.4 Refused: 11 header fields, the limit is 10")
    reason, reply = shape_problem(b"A: " + b"x" * 2000 + b"\r\n\r\n", 10, 1000, 5)  # type: ignore[misc]
    assert reason == "line-too-long" and reply.startswith("552 5.3.4")
    reason, reply = shape_problem(_nested(7), 10, 1000, 5)  # type: ignore[misc]
    assert reason == "mime-too-deep" and reply.startswith("554 5.6.0") and "nested 7 deep" in reply
    assert shape_problem(b"A: 1\r\n\r\nx\n.\nMAIL FROM:<a@b>\r\n", 10, 1000, 5)[0] == "smuggling"  # type: ignore[index]


def test_dot_lines_with_a_bare_end_are_spotted_before_unstuffing() -> None:
    from gateway.limits import dot_line_with_bare_end

    assert dot_line_with_bare_end(b".\nMAIL FROM:<a@b>\r\n") and dot_line_with_bare_end(b".\rDATA\r\n")
    for innocent in (b".\r\n", b"..\r\n", b"..two\r\n", b"text.\n\r\n", b"\r\n"):
        assert not dot_line_with_bare_end(innocent), innocent


def test_trusted_networks_are_exempt_from_every_per_client_limit() -> None:
    limits = ClientLimits(max_connections=1, max_per_minute=1, trusted=["127.0.0.0/8", "2001:db8::/32"])
    for client in ("127.0.0.1", "127.5.5.5", "::ffff:127.0.0.1", "2001:db8::25"):
        assert all(limits.connect(client) for _ in range(5)), client
        assert all(limits.allow_message(client) for _ in range(5)), client
        limits.disconnect(client)
    assert limits.connect("10.1.1.1") and not limits.connect("10.1.1.1")
    assert limits.allow_message("not-an-address") and not limits.allow_message("not-an-address")


def test_loopback_is_trusted_by_default_only_in_lmtp_mode() -> None:
    assert trusted_networks(None, lmtp=True) == ("127.0.0.0/8", "::1/128")
    assert trusted_networks(None, lmtp=False) == ()
    assert trusted_networks(("192.0.2.7/32",), lmtp=True) == ("192.0.2.7/32",)
    assert trusted_networks((), lmtp=True) == ()  # LISTGATE_TRUSTED_MTAS=none
