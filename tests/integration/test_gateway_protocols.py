"""LMTP, SMTP smuggling, per-client limits and the real `python -m gateway` process."""

from __future__ import annotations

import os
import signal
import smtplib
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from listgate.models import RawMessage
from tests.support.gateway import Env, RawClient, count, mail, messages, raw_of

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def _lmtp_send(client: smtplib.LMTP, rcpts: list[str], raw: bytes) -> list[tuple[int, bytes]]:
    """Send one message over LMTP and read one reply per accepted recipient."""
    client.ehlo_or_helo_if_needed()
    assert client.mail("ann@example.org")[0] == 250
    accepted = [r for r in rcpts if client.rcpt(r)[0] == 250]
    replies = [client.data(raw)]
    replies += [client.getreply() for _ in accepted[1:]]
    return replies


def test_lmtp_answers_one_line_per_recipient(make_env: Callable[..., Env]) -> None:
    e = make_env()
    e.make_list("dev")
    e.make_list("closed", policy="members")
    e.start(lmtp=True)
    with smtplib.LMTP("127.0.0.1", e.settings.smtp_port) as c:
        assert c.ehlo()[0] == 250  # smtplib.LMTP sends LHLO
        assert c.helo()[0] == 500  # LMTP has no HELO
        replies = _lmtp_send(
            c, ["dev@lists.test", "nosuch@lists.test", "closed@lists.test"], mail(msgid="l1@x")
        )
        assert [code for code, _ in replies] == [250, 250]
        assert b"dev@lists.test" in replies[0][1] and b"stored" in replies[0][1]
        assert b"closed@lists.test" in replies[1][1] and b"held" in replies[1][1]
        # the connection is still in step: a second transaction works
        replies = _lmtp_send(c, ["dev@lists.test"], mail(msgid="l2@x"))
        assert replies == [(250, b"2.0.0 <dev@lists.test>: stored")]
    assert sorted(m.message_id for m in messages(e.db)) == ["l1@x", "l1@x", "l2@x"]


def test_lmtp_on_a_unix_socket_refuses_per_recipient(
    make_env: Callable[..., Env], tmp_path: Path
) -> None:
    e = make_env(LISTGATE_MAX_MESSAGE_SIZE="2048")
    e.make_list("dev")
    e.make_list("ops")
    sock = tmp_path / "lmtp.sock"
    e.start(lmtp=True, listen=sock)
    with smtplib.LMTP(str(sock)) as c:
        c.ehlo()
        replies = _lmtp_send(
            c, ["dev@lists.test", "ops@lists.test"], mail(body="y" * 3000 + "\r\n")
        )
        assert [code for code, _ in replies] == [552, 552]
        assert all(text.startswith(b"5.3.4") for _, text in replies)
        replies = _lmtp_send(c, ["dev@lists.test", "ops@lists.test"], mail(msgid="small@x"))
        assert [code for code, _ in replies] == [250, 250]
    assert len(messages(e.db)) == 2


# Every end-of-data look-alike framed by a bare CR or LF is refused, including "CRLF . LF" and
# "CRLF . CR", which dot-unstuffing (RFC 5321 4.5.2) would otherwise turn into an innocent line.
@pytest.mark.parametrize(
    "smuggle,refused",
    [
        (b"\n.\n", True),
        (b"\n.\r\n", True),
        (b"\r.\r", True),
        (b"\r.\r\n", True),
        (b"\r\n.\n", True),
        (b"\r\n.\r", True),
        (b"\r\nx\ny\r\n", False),
    ],
)
def test_smuggled_end_of_data_does_not_end_data(env: Env, smuggle: bytes, refused: bool) -> None:
    c = RawClient(env.settings.smtp_port)
    assert c.cmd("EHLO client.example").startswith("250")
    assert c.cmd("MAIL FROM:<ann@example.org>").startswith("250")
    assert c.cmd("RCPT TO:<dev@lists.test>").startswith("250")
    assert c.cmd("DATA").startswith("354")
    c.send(
        b"From: ann@example.org\r\nSubject: first\r\nMessage-ID: <first@x>\r\n\r\nhello"
        + smuggle
        + b"MAIL FROM:<admin@example.org>\r\nRCPT TO:<dev@lists.test>\r\nDATA\r\n"
        + b"From: admin@example.org\r\nSubject: smuggled\r\nMessage-ID: <smuggled@x>\r\n\r\n"
        b"evil\r\n.\r\n"
    )
    reply = c.reply()
    # exactly one reply for one DATA: the smuggled commands were never run as commands
    assert c.cmd("NOOP").startswith("250")
    c.close()
    stored = messages(env.db)
    if refused:
        assert reply.startswith("554 5.5.2") and "smuggling" in reply
        assert stored == [] and count(env.db, RawMessage) == 0
    else:  # a bare LF away from any dot line is tolerated (as Postfix's default "normalize" does)
        assert reply.startswith("250")
        [msg] = stored
        assert msg.message_id == "first@x" and b"MAIL FROM:<admin@example.org>" in raw_of(
            env.db, "first@x"
        )


