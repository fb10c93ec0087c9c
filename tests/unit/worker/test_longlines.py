"""Copies without lines over 998 bytes: what a reader sees is unchanged, and nothing changes
(so a DKIM signature holds) when no line was too long."""

from __future__ import annotations

import base64
import re
import subprocess
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import dkim
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.config import DATA
from tests.support.corpora import available
from tests.support.sink import payload
from worker.longlines import LIMIT, fit_lines, too_long

TEXT = st.text(
    st.characters(min_codepoint=32, max_codepoint=0x2FF, exclude_categories=("Cc", "Cs")),
    max_size=60,
)


def lines_ok(data: bytes) -> bool:
    return all(len(line) <= LIMIT for line in data.splitlines())


def leaves(data: bytes) -> list[tuple[str, bytes]]:
    """(content type, decoded bytes) of every leaf part: what a mail client shows or saves."""
    msg = message_from_bytes(data, policy=policy.compat32)
    return [
        (p.get_content_type(), payload(p) if p.get_payload() else b"")
        for p in msg.walk()
        if not p.is_multipart()
    ]


def header(data: bytes, name: str) -> str | None:
    value = message_from_bytes(data, policy=policy.default)[name]
    return None if value is None else str(value)


def sample_mails() -> list[Path]:
    folder = available("hyperkitty-testdata")  # more real mail when the corpora are there
    return sorted(DATA.glob("mail/*.eml")) + sorted(folder.glob("*.txt") if folder else [])


@pytest.mark.parametrize("path", sample_mails(), ids=lambda p: p.name)
def test_mail_without_long_lines_is_sent_byte_for_byte(path: Path) -> None:
    raw = path.read_bytes()
    if too_long(raw):
        assert lines_ok(fit_lines(raw))
    else:
        assert fit_lines(raw) is raw


def test_a_long_unbroken_header_becomes_encoded_words_of_the_same_text() -> None:
    raw = (
        b"From: a@example.org\r\nX-Junk: "
        + b"A" * 1500
        + b"\r\nSubject: "
        + b"x" * 1200
        + b"\r\n\r\nHi\r\n"
    )
    out = fit_lines(raw)
    assert lines_ok(out)
    assert header(out, "X-Junk") == "A" * 1500 and header(out, "Subject") == "x" * 1200
    assert out.endswith(b"\r\n\r\nHi\r\n")


def test_a_long_structured_header_is_folded_at_its_whitespace() -> None:
    rcpts = ", ".join(f"Person {i} <p{i}@example.org>" for i in range(80))
    raw = f"From: a@example.org\r\nTo: {rcpts}\r\nSubject: s\r\n\r\nHi\r\n".encode()
    out = fit_lines(raw)
    assert lines_ok(out) and header(out, "To") == rcpts
    # only line breaks were inserted
    assert message_from_bytes(out)["To"].replace("\r\n", "") == rcpts


@pytest.mark.parametrize(
    "value", ["a" * 995, "https://example.org/" + "p" * 80 + " and " + "more words " * 90]
)
def test_a_folded_free_text_field_never_leaves_its_name_alone(value: str) -> None:
    # Found by the property test below: "X-Tag:" alone on its line made the value read " aaa...".
    for name in ("X-Tag", "Subject"):
        raw = f"From: a@example.org\r\n{name}: {value}\r\n\r\nHi\r\n".encode()
        out = fit_lines(raw)
        assert lines_ok(out) and header(out, name) == value
        assert not re.search(rf"^{name}:[ \t]*\r\n".encode(), out, re.MULTILINE)


def test_only_the_part_with_a_long_line_is_re_encoded() -> None:
    msg = EmailMessage()
    msg["From"], msg["Subject"] = "a@example.org", "Mixed"
    msg.set_content("Short caf\u00e9 text.\n", cte="8bit")
    msg.add_alternative("<p>" + "long caf\u00e9 line " * 300 + "</p>\n", subtype="html", cte="8bit")
    msg.add_attachment(
        b"\x00\x01binary" * 10, maintype="application", subtype="octet-stream", filename="b.bin"
    )
    raw = msg.as_bytes(policy=policy.SMTP.clone(max_line_length=None))
    out = fit_lines(raw)
    assert lines_ok(out) and leaves(out) == leaves(raw)
    parts = [p for p in message_from_bytes(out).walk() if not p.is_multipart()]
    assert [p["Content-Transfer-Encoding"] for p in parts] == ["8bit", "quoted-printable", "base64"]
    assert b"\r\n\r\nShort caf\xc3\xa9 text.\r\n" in out  # the short part is untouched


def test_a_base64_attachment_in_one_long_line_is_only_rewrapped() -> None:
    payload = bytes(range(256)) * 20
    body = base64.b64encode(payload)
    raw = (
        b"From: a@example.org\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=XX\r\n\r\n"
        b"preamble " + b"p" * 1200 + b"\r\n--XX\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
        b"--XX\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + body
        + b"\r\n--XX--\r\nepilogue\r\n"
    )
    out = fit_lines(raw)
    assert lines_ok(out) and leaves(out) == leaves(raw) == [
        ("text/plain", b"hello"),
        ("application/pdf", payload),
    ]
    assert out.count(b"Content-Transfer-Encoding") == 1 and out.endswith(
        b"=\r\n--XX--\r\nepilogue\r\n"
    )


