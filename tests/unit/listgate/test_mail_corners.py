"""MIME corners a reader must not lose, read alike by both body decoders (mail-parser's for normal
mail, the streaming one above LARGE_MESSAGE): empty names, images sent without any name, a nested
multipart that reuses its parent's boundary.
"""

from __future__ import annotations

import base64

import pytest

from listgate.mail import fields, mime, stream
from listgate.mail.bodies import BodyDecoder
from listgate.mail.parser import LARGE_MESSAGE, parse

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 24
PDF = b"%PDF-1.4 minutes"
ATTACHED_PDF = "Content-Type: application/pdf\r\nContent-Disposition: attachment"
DECODERS = pytest.mark.parametrize("decode", [mime.decode, stream.decode], ids=["small", "big"])


def mail(*parts: str, boundary: str = "b") -> bytes:
    """A multipart/mixed mail of a text part and these parts (each its header, blank line, body)."""
    body = "".join(
        f"--{boundary}\r\n{p}\r\n" for p in ("Content-Type: text/plain\r\n\r\nsee below", *parts)
    )
    return (
        "From: a@example.org\r\nMessage-ID: <m@example.org>\r\nMIME-Version: 1.0\r\n"
        f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n{body}--{boundary}--\r\n'
    ).encode()


def part(head: str, data: bytes) -> str:
    """A base64 part: its header fields (CRLF-ended) and data."""
    return f"{head}Content-Transfer-Encoding: base64\r\n\r\n{base64.b64encode(data).decode()}"


def shown(decode: BodyDecoder, raw: bytes) -> tuple[str, str, list[tuple[str, str, bytes]]]:
    """(text, html, attachments as (name, type, data)) that decode shows of raw."""
    text, html, attachments = decode(raw, fields.read(raw), [])
    return text, html, [(a.filename, a.content_type, a.data) for a in attachments]


@DECODERS
@pytest.mark.parametrize(
    "head",
    [
        'Content-Type: application/pdf\r\nContent-Disposition: attachment; filename=""\r\n',
        'Content-Type: application/pdf; name=""\r\n',
        ATTACHED_PDF.replace("pdf", 'pdf; name=""') + '; filename=""\r\n',
        'Content-Type: application/pdf\r\nContent-Disposition: attachment; filename="  "\r\n',
        ATTACHED_PDF + '; filename="=?utf-8?q??="\r\n',
        'Content-Type: application/pdf\r\nContent-Disposition: attachment; filename=".."\r\n',
    ],
    ids=["filename", "name", "both", "blank", "empty-encoded-word", "dots"],
)
def test_an_empty_name_is_no_name_the_file_gets_a_generated_one(
    decode: BodyDecoder, head: str
) -> None:
    """Was: a random name on the small path (another on every parse), "attachment" on the big one,
    and a `name=""` part was not shown at all on the small path."""
    raw = mail(part(head, PDF))
    assert shown(decode, raw) == ("see below", "", [("attachment-1.pdf", "application/pdf", PDF)])


@DECODERS
def test_empty_names_are_numbered_with_the_unnamed_parts(decode: BodyDecoder) -> None:
    raw = mail(
        part("Content-Type: application/pdf\r\nContent-Disposition: attachment\r\n", PDF),
        'Content-Type: text/plain\r\nContent-Disposition: attachment; filename=""\r\n\r\nnotes',
        part(
            ATTACHED_PDF + '; filename="a.pdf"\r\n',
            PDF,
        ),
    )
    assert [n for n, _, _ in shown(decode, raw)[2]] == [
        "attachment-1.pdf",
        "attachment-2.txt",
        "a.pdf",
    ]
    assert "notes" not in shown(decode, raw)[0]  # an attachment, as when it has no name field


@DECODERS
@pytest.mark.parametrize(
    "disposition",
    ["Content-Disposition: inline\r\n", "", 'Content-Disposition: inline; filename=""\r\n'],
    ids=["inline", "no-disposition", "inline-empty-name"],
)
def test_an_image_with_neither_name_nor_content_id_is_shown_as_a_file(
    decode: BodyDecoder, disposition: str
) -> None:
    """Was: shown on neither path (mail-parser keeps no file of it), lost to every reader."""
    raw = mail(part(f"Content-Type: image/png\r\n{disposition}", PNG))
    assert shown(decode, raw) == ("see below", "", [("attachment-1.png", "image/png", PNG)])


@DECODERS
def test_an_image_named_by_its_content_id_keeps_that_name(decode: BodyDecoder) -> None:
    raw = mail(part("Content-Type: image/png\r\nContent-ID: <logo@example.org>\r\n", PNG))
    assert shown(decode, raw)[2] == [("<logo@example.org>", "image/png", PNG)]


