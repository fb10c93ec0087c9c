"""Bad input in the SMTP/LMTP dialogue gets a clear answer and the session goes on: a DATA with no
header fields is refused (never archived as an empty post), a MAIL FROM or RCPT TO argument the
address parser chokes on gets a 5xx naming it (never "500 Error: (IndexError) ...")."""

from __future__ import annotations

import re
import smtplib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from listgate.status import gather_metrics
from tests.support.gateway import Env, RawClient, archived_ids, dev_gateway, mail

pytestmark = pytest.mark.integration
REPLY = re.compile(r"[2-5]\d\d[ -]")

# DATA contents (before the final dot) with no header field at all, and how each is built.
HEADERLESS = {
    "first line the final dot": b"",
    "one blank line": b"\r\n",
    "blank lines": b"\r\n\r\n\r\n",
    "whitespace lines": b" \r\n\t\r\n  \t \r\n",
    "a blank line, then fields": b"\r\nFrom: ann@example.org\r\nSubject: late\r\n\r\nbody\r\n",
    "text from the first line": b"just some text, no header\r\nsecond line\r\n",
    "continuation lines only": b" folded\r\n\tagain\r\n\r\nbody\r\n",
    "an mbox envelope line only": b"From ann@example.org Mon Nov 30 10:00:00 2026\r\n\r\nbody\r\n",
    "a colon with no field name": b": no name\r\n\r\nbody\r\n",
}


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    """One gateway for the module (a client may send many transactions a minute)."""
    yield from dev_gateway(
        tmp_path_factory.mktemp("bad-input"), LISTGATE_MAX_MESSAGES_PER_MINUTE="100000"
    )


def _refused_counts(env: Env) -> dict[str, int]:
    """Refusals by reason as `listgate status --json` and /metrics (listgate_refused) show them."""
    with env.db() as s:
        return gather_metrics(s).refused


def _envelope(c: RawClient) -> None:
    assert c.cmd("MAIL FROM:<ann@example.org>").startswith("250")
    assert c.cmd("RCPT TO:<dev@lists.test>").startswith("250")
    assert c.cmd("DATA").startswith("354")


def test_a_data_without_header_fields_is_refused_and_the_session_goes_on(env: Env) -> None:
    c = RawClient(env.settings.smtp_port)
    try:
        assert c.cmd("EHLO client.example").startswith("250")
        for what, content in HEADERLESS.items():
            _envelope(c)
            c.send(content + b".\r\nNOOP\r\n")  # the NOOP pipelined after the final dot
            reply = c.reply()
            assert reply.startswith("554 5.6.0 ") and "no header fields" in reply, (what, reply)
            assert c.reply().startswith("250"), what  # the NOOP: still in step
        empty = HEADERLESS["first line the final dot"]
        _envelope(c)
        c.send(empty + b".\r\n")
        assert "an empty message" in c.reply()
        _envelope(c)  # a real post on the same connection is stored
        c.send(mail(msgid="after-empty@example.org") + b".\r\n")
        assert c.reply().startswith("250")
    finally:
        c.close()
    assert archived_ids(env.db) == ["after-empty@example.org"]
    assert _refused_counts(env) == {"no-header": len(HEADERLESS) + 1}


def test_smtplib_sending_an_empty_message_gets_554(env: Env) -> None:
    with env.smtp() as c:
        with pytest.raises(smtplib.SMTPDataError) as err:
            c.sendmail("ann@example.org", ["dev@lists.test"], b"")
        assert err.value.smtp_code == 554 and b"no header fields" in err.value.smtp_error
        assert c.noop()[0] == 250
    assert archived_ids(env.db) == [] and _refused_counts(env) == {"no-header": 1}


def test_lmtp_refuses_an_empty_message_once_per_recipient(
    make_env: Callable[..., Env], tmp_path: Path
) -> None:
    e = make_env()
    e.make_list("dev")
    e.make_list("ops")
    e.start(lmtp=True, listen=tmp_path / "lmtp.sock")
    c = smtplib.LMTP(str(tmp_path / "lmtp.sock"))
    try:
        c.ehlo()
        for raw in (b"", b" \r\n\r\n"):
            assert c.mail("ann@example.org")[0] == 250
            assert c.rcpt("dev@lists.test")[0] == 250 and c.rcpt("ops@lists.test")[0] == 250
            replies = [c.data(raw), c.getreply()]
            assert [code for code, _ in replies] == [554, 554], replies
            assert all(b"5.6.0" in text and b"no header fields" in text for _, text in replies)
        assert c.mail("ann@example.org")[0] == 250
        assert c.rcpt("dev@lists.test")[0] == 250 and c.rcpt("ops@lists.test")[0] == 250
        assert [c.data(mail(msgid="lmtp-ok@x"))[0], c.getreply()[0]] == [250, 250]
    finally:
        c.close()
    assert archived_ids(e.db, "dev") == ["lmtp-ok@x"] and archived_ids(e.db, "ops") == ["lmtp-ok@x"]
    assert _refused_counts(e)["no-header"] == 2


