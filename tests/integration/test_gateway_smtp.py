"""The gateway over real SMTP (aiosmtpd + smtplib on loopback), asserting on the archive."""

from __future__ import annotations

import smtplib
import ssl
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import pytest
from sqlalchemy import select

from listgate import counters, lists
from listgate.db import transaction
from listgate.dispatch import FANOUT, HANDLE_BOUNCE, HANDLE_COMMAND, NOTIFY_MODERATORS, SEND_NOTICE
from listgate.models import Message, NotPosted, RawMessage
from tests.support.gateway import Env, count, mail, messages, outbox_kinds

pytestmark = pytest.mark.integration


def test_unknown_addresses_are_refused_at_rcpt_and_nothing_is_queued(env: Env) -> None:
    with env.smtp() as c:
        c.ehlo()
        c.mail("ann@example.org")
        assert c.rcpt("nobody@lists.test")[0] == 550
        code, text = c.rcpt("dev@elsewhere.example")
        assert code == 550 and b"5.1.1" in text
        assert c.rcpt("dev+nonsense@lists.test")[0] == 550
        c.rset()
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            c.sendmail("ann@example.org", ["nobody@lists.test"], mail())
    assert messages(env.db) == [] and outbox_kinds(env.db) == []


def test_a_post_to_two_lists_is_stored_in_both_and_fanned_out_after_commit(env: Env) -> None:
    env.make_list("ops")
    with env.smtp() as c:
        refused = c.sendmail(
            "ann@example.org", ["dev@lists.test", "OPS@Lists.Test"], mail(msgid="two@example.org")
        )
    assert refused == {}
    stored = messages(env.db)
    assert sorted(m.list_id for m in stored) == [1, 2]
    assert {m.message_id for m in stored} == {"two@example.org"}
    assert count(env.db, RawMessage) == 1  # the exact bytes, once
    assert env.gw is not None and env.gw.enqueued.kinds(expected=2) == [FANOUT, FANOUT]


def test_the_same_message_id_again_gets_250_and_no_second_copy(env: Env) -> None:
    with env.smtp() as c:
        c.sendmail("ann@example.org", ["dev@lists.test"], mail(msgid="again@example.org"))
        c.sendmail(
            "ann@example.org", ["dev@lists.test"], mail(msgid="again@example.org", body="retry\r\n")
        )
    assert len(messages(env.db)) == 1
    assert env.gw is not None and env.gw.enqueued.kinds(expected=1) == [FANOUT]


def test_exact_bytes_are_kept(env: Env) -> None:
    raw = (
        b"From: ann@example.org\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\n"
        b"Message-ID: <bytes@example.org>\r\n\r\n"
        b"caf\xe9 in latin-1\r\n.leading dot\r\nend\r\n"
    )
    with env.smtp() as c:
        c.sendmail("ann@example.org", ["dev@lists.test"], raw)
    with env.db() as s:
        msg = s.scalars(select(Message)).one()
        assert msg.raw.data == raw
        assert msg.subject == "café"


def test_size_is_advertised_and_bigger_mail_gets_552_5_3_4(make_env: Callable[..., Env]) -> None:
    e = make_env(LISTGATE_MAX_MESSAGE_SIZE="4096")
    e.make_list("dev")
    e.start()
    with e.smtp() as c:
        c.ehlo()
        assert c.has_extn("size") and c.esmtp_features["size"] == "4096"
        assert c.has_extn("smtputf8") and c.has_extn("8bitmime")
        assert not c.has_extn("starttls")
        code, text = c.mail("ann@example.org", ["SIZE=10000"])
        assert (code, text[:5]) == (552, b"5.3.4")
        c.rset()
        c.mail("ann@example.org")  # no SIZE declared: the limit bites during DATA
        c.rcpt("dev@lists.test")
        code, text = c.data(mail(body="x" * 900 + "\r\n") * 6)
        assert (code, text[:5]) == (552, b"5.3.4")
        # the same connection still works
        assert c.sendmail("ann@example.org", ["dev@lists.test"], mail()) == {}
    assert len(messages(e.db)) == 1


