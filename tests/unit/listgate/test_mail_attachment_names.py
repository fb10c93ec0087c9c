"""The names attachments are archived under: the same on every parse of the same mail (an archive
rebuilt, a mail imported twice, two sites), meaningful where the mail gives none, safe for a file.
"""

from __future__ import annotations

import base64

from listgate.mail.parser import LARGE_MESSAGE, parse
from tests.support.corpora import corpus


def names(raw: bytes) -> list[str]:
    """The attachment names of raw as parse() gives them."""
    return [a.filename for a in parse(raw).attachments]


def test_unnamed_attached_messages_are_named_by_their_subject_on_every_parse() -> None:
    """Mailman's test mail: five attached messages (Content-Disposition: attachment, no name)."""
    raw = corpus("mailman-eml", "eml", "msg_rfc822.eml").read_bytes()
    first, second = names(raw), names(raw)
    assert first == second, "the same mail parsed twice gave its attachments different names"
    assert first == [
        *(f"Attached Message {n} Subject.eml" for n in range(1, 6)),
        "ATT00055.txt",
    ]
    # What is stored under the name is the attached message itself.
    assert b"Subject: Attached Message 3 Subject" in parse(raw).attachments[2].data


def attached(subject: str | None, body: str = "inner body") -> str:
    """A message/rfc822 part, attached without a name."""
    head = f"Subject: {subject}\r\n" if subject is not None else ""
    return (
        "Content-Type: message/rfc822\r\nContent-Disposition: attachment\r\n\r\n"
        f"From: someone@example.org\r\n{head}\r\n{body}\r\n"
    )


def multipart(*parts: str, subject: str = "several") -> bytes:
    """A multipart/mixed mail of a text part and these parts."""
    body = "".join(
        f"--b\r\n{p}" for p in ("Content-Type: text/plain\r\n\r\nsee attached\r\n", *parts)
    )
    return (
        f"From: a@example.org\r\nSubject: {subject}\r\nMessage-ID: <m@x>\r\nMIME-Version: 1.0\r\n"
        f'Content-Type: multipart/mixed; boundary="b"\r\n\r\n{body}--b--\r\n'
    ).encode()


PDF = (
    "Content-Type: application/pdf\r\nContent-Disposition: attachment\r\n"
    "Content-Transfer-Encoding: base64\r\n\r\n" + base64.b64encode(b"%PDF-1.4 x").decode() + "\r\n"
)


def test_names_made_from_a_subject_are_safe_for_a_file_and_bounded() -> None:
    raw = multipart(
        attached("../../etc/passwd"),
        attached("x" * 500),
        attached(None),
        attached("=?utf-8?q?R=C3=A9union_=C3=A0_9h?="),
        attached("tab\there\r\n folded"),
        PDF,
        "Content-Type: application/rtf\r\n\r\n{\\rtf1 x}\r\n",
    )
    assert names(raw) == names(raw)
    assert names(raw) == [
        "etc_passwd.eml",
        "x" * 100 + ".eml",
        "message-3.eml",
        "Réunion à 9h.eml",
        "tab here folded.eml",
        "attachment-6.pdf",
        "attachment-7.rtf",
    ]


def test_names_the_mail_gives_are_kept_but_made_safe() -> None:
    named = (
        "Content-Type: text/plain\r\n"
        'Content-Disposition: attachment; filename="..\\\\x\\\\notes.txt"'
        "\r\n\r\nnotes\r\n"
    )
    long = f'Content-Type: image/png\r\nContent-Disposition: attachment; filename="{"p" * 300}.png"'
    assert names(multipart(named, long + "\r\n\r\npng\r\n")) == ["x_notes.txt", "p" * 196 + ".png"]


def test_big_mail_names_its_unnamed_attachments_as_normal_mail_does() -> None:
    """Above LARGE_MESSAGE another decoder reads the bodies: the names must not change with size."""
    big = (
        'Content-Type: application/octet-stream; name="big.bin"\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\n"
        + base64.encodebytes(b"\x00" * LARGE_MESSAGE).decode().replace("\n", "\r\n")
    )
    small, large = multipart(PDF), multipart(PDF, big)
    assert len(large) > LARGE_MESSAGE
    assert names(small) == ["attachment-1.pdf"]
    assert names(large) == ["attachment-1.pdf", "big.bin"]


def _named_in(fields: str) -> bytes:
    return (
        "From: a@example.org\nSubject: names\nMIME-Version: 1.0\n"
        'Content-Type: multipart/mixed; boundary="b"\n\n'
        "--b\nContent-Type: text/plain\n\nbody\n"
        f"--b\n{fields}\nContent-Transfer-Encoding: base64\n\naGVsbG8=\n--b--\n"
    ).encode()


def test_names_given_in_any_spelling_are_found_by_both_decoders() -> None:
    """A part's name read however the mail spells it: field and parameter names in any case,
    RFC 2231 continuations, Content-Type's `name` alone."""
    cases = {
        'CONTENT-DISPOSITION: attachment; FILENAME="Report.pdf"\nContent-Type: application/pdf': (
            "Report.pdf"
        ),
        "Content-Disposition: attachment; filename*0*=utf-8''caf%C3%A9;"
        ' filename*1="-menu.txt"\nContent-Type: application/octet-stream': "café-menu.txt",
        'Content-Type: application/pdf; NaMe="only-type.pdf"': "only-type.pdf",
        "Content-Type: application/pdf\nContent-Disposition: attachment": "attachment-1.pdf",
    }
    for fields, expected in cases.items():
        raw = _named_in(fields)
        big = raw.replace(b"\nbody\n", b"\n" + b"x" * (LARGE_MESSAGE + 10) + b"\n")
        assert names(raw) == [expected], fields
        assert names(big) == [expected], f"large: {fields}"
        assert parse(raw).attachments[0].data == b"hello"
