"""Big messages (above LARGE_MESSAGE) are parsed without
mail-parser: same result, a fraction of the memory.
"""

from __future__ import annotations

import base64
import tracemalloc

import pytest

from listgate.mail import parser
from listgate.mail.message import ParsedMessage
from listgate.mail.parser import parse

LINE = b"All work and no play makes Jack a dull boy, but a well-archived one.\r\n"


def _plain(
    size: int, charset: str = "us-ascii", cte: str = "7bit", body: bytes | None = None
) -> bytes:
    head = (
        b"From: Ann <ann@example.org>\r\nSubject: big one\r\nMessage-ID: <big@example.org>\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset="
        + charset.encode()
        + b"\r\nContent-Transfer-Encoding: "
        + cte.encode()
        + b"\r\n\r\n"
    )
    return head + (body if body is not None else LINE * (size // len(LINE)))


def _multipart(attachment: bytes) -> bytes:
    b64 = base64.encodebytes(attachment).replace(b"\n", b"\r\n")
    return (
        b"From: ann@example.org\r\nSubject: with a file\r\nMessage-ID: <file@example.org>\r\n"
        b"MIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="XX"\r\n\r\n'
        b"--XX\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        b"Caf=C3=A9 attached.\r\n"
        b"--XX\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Caf\xc3\xa9 attached.</p>\r\n"
        b"--XX\r\nContent-Type: application/pdf\r\n"
        b'Content-Disposition: attachment; filename="big.pdf"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\n" + b64 + b"--XX--\r\n"
    )


def _both(raw: bytes, monkeypatch: pytest.MonkeyPatch) -> tuple[ParsedMessage, ParsedMessage]:
    """(mail-parser's result, the large-message path's result) for the same bytes."""
    with monkeypatch.context() as m:
        m.setattr(parser, "LARGE_MESSAGE", len(raw) + 1)
        small = parse(raw)
    with monkeypatch.context() as m:
        m.setattr(parser, "LARGE_MESSAGE", 0)
        large = parse(raw)
    return small, large


@pytest.mark.parametrize(
    "raw",
    [
        _plain(5000),
        _plain(0, "iso-8859-1", "quoted-printable", b"Gr=FC=DFe aus K=F6ln\r\n"),
        _plain(
            0, "utf-8", "base64", base64.encodebytes("Grüße ✓\n".encode()).replace(b"\n", b"\r\n")
        ),
        # a lying charset: falls back
        _plain(0, "utf-8", "8bit", "naïve café\r\n".encode("latin-1")),
        _multipart(bytes(range(256)) * 40),
    ],
)
def test_the_large_path_finds_the_same_text_html_and_attachments(
    raw: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    small, large = _both(raw, monkeypatch)
    assert large.body_text.strip() == small.body_text.strip() and large.body_text.strip()
    assert large.body_html.strip() == small.body_html.strip()
    assert [(a.filename, a.content_type, a.data) for a in large.attachments] == [
        (a.filename, a.content_type, a.data) for a in small.attachments
    ]
    assert (large.message_id, large.subject, large.from_addr) == (
        small.message_id,
        small.subject,
        small.from_addr,
    )


def test_a_lost_boundary_still_keeps_the_text(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = (
        b"From: a@example.org\r\nMessage-ID: <lost@x>\r\n"
        b"Content-Type: multipart/mixed; boundary=gone\r\n\r\n"
        b"--other\r\nContent-Type: text/plain\r\n\r\ntext worth keeping\r\n--other--\r\n"
    )
    _, large = _both(raw, monkeypatch)
    assert "text worth keeping" in large.body_text


def _parse_measured(raw: bytes) -> tuple[ParsedMessage, int]:
    """parse(raw) and the peak of memory allocated while it ran."""
    tracemalloc.start()
    try:
        return parse(raw), tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_20_mb_post_is_parsed_in_little_more_than_its_text() -> None:
    raw = _plain(20 * 1024 * 1024)
    parsed, peak = _parse_measured(raw)
    assert parsed.body_text.startswith("All work") and len(parsed.body_text) > 20_000_000
    assert peak < 1.5 * len(raw)  # the decoded text itself; mail-parser needed about 8x


def test_a_20_mb_attachment_costs_about_its_decoded_size() -> None:
    data = bytes(range(256)) * (20 * 4096)
    raw = _multipart(data)
    parsed, peak = _parse_measured(raw)
    [att] = parsed.attachments
    assert (att.filename, att.content_type, att.data == data) == (
        "big.pdf",
        "application/pdf",
        True,
    )
    assert (
        parsed.body_text.strip() == "Café attached." and "<p>Café attached.</p>" in parsed.body_html
    )
    assert peak < 1.5 * len(data)  # the standard library's feed parser needed about 10x


def test_an_attached_message_and_nested_multiparts_are_walked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    inner = (
        b"From: bob@example.org\r\nSubject: original\r\n"
        b"Content-Type: multipart/alternative; boundary=in\r\n\r\n"
        b"--in\r\nContent-Type: text/plain\r\n\r\noriginal body\r\n--in\r\n"
        b"Content-Type: text/html\r\n\r\n"
        b"<b>original</b>\r\n--in--\r\n"
    )
    raw = (
        b"From: ann@example.org\r\nMessage-ID: <fwd@x>\r\n"
        b'Content-Type: multipart/mixed; boundary="out"\r\n\r\n'
        b"preamble\r\n--out\r\nContent-Type: text/plain\r\n\r\nforwarding this\r\n--out \r\n"
        b"Content-Type: message/rfc822\r\n\r\n" + inner + b"--out--\r\nepilogue\r\n"
    )
    small, large = _both(raw, monkeypatch)
    assert (
        large.body_text.split()
        == small.body_text.split()
        == ["forwarding", "this", "original", "body"]
    )
    assert large.body_html.strip() == small.body_html.strip() == "<b>original</b>"


def test_a_20_mb_forwarded_message_costs_its_file_and_its_text() -> None:
    """An attached message is kept as the file that was sent, read from the bytes: never
    re-parsed whole (the standard library's parser needed about 10x)."""
    inner = b"From: bob@example.org\r\nSubject: big original\r\n\r\n" + LINE * (
        20 * 1024 * 1024 // len(LINE)
    )
    raw = (
        b"From: ann@example.org\r\nMessage-ID: <bigfwd@example.org>\r\n"
        b'Content-Type: multipart/mixed; boundary="out"\r\n\r\n--out\r\n'
        b"Content-Type: text/plain\r\n\r\nforwarding this\r\n--out\r\n"
        b"Content-Type: message/rfc822\r\nContent-Disposition: attachment\r\n\r\n"
        + inner
        + b"\r\n--out--\r\n"
    )
    parsed, peak = _parse_measured(raw)
    [att] = parsed.attachments
    assert att.data == inner, "the attached message is not the file that was sent"
    assert (att.filename, att.content_type) == ("big original.eml", "message/rfc822")
    assert parsed.body_text.startswith("forwarding this\nAll work")
    # the file (its blob is stored whole, as every attachment's), its text, and that text joined to
    # the mail's own: about 3x, as measured; the standard library's parser needed about 10x
    assert peak < 3.5 * len(inner)
