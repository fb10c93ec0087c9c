"""parse(): frozen, never raises, keeps the bytes, survives lying charsets and absurd dates."""

from __future__ import annotations

import dataclasses
import email.utils
from datetime import UTC, datetime, timedelta

import pytest

from listgate.mail import fields, split
from listgate.mail.parser import parse
from listgate.mail.subjects import is_reply_subject, normalize_subject
from listgate.mail.values import decode_header, extract_msgids, reference_chain
from listgate.parse_process import parse_all

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def test_the_result_is_frozen_and_keeps_the_exact_bytes() -> None:
    raw = b"From: a@example.org\r\nSubject: x\r\nMessage-ID: <k@x>\r\n\r\nbody \xff bytes\r\n"
    p = parse(raw, NOW)
    assert p.raw is raw
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.subject = "changed"  # type: ignore[misc]  # a frozen field, assigned on purpose


@pytest.mark.parametrize(
    "value,expected",
    [
        ("=?utf-8?q?caf=C3=A9?=", "café"),
        ("=?iso-8859-1?q?Gr=FC=DFe?= =?utf-8?b?4oKs?=", "Grüße€"),
        ("=?utf-8?q?caf=E9?=", "café"),  # says utf-8, is latin-1
        ("=?x-unknown?q?abc?=", "abc"),
        ("=?utf-8?q?caf=C3=A9?= au lait", "café au lait"),  # the plain words have no charset
        ("=?utf-8?q?broken", "=?utf-8?q?broken"),
        ("plain   folded\r\n text", "plain folded text"),
        ("", ""),
    ],
)
def test_rfc2047_headers_decode_or_fall_back(value: str, expected: str) -> None:
    assert decode_header(value) == expected


def test_every_address_of_a_long_cc_list_is_read() -> None:
    """A Cc over 1,000 characters (read each time, not cached) still lists every address."""
    people = [f"Person {i} <p{i}@example.org>" for i in range(60)]
    raw = f"From: a@example.org\r\nCc: {', '.join(people)}\r\n\r\nhi\r\n".encode()
    assert len(", ".join(people)) > 1000
    assert parse(raw, NOW).cc_addrs == tuple(f"p{i}@example.org" for i in range(60))


def test_no_message_id_gets_a_deterministic_generated_one() -> None:
    raw = b"From: a@example.org\r\nSubject: no id\r\n\r\nsame bytes\r\n"
    first, second = parse(raw, NOW), parse(raw, NOW + timedelta(hours=1))
    assert first.message_id_generated and first.message_id == second.message_id
    assert first.message_id.endswith("@generated.listgate.invalid")
    assert parse(raw + b"x", NOW).message_id != first.message_id


@pytest.mark.parametrize(
    "date",
    [
        "",
        "garbage",
        "Fri, 31 Dec 2999 23:59:59 +0000",
        "Mon, 1 Jan 1900 00:00:00 +0000",
        "Tue, 24 Nov 2026 10:00:00 +9900",
    ],
)
def test_absurd_or_missing_dates_become_arrival_time_keeping_the_header(date: str) -> None:
    raw = f"From: a@example.org\r\nDate: {date}\r\nMessage-ID: <d@x>\r\n\r\nx\r\n".encode()
    p = parse(raw, NOW)
    assert p.date == NOW and p.date_generated and p.date_header == date
    assert any("DateDefect" in d for d in p.defects)


def test_dates_are_utc_plus_the_senders_offset() -> None:
    p = parse(b"From: a@example.org\r\nDate: Tue, 24 Nov 2026 10:00:00 -0530\r\n\r\nx\r\n", NOW)
    assert p.date == datetime(2026, 11, 24, 15, 30, tzinfo=UTC) and p.date_offset == -330
    assert not p.date_generated


def test_prefers_text_plain_keeps_html_and_stores_attachments_by_hash() -> None:
    raw = (
        b"From: a@example.org\r\nMessage-ID: <mp@x>\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="o"\r\n\r\n--o\r\n'
        b'Content-Type: multipart/alternative; boundary="a"\r\n\r\n--a\r\n'
        b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
        b"plain words\r\n--a\r\nContent-Type: text/html\r\n\r\n<p>html words</p>\r\n--a--\r\n"
        b'--o\r\nContent-Type: application/pdf; name="r.pdf"\r\n'
        b'Content-Disposition: attachment; filename="=?utf-8?q?r=C3=A9sum=C3=A9.pdf?="\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--o--\r\n"
    )
    p = parse(raw, NOW)
    assert "plain words" in p.body_text and "<p>html words</p>" in p.body_html
    [att] = p.attachments
    assert (att.filename, att.content_type, att.data) == (
        "résumé.pdf",
        "application/pdf",
        b"%PDF-1.4\n",
    )
    assert len(att.sha256) == 64


def test_a_lying_body_charset_is_recovered_and_recorded() -> None:
    raw = b"From: a@example.org\r\nContent-Type: text/plain; charset=utf-8\r\n\r\ncaf\xe9\r\n"
    p = parse(raw, NOW)
    assert "café" in p.body_text and "\ufffd" not in p.body_text
    assert any("CharsetDefect" in d for d in p.defects)


def test_8bit_headers_are_read_as_utf8_else_latin1() -> None:
    p = parse("From: Zoë <z@example.org>\r\nSubject: Grüße\r\n\r\nx\r\n".encode(), NOW)
    assert (p.from_name, p.subject) == ("Zoë", "Grüße")
    p = parse(b"From: Zo\xeb <z@example.org>\r\nSubject: Gr\xfc\xdfe\r\n\r\nx\r\n", NOW)
    assert (p.from_name, p.subject) == ("Zoë", "Grüße")