def test_a_long_line_in_a_mail_without_mime_headers_gets_them() -> None:
    raw = b"From: a@example.org\nSubject: plain\n\n" + b"word " * 400 + b"\n"
    out = fit_lines(raw)
    msg = message_from_bytes(out)
    assert lines_ok(out) and b"\r\n" not in out  # the message's own line endings
    assert msg["MIME-Version"] == "1.0" and msg["Content-Transfer-Encoding"] == "quoted-printable"
    assert leaves(out) == leaves(raw)


@st.composite
def mails(draw: st.DrawFn) -> bytes:
    """Messages with some long lines: free text and
    address headers, text and binary parts, nesting.
    """
    msg = EmailMessage()
    msg["From"] = "Author <author@example.org>"
    msg["Subject"] = draw(TEXT) * draw(st.integers(1, 60))
    msg["X-Tag"] = draw(st.text("abc", min_size=1, max_size=5)) * draw(st.integers(1, 600))
    msg.set_content(
        (draw(TEXT) + "\n") * draw(st.integers(0, 3))
        + draw(TEXT) * draw(st.integers(0, 80))
        + "\n",
        cte=draw(st.sampled_from(["8bit", "quoted-printable", "base64"])),
    )
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["html", "binary", "message"]))
        if kind == "html":
            msg.add_attachment(
                "<p>" + draw(TEXT) * draw(st.integers(1, 80)) + "</p>", subtype="html", cte="8bit"
            )
        elif kind == "binary":
            msg.add_attachment(
                draw(st.binary(max_size=3000)), maintype="application", subtype="octet-stream"
            )
        else:
            inner = EmailMessage()
            inner["Subject"] = draw(TEXT) * draw(st.integers(1, 40))
            inner.set_content(draw(TEXT) * draw(st.integers(1, 60)) + "\n", cte="8bit")
            msg.add_attachment(inner)
    if msg.is_multipart():
        msg.set_boundary("==boundary==")  # the generator would pick a random one
    return msg.as_bytes(policy=policy.SMTP.clone(max_line_length=None))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mails())
@pytest.mark.long(23)
def test_every_copy_fits_and_reads_the_same(raw: bytes) -> None:
    out = fit_lines(raw)
    assert lines_ok(out)
    assert leaves(out) == leaves(raw)
    for name in ("From", "Subject", "X-Tag"):
        assert header(out, name) == header(raw, name)
    if not too_long(raw):
        assert out is raw


@pytest.fixture(scope="module")
def dkim_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes]:
    """(private key PEM, DNS TXT record) of a fresh
    RSA key (openssl, as dkimpy's own key tool uses).
    """
    key = tmp_path_factory.mktemp("dkim") / "key.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
    der = subprocess.run(
        ["openssl", "rsa", "-in", str(key), "-pubout", "-outform", "DER"],
        check=True,
        capture_output=True,
    ).stdout
    return key.read_bytes(), b"v=DKIM1; k=rsa; p=" + base64.b64encode(der)


def signed(raw: bytes, key: tuple[bytes, bytes]) -> bytes:
    signature = dkim.sign(
        raw,
        b"sel",
        b"example.org",
        key[0],
        canonicalize=(b"relaxed", b"relaxed"),
        include_headers=[b"from", b"subject", b"to"],
    )
    return signature + raw


def verifies(raw: bytes, key: tuple[bytes, bytes]) -> bool:
    return bool(dkim.verify(raw, dnsfunc=lambda name, timeout=5: key[1]))


def test_dkim_survives_unless_a_body_line_was_too_long(dkim_key: tuple[bytes, bytes]) -> None:
    plain = signed(
        b"From: a@example.org\r\nTo: l@lists.test\r\nSubject: short\r\n\r\nBody.\r\n", dkim_key
    )
    assert fit_lines(plain) is plain and verifies(plain, dkim_key)
    words = " ".join(["long subject"] * 120).encode()
    folded = signed(
        b"From: a@example.org\r\nTo: l@lists.test\r\nSubject: " + words + b"\r\n\r\nBody.\r\n",
        dkim_key,
    )
    # The signed Subject is folded at its own spaces: relaxed canonicalisation reads the same field.
    assert lines_ok(fit_lines(folded)) and verifies(fit_lines(folded), dkim_key)
    body = signed(
        b"From: a@example.org\r\nTo: l@lists.test\r\nSubject: s\r\n\r\n" + b"x" * 1200 + b"\r\n",
        dkim_key,
    )
    # A body line over 998 bytes has to change, and the body
    # hash with it: the price of being delivered at all.
    assert lines_ok(fit_lines(body)) and not verifies(fit_lines(body), dkim_key)