def test_dot_stuffed_lines_are_not_smuggling(env: Env) -> None:
    with env.smtp() as c:
        assert (
            c.sendmail(
                "ann@example.org", ["dev@lists.test"], mail(body=".\r\n..two\r\n.\r\nend\r\n")
            )
            == {}
        )
    [msg] = messages(env.db)
    assert raw_of(env.db, msg.message_id).endswith(b"\r\n.\r\n..two\r\n.\r\nend\r\n")


def test_too_many_connections_from_one_address_get_421_others_are_served(
    make_env: Callable[..., Env],
) -> None:
    e = make_env(LISTGATE_MAX_CONNECTIONS_PER_CLIENT="2")
    e.make_list("dev")
    e.start()
    port = e.settings.smtp_port
    first, second = RawClient(port, source="127.0.0.1"), RawClient(port, source="127.0.0.1")
    assert first.greeting.startswith("220") and second.greeting.startswith("220")
    third = RawClient(port, source="127.0.0.1")
    assert third.greeting.startswith("421 4.7.0") and "Too many connections" in third.greeting
    assert third.reply() == "<closed>"
    third.close()
    other = RawClient(port, source="127.0.0.2")  # another client address is still served
    assert other.greeting.startswith("220")
    assert first.cmd("QUIT").startswith("221")
    first.close()
    for _ in range(100):  # the slot frees once the server has seen the close
        again = RawClient(port, source="127.0.0.1")
        if again.greeting.startswith("220"):
            break
        again.close()
        time.sleep(0.05)
    assert again.greeting.startswith("220")
    for c in (second, other, again):
        c.close()


def test_too_many_messages_per_minute_get_451_others_are_served(
    make_env: Callable[..., Env],
) -> None:
    e = make_env(LISTGATE_MAX_MESSAGES_PER_MINUTE="3")
    e.make_list("dev")
    e.start()
    with e.smtp() as c:
        for i in range(3):
            assert c.sendmail("ann@example.org", ["dev@lists.test"], mail(msgid=f"r{i}@x")) == {}
        with pytest.raises(smtplib.SMTPSenderRefused) as err:
            c.sendmail("ann@example.org", ["dev@lists.test"], mail(msgid="r3@x"))
        assert err.value.smtp_code == 451 and b"per minute" in err.value.smtp_error
    with smtplib.SMTP("127.0.0.1", e.settings.smtp_port, source_address=("127.0.0.2", 0)) as other:
        assert other.sendmail("bob@example.org", ["dev@lists.test"], mail(msgid="other@x")) == {}
    assert sorted(m.message_id for m in messages(e.db)) == ["other@x", "r0@x", "r1@x", "r2@x"]