def test_pathological_nesting_never_raises() -> None:
    raw = b"From: a@example.org\r\nSubject: deep\r\nMIME-Version: 1.0\r\n" + b"".join(
        b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i)
        for i in range(3000)
    )
    p = parse(raw, NOW)
    assert p.subject == "deep" and p.from_addr == "a@example.org"


@pytest.mark.parametrize(
    "value,ids",
    [
        ("<a@x>", ["a@x"]),
        ("<a@x>\r\n <b@x>", ["a@x", "b@x"]),
        ("< a@x >", ["a@x"]),
        ("<a\r\n @x>", ["a@x"]),
        ("a@x (comment) b@x", ["a@x", "b@x"]),
        ("<a@x> (Ann's message of Monday)", ["a@x"]),
        ("<> < > garbage", []),
        ("Your message of Monday <a@x>", ["a@x"]),
        ("<a@x>\x00", ["a@x"]),
    ],
)
def test_message_ids_are_extracted_tolerantly(value: str, ids: list[str]) -> None:
    assert extract_msgids(value) == ids


def test_reference_chain_drops_self_and_repeats_and_puts_in_reply_to_last() -> None:
    assert reference_chain("me@x", ("a@x", "me@x", "b@x", "a@x"), ("c@x", "d@x")) == (
        "b@x",
        "a@x",
        "c@x",
    )
    assert reference_chain("me@x", (), ("me@x",)) == ()
    assert len(reference_chain("me@x", tuple(f"{i}@x" for i in range(5000)), ())) == 200


@pytest.mark.parametrize(
    "subject,norm,reply",
    [
        ("Re: Hello", "hello", True),
        ("RE: re: Hello", "hello", True),
        ("[dev] Re: Hello", "hello", True),
        ("Re: [dev] Re: Hello  World", "hello world", True),
        ("AW: Sv: Antw: Hello", "hello", True),
        ("Réf. Hello", "réf. hello", False),
        ("Réf: Hello", "hello", True),
        ("Re[2]: Hello", "hello", True),
        ("Fwd: Hello", "hello", False),
        ("[dev] Hello", "hello", False),
        ("Hello: world", "hello: world", False),
    ],
)
def test_subject_normalisation(subject: str, norm: str, reply: bool) -> None:
    assert normalize_subject(subject) == norm
    assert is_reply_subject(subject) is reply


@pytest.mark.parametrize("fold", [b"\r\n y", b"\n y", b"\r\n\r y", b"\n\r y", b"\r y"])
@pytest.mark.parametrize("lines", [100, 100_000])
def test_a_subject_folded_over_many_lines_keeps_the_message_id(fold: bytes, lines: int) -> None:
    # Imported mail never meets the gateway's limits; a bare CR must not end the header block
    # for the parser while every other splitter reads on (the Message-ID would become body).
    raw = (
        b"From: a@example.org\r\nSubject: x"
        + fold * lines
        + b"\r\nMessage-ID: <keep@example.org>\r\n"
        b"To: dev@lists.test\r\n\r\nbody\r\n"
    )
    parsed = parse(raw)
    assert (parsed.message_id, parsed.message_id_generated) == ("keep@example.org", False)
    assert parsed.subject.startswith("x y") and parsed.raw == raw


def test_an_authors_address_field_is_read_once_for_all_their_messages(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An archive's authors write many messages each (linux-man: 1,465 From values for 17,885
    messages); the address list of a From value already read is not read again."""
    reads: list[object] = []
    real = email.utils.getaddresses

    def counted(values: list[str]) -> list[tuple[str, str]]:
        reads.append(values)
        return real(values)

    monkeypatch.setattr(email.utils, "getaddresses", counted)
    for n in range(50):
        raw = (
            f'From: "An Author" <Author{n % 2}@Example.org>\r\nSubject: {n}\r\n'
            f"Message-ID: <{n}@x>\r\n\r\nbody\r\n"
        ).encode()
        parsed = parse(raw)
        assert (parsed.from_name, parsed.from_addr) == ("An Author", f"author{n % 2}@example.org")
    assert len(reads) <= 2, f"the From addresses were read {len(reads)} times for 2 authors"


def test_the_parsing_process_reads_each_header_block_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The importer's parse asks whether a message has a header field before parsing it: that
    question stops at the first field, and the block is read through once, by the parse."""
    reads: list[object] = []
    real = split.header_end

    def counted(raw: bytes, start: int = 0, stop: int | None = None) -> tuple[int, int]:
        reads.append(raw)
        return real(raw, start, stop)

    for module in (split, fields):  # the reader's own, and header_block's
        monkeypatch.setattr(module, "header_end", counted)
    raws = [
        b"From: a@example.org\r\nSubject: s\r\nMessage-ID: <%d@x>\r\n\r\nbody\r\n" % n
        for n in range(10)
    ]
    parsed = parse_all([*raws, b"no field here\r\n\r\nbody\r\n"])
    assert [p.message_id for p in parsed[:10] if p] == [f"{n}@x" for n in range(10)]
    assert parsed[10] is None
    assert len(reads) <= 11, f"{len(reads)} reads of the header blocks of 11 messages"


def test_the_header_fields_kept_are_the_first_200_each_cut_at_2000_characters() -> None:
    fields = b"".join(b"X-F%d: %s\r\n" % (n, b"v" * (2500 if n == 3 else 10)) for n in range(250))
    parsed = parse(b"From: a@example.org\r\n" + fields + b"\r\nbody\r\n")
    assert len(parsed.headers) == 200
    assert parsed.headers[4] == ("X-F3", "v" * 2000)
    assert parsed.headers[199] == ("X-F198", "v" * 10)
    short = parse(b"From: a@example.org\r\nSubject: s\r\n\r\nbody\r\n")
    assert short.headers == (("From", "a@example.org"), ("Subject", "s"))