# Path arguments the email package's address parser crashed on (IndexError, AttributeError,
# UnboundLocalError), which aiosmtpd then answered "500 Error: (IndexError) ...".
CRASHERS = ['"', "<", "a@", '"a"@', "a@[", "<a@[1.2.3.4>", '(x)"', ' "', '<"']


def _cmd(c: RawClient, line: bytes) -> str:
    c.send(line + b"\r\n")
    return c.reply()


def _not_a_crash(reply: str) -> None:
    assert REPLY.match(reply) and not reply.startswith("500"), reply
    assert "Error: (" not in reply, reply  # no Python exception name


@pytest.mark.parametrize("arg", CRASHERS)
def test_a_path_the_parser_chokes_on_gets_553_and_the_session_goes_on(gw: Env, arg: str) -> None:
    c = RawClient(gw.settings.smtp_port)
    try:
        assert c.cmd("EHLO client.example").startswith("250")
        assert c.cmd(f"VRFY {arg}") == f"502 Could not VRFY {arg.strip()}"  # the same reader
        reply = c.cmd(f"MAIL FROM:{arg}")
        assert reply == "553 5.1.3 Error: malformed address", reply
        assert c.cmd("MAIL FROM:<ann@example.org>").startswith("250")
        reply = c.cmd(f"RCPT TO:{arg}")
        assert reply == "553 5.1.3 Error: malformed address", reply
        assert c.cmd("RCPT TO:<dev@lists.test>").startswith("250")
        msgid = f"after-bad-path-{CRASHERS.index(arg)}@example.org"
        assert c.cmd("DATA").startswith("354")
        c.send(mail(msgid=msgid) + b".\r\n")
        assert c.reply().startswith("250")
    finally:
        c.close()
    assert msgid in archived_ids(gw.db)


def test_a_recipient_that_is_not_utf8_is_refused_showing_its_bytes(gw: Env) -> None:
    c = RawClient(gw.settings.smtp_port)
    try:
        assert c.cmd("EHLO client.example").startswith("250")
        assert c.cmd("MAIL FROM:<ann@example.org>").startswith("250")
        reply = _cmd(c, b"RCPT TO:<d\xe9v@lists.test>")  # Latin-1, not UTF-8
        assert reply == "550 5.1.1 <d\\xe9v@lists.test>: not a list address at lists.test", reply
        assert c.cmd("RCPT TO:<dev@lists.test>").startswith("250")
        assert c.cmd("RSET").startswith("250")
    finally:
        c.close()


# Pieces that shape a path (quotes, brackets, comments, escapes, separators, a literal, a
# parameter), any other text and bytes that are not UTF-8, strung together on one line.
_PATH_PIECES = st.one_of(
    st.sampled_from(list('"<>@\\()[]:;,. \t') + ["a", "b.example", "1.2.3.4", '""', "é", "SIZE=1"]),
    st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\r\n"), max_size=3),
).map(str.encode) | st.binary(max_size=2).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))


@pytest.mark.long(37)
def test_any_path_argument_gets_a_reply_that_is_not_a_crash(gw: Env) -> None:
    """For any argument text, MAIL and RCPT answer 2xx/4xx/5xx but never aiosmtpd's "500 Error",
    and the connection stays usable."""
    c = RawClient(gw.settings.smtp_port)
    assert c.cmd("EHLO client.example").startswith("250")

    @hsettings(
        max_examples=400, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(arg=st.lists(_PATH_PIECES, max_size=10).map(b"".join))
    @example(arg=b'"')  # each known crash is tried, whatever the draw
    @example(arg=b"a@")
    @example(arg=b"<a@[")
    def check(arg: bytes) -> None:
        _not_a_crash(_cmd(c, b"MAIL FROM:" + arg))
        assert c.cmd("RSET").startswith("250")
        assert c.cmd("MAIL FROM:<ann@example.org>").startswith("250")
        _not_a_crash(_cmd(c, b"RCPT TO:" + arg))
        assert c.cmd("RSET").startswith("250")

    try:
        check()
        assert c.cmd("MAIL FROM:<ann@example.org>").startswith("250")
        assert c.cmd("RCPT TO:<dev@lists.test>").startswith("250")
        assert c.cmd("DATA").startswith("354")
        c.send(mail(msgid="after-fuzzed-paths@example.org") + b".\r\n")
        assert c.reply().startswith("250")
    finally:
        c.close()
    assert "after-fuzzed-paths@example.org" in archived_ids(gw.db)
