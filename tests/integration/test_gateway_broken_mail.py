"""Real-world broken mail through a real SMTP session: stored with what could be parsed, or
refused with a clear code; the server never dies and never answers 250 for what it did not keep."""

from __future__ import annotations

import base64
import re
import smtplib
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from listgate.mail.parser import parse
from listgate.models import Attachment, Blob, Message, MessageVariant
from tests.support.config import DATA
from tests.support.corpora import corpus
from tests.support.gateway import Env, count, dev_gateway

pytestmark = pytest.mark.integration
MAIL = DATA / "mail"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    """One gateway for the whole corpus: it must survive all of it."""
    yield from dev_gateway(
        tmp_path_factory.mktemp("broken"), LISTGATE_MAX_MESSAGES_PER_MINUTE="10000"
    )


def crlf(data: bytes) -> bytes:
    """Line ends as they travel over SMTP."""
    return re.sub(rb"\r?\n", b"\r\n", data)


def send(env: Env, data: bytes, sender: str = "someone@example.org") -> tuple[int, bytes]:
    """One SMTP transaction without a SIZE declaration; (code, text) of the DATA reply."""
    with env.smtp() as c:
        c.ehlo()
        assert c.mail(sender)[0] == 250
        assert c.rcpt("dev@lists.test")[0] == 250
        code, text = c.data(data)
        assert c.noop()[0] == 250  # the session is still in step
    return code, text


def stored(env: Env, message_id: str) -> Message | None:
    with env.db() as s:
        return s.scalars(select(Message).where(Message.message_id == message_id)).first()


def assert_kept_or_refused(env: Env, data: bytes) -> tuple[int, Message | None]:
    """The invariant: 250 means archived with exactly these bytes; anything else is a clear 5xx."""
    code, text = send(env, data)
    msg = stored(env, parse(data).message_id)
    if code == 250:
        assert msg is not None, f"250 but not archived: {text!r}"
        with env.db() as s:
            if b"already archived" in text:  # the same bytes again: kept once
                return code, msg
            # SMTP ends DATA on a line end
            sent = data if data.endswith(b"\r\n") else data + b"\r\n"
            if (
                b"stored beside" in text
            ):  # a corpus reuses a Message-ID with other bytes: kept as a variant
                variants = s.scalars(
                    select(MessageVariant).where(MessageVariant.message_pk == msg.id)
                ).all()
                assert sent in [v.raw.data for v in variants]
                return code, msg
            row = s.get(Message, msg.id)
            assert row is not None and row.raw.data == sent
    else:
        assert 500 <= code < 600 and re.match(rb"5\.\d\.\d ", text), (code, text)
    return code, msg


def _mail_files() -> list[Path]:
    return sorted(MAIL.glob("*.eml"))


@pytest.mark.parametrize("path", _mail_files(), ids=lambda p: p.stem)
def test_every_broken_message_is_kept_or_refused_clearly(env: Env, path: Path) -> None:
    code, msg = assert_kept_or_refused(env, crlf(path.read_bytes()))
    assert code == 250  # everything in the hand-written corpus is worth keeping
    assert msg is not None and msg.status == "visible"


def test_what_could_be_parsed_is_what_a_reader_sees(env: Env) -> None:
    for path in _mail_files():
        send(env, crlf(path.read_bytes()))
    found = {p.stem: stored(env, parse(crlf(p.read_bytes())).message_id) for p in _mail_files()}
    m = {name: row for name, row in found.items() if row is not None}
    assert m.keys() == found.keys()  # every file was stored
    assert m["folded-message-id"].message_id == "folded.id.1234567890@mail.example.org"
    assert (
        m["folded-inside-message-id"].message_id
        == "very-long-local-part-that-someone-folded.in.the.middle@mail.example.org"
    )
    assert m["duplicated-message-id"].message_id == "first-of-two@example.org"
    assert "\x00" not in m["nul-bytes"].subject and "NUL" in m["nul-bytes"].body_text
    assert (m["8bit-headers-latin1"].subject, m["8bit-headers-latin1"].from_name) == (
        "Grüße aus Köln",
        "Jörg Müller",
    )
    assert m["8bit-headers-utf8"].subject == "naïve café ☕ without encoded words"
    assert (
        "café" in m["unknown-charset"].body_text and "CharsetDefect" in m["unknown-charset"].defects
    )
    assert (
        m["lying-charset"].body_text.count("café") == 2
        and m["lying-charset"].subject == "café says ascii"
    )
    assert m["rfc2047-words"].from_name == "René André" and m["rfc2047-words"].subject.startswith(
        "Ça va €"
    )
    assert "still worth keeping" in m["broken-boundary"].body_text
    assert "plain part" in m["unclosed-multipart"].body_text
    gen = m["no-from-date-msgid"]
    assert (
        gen.message_id_generated
        and gen.message_id.endswith("@generated.listgate.invalid")
        and gen.from_addr == ""
    )
    for name in ("absurd-date", "garbage-date"):
        # arrival used, header kept
        assert m[name].date.year == m[name].received_at.year and m[name].date_header
    assert m["absurd-date"].date_header.startswith("Fri, 31 Dec 2999")
    assert m["junk-references"].parent_id == m["folded-message-id"].id
    assert "deepest text" in m["deeply-nested-mime"].body_text
    assert "original body" in m["message-rfc822-attached"].body_text
    assert "<b>HTML</b>" in m["html-only"].body_html
    assert "text after the inner closing delimiter" in m["reused-boundary"].body_text
    assert "html of the alternative" in m["reused-boundary"].body_html
    with env.db() as s:
        files = {
            name: [
                (a.filename, a.content_type)
                for a in s.scalars(
                    select(Attachment)
                    .where(Attachment.message_pk == m[name].id)
                    .order_by(Attachment.position)
                )
            ]
            for name in ("empty-filename", "unnamed-inline-image", "reused-boundary")
        }
        assert files == {  # nothing a reader could not open, or could not find
            "empty-filename": [
                ("attachment-1.pdf", "application/pdf"),
                ("attachment-2.png", "image/png"),
            ],
            "unnamed-inline-image": [("attachment-1.png", "image/png")],
            "reused-boundary": [("agenda.pdf", "application/pdf")],
        }
        atts = s.scalars(
            select(Attachment).where(Attachment.message_pk == m["same-attachment-twice"].id)
        ).all()
        assert [a.filename for a in atts] == ["data.bin", "copy.bin"] and len(
            {a.sha256 for a in atts}
        ) == 1
        blob = s.get(Blob, atts[0].sha256)
        assert blob is not None and blob.data == bytes(range(256)) * 4  # stored once, byte-exact