def test_python_m_gateway_runs_as_a_real_process(
    make_env: Callable[..., Env], tmp_path: Path
) -> None:
    e = make_env()
    e.make_list("dev")
    env = {
        **os.environ,
        "LISTGATE_DATA_DIR": str(e.settings.data_dir),
        "LISTGATE_DOMAIN": "lists.test",
        "LISTGATE_SMTP_LISTEN": f"127.0.0.1:{e.settings.smtp_port}",
        "LISTGATE_SECRET_KEY": "test-secret-key-0123456789",
        "LISTGATE_BROKER_URL": f"sqla+sqlite:///{tmp_path / 'broker.sqlite3'}",
    }
    with open(tmp_path / "gateway.log", "wb") as log:  # the child keeps its own descriptor
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        # as long as the suite's other services get to start (tests/support/processes.py): on a
        # busy machine (the suite's own processes side by side) starting Python takes seconds
        deadline = time.monotonic() + 60
        while True:
            try:
                c = smtplib.SMTP("127.0.0.1", e.settings.smtp_port, timeout=10)
                break
            except OSError:
                assert proc.poll() is None, (tmp_path / "gateway.log").read_text()
                assert time.monotonic() < deadline, "python -m gateway did not listen in 60 s"
                time.sleep(0.05)
        with c:
            assert c.sendmail("ann@example.org", ["dev@lists.test"], mail(msgid="proc@x")) == {}
            with pytest.raises(smtplib.SMTPRecipientsRefused):
                c.sendmail("ann@example.org", ["nobody@lists.test"], mail(msgid="proc2@x"))
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    assert [m.message_id for m in messages(e.db)] == ["proc@x"]
    text = (tmp_path / "gateway.log").read_text()
    assert "accepted <proc@x>" in text and "refused RCPT nobody@lists.test" in text
    assert (tmp_path / "broker.sqlite3").exists()  # the fan-out task went to the broker


def test_bad_listen_address_is_a_clean_error(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "LISTGATE_DATA_DIR": str(tmp_path),
        "LISTGATE_SECRET_KEY": "test-secret-key-0123456789",
    }
    out = subprocess.run(
        [sys.executable, "-m", "gateway", "--listen", "nonsense"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (
        out.returncode == 2
        and "expected HOST:PORT or unix:/path" in out.stderr
        and "Traceback" not in out.stderr
    )


def test_an_unmigrated_database_is_a_clean_error(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "LISTGATE_DATA_DIR": str(tmp_path),
        "LISTGATE_SECRET_KEY": "test-secret-key-0123456789",
    }
    out = subprocess.run(
        [sys.executable, "-m", "gateway"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (
        out.returncode == 1
        and "listgate db upgrade" in out.stderr
        and "Traceback" not in out.stderr
    )


def test_the_mta_in_front_of_lmtp_is_not_throttled_strangers_still_are(
    make_env: Callable[..., Env],
) -> None:
    """Issue 18.7: behind Postfix every LMTP connection
    comes from loopback; only untrusted clients are limited.
    """
    limits = {"LISTGATE_MAX_CONNECTIONS_PER_CLIENT": "2", "LISTGATE_MAX_MESSAGES_PER_MINUTE": "3"}
    e = make_env(**limits)
    e.make_list("dev")
    e.start(lmtp=True)  # LISTGATE_TRUSTED_MTAS unset: loopback is trusted in LMTP mode
    conns = [RawClient(e.settings.smtp_port, source="127.0.0.1") for _ in range(4)]
    assert all(c.greeting.startswith("220") for c in conns), [c.greeting for c in conns]
    with smtplib.LMTP("127.0.0.1", e.settings.smtp_port) as lmtp:
        for i in range(6):
            assert [
                code for code, _ in _lmtp_send(lmtp, ["dev@lists.test"], mail(msgid=f"mta{i}@x"))
            ] == [250]
    for c in conns:
        c.close()
    assert len(messages(e.db)) == 6

    # the MTA is elsewhere: loopback is a stranger
    stranger = make_env(LISTGATE_TRUSTED_MTAS="10.0.0.0/8", **limits)
    stranger.make_list("dev")
    stranger.start(lmtp=True)
    conns = [RawClient(stranger.settings.smtp_port, source="127.0.0.1") for _ in range(3)]
    assert [c.greeting[:3] for c in conns] == ["220", "220", "421"]
    for c in conns:
        c.close()