@pytest.mark.parametrize(
    "body,code,words",
    [
        ("".join(f"X-H{i}: v\r\n" for i in range(30)), 552, b"header fields"),
        ("X-Long: " + "a" * 1500 + "\r\n", 552, b"line"),
    ],
)
def test_header_count_and_line_length_limits(
    make_env: Callable[..., Env], body: str, code: int, words: bytes
) -> None:
    e = make_env(LISTGATE_MAX_HEADERS="20", LISTGATE_MAX_LINE_LENGTH="1000")
    e.make_list("dev")
    e.start()
    with e.smtp() as c:
        with pytest.raises(smtplib.SMTPDataError) as err:
            c.sendmail("ann@example.org", ["dev@lists.test"], mail(extra=body))
        assert err.value.smtp_code == code and words in err.value.smtp_error
        assert c.sendmail("ann@example.org", ["dev@lists.test"], mail()) == {}
    assert len(messages(e.db)) == 1


def _nested(depth: int) -> bytes:
    head = (
        b"From: ann@example.org\r\nSubject: nested\r\nMessage-ID: <nest%d@example.org>\r\n"
        b"MIME-Version: 1.0\r\n" % depth
    )
    out = b""
    for i in range(depth - 1):
        out += b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i)
    out += b"Content-Type: text/plain\r\n\r\ndeep inside\r\n"
    for i in reversed(range(depth - 1)):
        out += b"--b%d--\r\n" % i
    return head + out


def test_mime_nesting_limit(make_env: Callable[..., Env]) -> None:
    e = make_env(LISTGATE_MAX_MIME_DEPTH="10")
    e.make_list("dev")
    e.start()
    with e.smtp() as c:
        with pytest.raises(smtplib.SMTPDataError) as err:
            c.sendmail("ann@example.org", ["dev@lists.test"], _nested(12))
        assert err.value.smtp_code == 554 and b"nested 12 deep" in err.value.smtp_error
        assert c.sendmail("ann@example.org", ["dev@lists.test"], _nested(9)) == {}
    [msg] = messages(e.db)
    assert "deep inside" in msg.body_text


def test_smtputf8_and_8bit_mail(env: Env) -> None:
    raw = (
        "From: Jörg <jörg@example.org>\r\nSubject: Grüße aus Köln\r\n"
        "Message-ID: <ü@example.org>\r\n"
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        "Schöne Grüße\r\n"
    ).encode()
    with env.smtp() as c:
        c.ehlo()
        assert (
            c.sendmail(
                "jörg@example.org",
                ["dev@lists.test"],
                raw,
                mail_options=["SMTPUTF8", "BODY=8BITMIME"],
            )
            == {}
        )
    [msg] = messages(env.db)
    assert (
        msg.subject == "Grüße aus Köln"
        and "Schöne Grüße" in msg.body_text
        and msg.from_addr == "jörg@example.org"
    )


def _certificate(cert: Path, key: Path, name: str = "lists.test") -> None:
    """A self-signed certificate for CN=name and its key, written to cert and key."""
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            f"/CN={name}",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )


def _starttls_names(e: Env, cafile: Path, msgid: str) -> str:
    """Post over a fresh STARTTLS session; the common name of the certificate the gateway showed."""
    ctx = ssl.create_default_context(cafile=str(cafile))
    ctx.check_hostname = False
    with e.smtp() as c:
        c.ehlo()
        assert c.has_extn("starttls")
        assert c.starttls(context=ctx)[0] == 220
        c.ehlo()
        assert not c.has_extn("starttls")
        assert c.sendmail("ann@example.org", ["dev@lists.test"], mail(msgid=msgid)) == {}
        sock = c.sock
        assert isinstance(sock, ssl.SSLSocket)
        peer = sock.getpeercert()
    assert peer is not None
    # getpeercert()'s subject: relative distinguished names, each of (name, value) pairs
    subject = cast(tuple[tuple[tuple[str, str], ...], ...], peer["subject"])
    return dict(pair[0] for pair in subject)["commonName"]


def test_starttls_with_a_configured_certificate(
    make_env: Callable[..., Env], tmp_path: Path
) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    _certificate(cert, key)
    e = make_env(LISTGATE_TLS_CERT=str(cert), LISTGATE_TLS_KEY=str(key))
    e.make_list("dev")
    e.start()
    assert _starttls_names(e, cert, "tls@example.org") == "lists.test"
    assert [m.message_id for m in messages(e.db)] == ["tls@example.org"]