def test_a_100_kb_header_line_is_refused_with_a_clear_code(env: Env) -> None:
    data = (
        b"From: a@example.org\r\nSubject: long\r\nMessage-ID: <long-line@x>\r\nX-Long: "
        + b"a" * 102_400
        + b"\r\n\r\nbody\r\n"
    )
    code, msg = assert_kept_or_refused(env, data)
    assert code == 552 and msg is None


def test_too_deep_mime_is_refused_and_the_server_goes_on(env: Env) -> None:
    parts = b"".join(
        b'Content-Type: multipart/mixed; boundary="d%d"\r\n\r\n--d%d\r\n' % (i, i)
        for i in range(70)
    )
    data = (
        b"From: a@example.org\r\nSubject: deep\r\nMessage-ID: <too-deep@x>\r\nMIME-Version: 1.0\r\n"
        + parts
        + b"Content-Type: text/plain\r\n\r\nx\r\n"
    )
    code, msg = assert_kept_or_refused(env, data)
    assert code == 554 and msg is None
    assert send(env, crlf((MAIL / "empty-body.eml").read_bytes()))[0] == 250


def _big(mb: int) -> bytes:
    payload = base64.encodebytes(bytes(range(256)) * (mb * 4096))
    return (
        (
            b"From: big@example.org\r\nSubject: big attachment\r\nMessage-ID: <big-%d@x>\r\n"
            b"MIME-Version: 1.0\r\n"
            b'Content-Type: multipart/mixed; boundary="big"\r\n\r\n--big\r\n'
            b"Content-Type: text/plain\r\n\r\nsee file\r\n"
            b"--big\r\nContent-Type: application/octet-stream\r\n"
            b'Content-Disposition: attachment; filename="big.bin"\r\n'
            b"Content-Transfer-Encoding: base64\r\n\r\n" % mb
        )
        + crlf(payload)
        + b"--big--\r\n"
    )


def test_a_20_mb_attachment_over_the_default_limit_is_refused_with_552(env: Env) -> None:
    data = _big(20)  # 27 MB once base64-encoded, over the 25 MB default
    with env.smtp() as c:  # smtplib declares SIZE: the refusal comes before any data is sent
        with pytest.raises(smtplib.SMTPSenderRefused) as err:
            c.sendmail("big@example.org", ["dev@lists.test"], data)
        assert err.value.smtp_code == 552 and err.value.smtp_error.startswith(
            b"5.3.4 Message too big"
        )
    assert stored(env, "big-20@x") is None


def test_a_20_mb_attachment_under_a_raised_limit_is_stored_once(tmp_path: Path) -> None:
    e = Env(tmp_path, LISTGATE_MAX_MESSAGE_SIZE=str(40 * 1024 * 1024))
    e.make_list("dev")
    e.start()
    try:
        data = _big(20)
        code, msg = assert_kept_or_refused(e, data)
        assert code == 250 and msg is not None
        with e.db() as s:
            [att] = s.scalars(select(Attachment).where(Attachment.message_pk == msg.id)).all()
            assert (att.filename, att.size) == ("big.bin", 20 * 1024 * 1024)
        assert count(e.db, Blob) == 1
    finally:
        e.close()


def _corpus_files() -> list[Path]:
    files = sorted(corpus("hyperkitty-testdata").glob("*.txt")) + sorted(
        corpus("mailman-eml", "eml").glob("*.eml")
    )
    return [f for f in files if f.name != "SOURCE.txt"]


def test_every_message_of_the_shared_corpora_through_smtp(env: Env) -> None:
    files = _corpus_files()
    assert len(files) >= 30
    kept = 0
    for path in files:
        data = path.read_bytes()
        if (
            data.startswith(b"From ") and b"\n" in data
        ):  # an mbox "From " line is not part of the message
            data = data.split(b"\n", 1)[1]
        # These were archived from lists, so they say "Precedence: list": a live gateway would
        # (rightly) not repost them. Rename that header so each one exercises the parser.
        data = re.sub(rb"(?im)^(precedence|auto-submitted):", rb"X-Was-\1:", data)
        code, _ = assert_kept_or_refused(env, crlf(data))
        kept += code == 250
    assert kept == len(files)