@DECODERS
def test_a_mail_that_is_only_an_unnamed_image_shows_it(decode: BodyDecoder) -> None:
    raw = (
        b"From: a@example.org\r\nMIME-Version: 1.0\r\nContent-Type: image/png\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.b64encode(PNG) + b"\r\n"
    )
    assert shown(decode, raw) == ("", "", [("attachment-1.png", "image/png", PNG)])


@DECODERS
def test_a_mail_that_is_only_a_calendar_shows_its_text(decode: BodyDecoder) -> None:
    raw = (
        b"From: a@example.org\r\nMIME-Version: 1.0\r\nContent-Type: text/calendar\r\n\r\n"
        b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n"
    )
    text, html, attachments = shown(decode, raw)
    assert "BEGIN:VCALENDAR" in text and html == "" and attachments == []


REUSED = (
    'Content-Type: multipart/alternative; boundary="b"\r\n\r\n'
    "--b\r\nContent-Type: text/plain\r\n\r\ninner plain\r\n"
    "--b\r\nContent-Type: text/html\r\n\r\n<p>inner html</p>\r\n--b--\r\n"
)


@DECODERS
def test_a_nested_multipart_reusing_its_parents_boundary_loses_nothing(
    decode: BodyDecoder,
) -> None:
    """Was: the big path lost every part after the inner closing delimiter ("after"), the small
    path showed it only through mail-parser's epilogue recovery."""
    raw = mail(
        REUSED,
        "Content-Type: text/plain\r\n\r\nafter",
        part('Content-Type: application/pdf; name="m.pdf"\r\n', PDF),
    )
    text, html, attachments = shown(decode, raw)
    assert text.split() == ["see", "below", "inner", "plain", "after"]
    assert html == "<p>inner html</p>"
    assert attachments == [("m.pdf", "application/pdf", PDF)]


@DECODERS
def test_reused_boundaries_nested_three_deep_and_through_an_attached_message(
    decode: BodyDecoder,
) -> None:
    deeper = (
        'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
        f"--b\r\n{REUSED}\r\n--b\r\nContent-Type: text/plain\r\n\r\nmiddle\r\n--b--\r\n"
    )
    attached = (
        f"Content-Type: message/rfc822\r\n\r\nFrom: c@example.org\r\nMIME-Version: 1.0\r\n{REUSED}"
    )
    raw = mail(deeper, attached, "Content-Type: text/plain\r\n\r\nlast")
    assert shown(decode, raw)[0].split() == (
        ["see", "below", "inner", "plain", "middle", "inner", "plain", "last"]
    )


def test_a_boundary_reused_without_any_closing_delimiter_ends_and_keeps_the_text() -> None:
    raw = (
        b'From: a@example.org\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"'
        b'\r\n\r\n--b\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
        b"Content-Type: text/plain\r\n\r\nonly text\r\n"
    )
    assert shown(mime.decode, raw)[0].strip() == shown(stream.decode, raw)[0].strip() == "only text"


def test_parse_shows_the_corners_alike_at_any_size() -> None:
    """What the archive stores (parse()), below and above LARGE_MESSAGE."""
    big = part(
        'Content-Type: application/octet-stream; name="big.bin"\r\n', b"\x00" * LARGE_MESSAGE
    )
    corners = (
        part(
            'Content-Type: application/pdf\r\nContent-Disposition: attachment; filename=""\r\n', PDF
        ),
        part("Content-Type: image/png\r\nContent-Disposition: inline\r\n", PNG),
        REUSED,
        "Content-Type: text/plain\r\n\r\nafter",
    )
    small, large = parse(mail(*corners)), parse(mail(*corners, big))
    assert len(mail(*corners, big)) > LARGE_MESSAGE
    for parsed in (small, large):
        assert "after" in parsed.body_text and "inner plain" in parsed.body_text
        assert [(a.filename, a.data) for a in parsed.attachments][:2] == [
            ("attachment-1.pdf", PDF),
            ("attachment-2.png", PNG),
        ]
    assert small.attachments == large.attachments[:2]


@DECODERS
def test_an_unnamed_openpgp_signature_is_shown_as_an_asc_file(decode: BodyDecoder) -> None:
    """26 linux-man posts sign this way; the signature was shown on neither path (the line end
    before a delimiter is the delimiter's, RFC 2046)."""
    signature = "-----BEGIN PGP SIGNATURE-----\r\n\r\niQEz\r\n-----END PGP SIGNATURE-----\r\n"
    raw = (
        "From: a@example.org\r\nMIME-Version: 1.0\r\nContent-Type: multipart/signed; "
        'micalg=pgp-sha256; protocol="application/pgp-signature"; boundary="s"\r\n\r\n'
        "--s\r\nContent-Type: text/plain\r\n\r\nsigned text\r\n"
        f"--s\r\nContent-Type: application/pgp-signature\r\n\r\n{signature}--s--\r\n"
    ).encode()
    assert shown(decode, raw) == (
        "signed text",
        "",
        [("attachment-1.asc", "application/pgp-signature", signature.encode().rstrip())],
    )
