"""Each connection keeps its own command line limits (aiosmtpd keeps them in one dict of the class).

aiosmtpd raises the MAIL line limit at each EHLO (by 26 for SIZE, 10 for SMTPUTF8, which the
gateway advertises) in `SMTP.command_size_limits`, a dict of the class that every connection
shares, and clears it when any connection is made. So one client's EHLOs raised every other
client's limit (each EHLO by 36, without end: a MAIL line of any length up to the line limit is
then read), and a new connection took back the room a client's EHLO had given it (its MAIL with
SIZE and SMTPUTF8 refused "500 Line too long"). Here, over real SMTP, each keeps its own.
"""

from __future__ import annotations

import pytest

from tests.support.gateway import Env, RawClient, archived_ids

pytestmark = pytest.mark.integration
BASE = 512  # aiosmtpd's command line limit (RFC 5321's)
EHLO_ROOM = 26 + 10  # what EHLO adds to MAIL's limit: SIZE=, SMTPUTF8
PARAMS = " SIZE=100 SMTPUTF8"


def _mail_line(length: int) -> str:
    """A MAIL command `length` bytes long (before its CRLF), with SIZE and SMTPUTF8."""
    local = "a" * (length - len("MAIL FROM:<@example.org>" + PARAMS))
    line = f"MAIL FROM:<{local}@example.org>{PARAMS}"
    assert len(line) == length
    return line


def _post(c: RawClient, mail_line: str, msgid: str) -> list[str]:
    replies = [c.cmd(mail_line), c.cmd("RCPT TO:<dev@lists.test>"), c.cmd("DATA")]
    body = f"From: ann@example.org\r\nSubject: s\r\nMessage-ID: <{msgid}>\r\n\r\nhi\r\n.\r\n"
    c.send(body.encode())
    return [r[:3] for r in [*replies, c.reply()]]


def test_a_new_connection_leaves_an_earlier_clients_mail_limit_alone(env: Env) -> None:
    first = RawClient(env.settings.smtp_port)
    later: RawClient | None = None
    try:
        assert first.cmd("EHLO first.example").startswith("250")
        later = RawClient(env.settings.smtp_port)  # another client connects meanwhile
        assert later.greeting.startswith("220")
        # within the room first's EHLO gave MAIL (SIZE and SMTPUTF8 parameters)
        replies = _post(first, _mail_line(BASE + EHLO_ROOM), "first@example.org")
    finally:
        first.close()
        if later is not None:
            later.close()
    assert replies == ["250", "250", "354", "250"], replies
    assert archived_ids(env.db) == ["first@example.org"]


def test_one_clients_ehlos_do_not_raise_another_clients_limit(env: Env) -> None:
    other = RawClient(env.settings.smtp_port)
    greedy = RawClient(env.settings.smtp_port)
    try:
        assert other.cmd("EHLO other.example").startswith("250")
        for _ in range(50):  # each EHLO: aiosmtpd adds 36 to the MAIL limit
            assert greedy.cmd("EHLO greedy.example").startswith("250")
        too_long = _mail_line(BASE + EHLO_ROOM + 1)
        refused = other.cmd(too_long)
        greedy_refused = greedy.cmd(too_long)  # its own EHLOs do not add up either
        assert other.cmd("RSET").startswith("250")  # the session goes on
    finally:
        other.close()
        greedy.close()
    expected = f"500 5.5.2 Line too long: a command line may have at most {BASE + EHLO_ROOM} bytes"
    assert refused == expected, refused
    assert greedy_refused == expected, greedy_refused