def test_a_renewed_certificate_is_served_without_a_restart_and_a_broken_one_is_not(
    make_env: Callable[..., Env], tmp_path: Path
) -> None:
    """The context is built once, and again when the files change (a renewal); a pair that does
    not load (the certificate replaced, the key not yet) leaves STARTTLS on the last good pair."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    _certificate(cert, key, "old.lists.test")
    e = make_env(LISTGATE_TLS_CERT=str(cert), LISTGATE_TLS_KEY=str(key))
    e.make_list("dev")
    e.start()
    assert _starttls_names(e, cert, "tls1@example.org") == "old.lists.test"
    assert _starttls_names(e, cert, "tls2@example.org") == "old.lists.test"

    renewed = tmp_path / "renewed"
    renewed.mkdir()
    _certificate(renewed / "cert.pem", renewed / "key.pem", "new.lists.test")
    old_cert = tmp_path / "old-cert.pem"
    old_cert.write_bytes(cert.read_bytes())
    (renewed / "cert.pem").replace(cert)  # the certificate first: it does not match the old key
    assert _starttls_names(e, old_cert, "tls3@example.org") == "old.lists.test"
    (renewed / "key.pem").replace(key)
    assert _starttls_names(e, cert, "tls4@example.org") == "new.lists.test"

    new_cert = tmp_path / "new-cert.pem"
    new_cert.write_bytes(cert.read_bytes())
    cert.write_text("not a certificate\n")  # broken: the renewed pair stays in use
    assert _starttls_names(e, new_cert, "tls5@example.org") == "new.lists.test"
    assert sorted(m.message_id for m in messages(e.db)) == [
        f"tls{i}@example.org" for i in range(1, 6)
    ]


def test_a_certificate_that_does_not_load_stops_the_start_naming_the_files(
    make_env: Callable[..., Env], tmp_path: Path
) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_text("not a certificate\n")
    key.write_text("not a key\n")
    e = make_env(LISTGATE_TLS_CERT=str(cert), LISTGATE_TLS_KEY=str(key))
    with pytest.raises(OSError, match=f"cannot load the TLS certificate {cert} with the key {key}"):
        e.start()


def test_storage_failure_answers_451_and_stores_nothing(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    from listgate.spool import Spool, Spooled

    def broken(spool: Spool, mails: list[Spooled]) -> None:
        with (
            spool.engine.begin() as conn
        ):  # the row is written, then the disk "fails" before the commit
            conn.execute(
                spool.table.insert(),
                [
                    {
                        "received_at": datetime.now(UTC),
                        "mail_from": "",
                        "rcpt_tos": "x",
                        "message_id": "",
                        "counts": "",
                        "raw": b"x",
                        "state": "pending",
                        "reason": "",
                    }
                ],
            )
            raise OSError("disk full")

    real = Spool.append
    monkeypatch.setattr(Spool, "append", broken)
    env.make_list("ops")
    with env.smtp() as c:
        with pytest.raises(smtplib.SMTPDataError) as err:
            c.sendmail(
                "ann@example.org",
                ["dev@lists.test", "ops@lists.test"],
                mail(msgid="fail@example.org"),
            )
        error = err.value.smtp_error
        assert err.value.smtp_code == 451
        assert isinstance(error, bytes) and error.startswith(b"4.3.0")
    assert messages(env.db) == [] and count(env.db, RawMessage) == 0 and outbox_kinds(env.db) == []
    monkeypatch.setattr(Spool, "append", real)
    with env.smtp() as c:  # the sending server retries
        assert (
            c.sendmail(
                "ann@example.org",
                ["dev@lists.test", "ops@lists.test"],
                mail(msgid="fail@example.org"),
            )
            == {}
        )
    assert len(messages(env.db)) == 2


def test_command_addresses_are_queued_never_archived(env: Env) -> None:
    with env.smtp() as c:
        for rcpt in (
            "dev+subscribe@lists.test",
            "dev+unsubscribe@lists.test",
            "dev+help@lists.test",
            "dev+confirm-abcd1234@lists.test",
        ):
            assert c.sendmail("ann@example.org", [rcpt], mail(msgid=f"{rcpt}@x")) == {}
        assert (
            c.sendmail(
                "<>",
                ["dev+bounce-tok3n@lists.test"],
                mail(msgid="bounce@x", frm="MAILER-DAEMON@mx.example"),
            )
            == {}
        )
    assert messages(env.db) == []
    assert outbox_kinds(env.db) == [HANDLE_COMMAND] * 4 + [HANDLE_BOUNCE]
    assert env.gw is not None
    assert env.gw.enqueued.kinds(expected=5) == [HANDLE_COMMAND] * 4 + [HANDLE_BOUNCE]


@pytest.mark.parametrize(
    "sender,extra",
    [
        ("<>", ""),
        ("ann@example.org", "Auto-Submitted: auto-replied\r\n"),
        ("ann@example.org", "Precedence: auto_reply\r\n"),
        ("ann@example.org", "X-Autoreply: yes\r\n"),
        ("ann@example.org", "X-Listgate-Loop: lists.test\r\n"),
    ],
)
def test_automatic_mail_is_accepted_but_never_posted(env: Env, sender: str, extra: str) -> None:
    with env.smtp() as c:
        assert c.sendmail(sender, ["dev@lists.test"], mail(extra=extra)) == {}
    assert messages(env.db) == [] and outbox_kinds(env.db) == []
    with env.db() as s:
        assert counters.values(s, counters.REFUSED).get("automatic") == 1
        kept = s.scalars(
            select(NotPosted)
        ).one()  # not dropped: kept for the moderators with its reason
        assert kept.reason and kept.message_id == "m1@example.org"


def test_precedence_bulk_mail_is_posted(env: Env) -> None:
    with env.smtp() as c:
        assert (
            c.sendmail(
                "owner-other@example.com", ["dev@lists.test"], mail(extra="Precedence: bulk\r\n")
            )
            == {}
        )
    assert [m.message_id for m in messages(env.db)] == ["m1@example.org"]


def test_members_policy_holds_a_non_member_post_and_tells_the_sender_once(env: Env) -> None:
    env.make_list("members", policy="members")
    with transaction(env.db) as s:
        lists.subscribe(s, lists.require(s, "members"), "bob@example.org")
    with env.smtp() as c:
        c.sendmail(
            "bob@example.org", ["members@lists.test"], mail(msgid="bob@x", frm="bob@example.org")
        )
        c.sendmail(
            "eve@example.org", ["members@lists.test"], mail(msgid="eve@x", frm="eve@example.org")
        )
        # a retry
        c.sendmail(
            "eve@example.org", ["members@lists.test"], mail(msgid="eve@x", frm="eve@example.org")
        )
    status = {m.message_id: m.status for m in messages(env.db)}
    assert status == {"bob@x": "visible", "eve@x": "held"}
    assert outbox_kinds(env.db) == [
        FANOUT,
        SEND_NOTICE,
        NOTIFY_MODERATORS,
    ]  # the retry queues nothing more


def test_moderated_policy_holds_everyone_but_moderators(env: Env) -> None:
    env.make_list("mod", policy="moderated", moderators="boss@example.org")
    with env.smtp() as c:
        c.sendmail("ann@example.org", ["mod@lists.test"], mail(msgid="a@x"))
        c.sendmail(
            "boss@example.org", ["mod@lists.test"], mail(msgid="b@x", frm="boss@example.org")
        )
    assert {m.message_id: m.status for m in messages(env.db)} == {"a@x": "held", "b@x": "visible"}


def test_counters_count_received_stored_and_refused(env: Env) -> None:
    with env.smtp() as c:
        c.sendmail("ann@example.org", ["dev@lists.test"], mail(msgid="c1@x"))
        c.sendmail("ann@example.org", ["dev@lists.test"], mail(msgid="c1@x"))
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            c.sendmail("ann@example.org", ["nope@lists.test"], mail(msgid="c2@x"))
    with env.db() as s:
        assert counters.total(s, counters.RECEIVED) == 2
        assert counters.total(s, counters.STORED) == 1
        assert counters.values(s, counters.REFUSED) == {"unknown-list": 1}


def test_a_banned_sender_gets_550_and_nothing_is_stored_or_queued(env: Env) -> None:
    from listgate.models.web import Ban

    with transaction(env.db) as s:
        s.add(Ban(list_id=lists.require(s, "dev").id, address="troll@example.org", reason="abuse"))
    with env.smtp() as c:
        with pytest.raises(smtplib.SMTPDataError) as refused:
            c.sendmail(
                "troll@example.org", ["dev@lists.test"], mail(msgid="t1@x", frm="troll@example.org")
            )
        assert c.sendmail("ann@example.org", ["dev@lists.test"], mail(msgid="a1@x")) == {}
    assert refused.value.smtp_code == 550
    assert b"troll@example.org is banned from posting to this list" in refused.value.smtp_error
    assert [m.message_id for m in messages(env.db)] == ["a1@x"]
    assert outbox_kinds(env.db) == [FANOUT]
    with env.db() as s:
        assert counters.values(s, counters.REFUSED).get("banned") == 1
