"""Both body decoders show a reader the same mail: the same text, html and attachments (names,
types, sizes, sha256), whatever the size of the mail that picks the decoder.

The oracle runs mail-parser's decoder (mime) and the streaming decoder (stream, which parse()
uses above LARGE_MESSAGE) on the same bytes: tests/data's mails, generated MIME trees and, when
LISTGATE_TEST_CORPORA is set, the real corpora. What differs on purpose is named in EXCEPTIONS.
A generated tree whose multiparts reuse their parent's boundary (which mail-parser misreads) is
held to mail-parser's reading of the same tree with boundaries of their own.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import quopri
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from listgate.mail import fields, mime, parser, stream
from listgate.mail.bodies import BodyDecoder
from tests.support.corpora import corpus, linux_man
from tests.support.tracer import traced_first

DATA = Path(__file__).parents[2] / "data" / "mail"
# Every third linux-man message, over all its years (about 6,000, some seconds). All 17,885 read
# alike too when this was written; to check them all, set LINUX_MAN_EVERY = 1.
LINUX_MAN_EVERY = 3

# Differences that are intended, each with its reason; where each applies is marked with its name.
EXCEPTIONS = {
    "report blocks": (
        "a line that is no field inside an unnamed message/delivery-status (or its whole body, "
        "if the report is base64): the standard library reads it as the body of a block of the "
        "report, so mail-parser shows it as body text; the streaming decoder shows nothing of a "
        "report that is not attached (neither shows the report's fields). Applied to "
        "simple_13.txt's text and to generated reports (7bit, fields only)"
    ),
}
EXCEPTED = {("simple_13.txt", "text"): "report blocks"}


def seen(decode: BodyDecoder, raw: bytes) -> tuple[str, str, list[tuple[str, str, int, str]]]:
    """What a reader sees of raw's bodies through decode: text, html, attachments."""
    text, html, attachments = decode(raw, fields.read(raw), [])
    return (
        text,
        html,
        [(a.filename, a.content_type, *_content(a.data)) for a in attachments],
    )


def _content(data: bytes) -> tuple[int, str]:
    return len(data), hashlib.sha256(data).hexdigest()


def disagreement(raw: bytes, name: str = "") -> str:
    """'' when both decoders show raw alike (but for EXCEPTIONS of the mail name), else what
    differs."""
    small, big = seen(mime.decode, raw), seen(stream.decode, raw)
    out = [
        f"{what}: mail-parser {a!r} != streaming {b!r}"
        for what, a, b in zip(("text", "html", "attachments"), small, big, strict=True)
        if a != b and (name, what) not in EXCEPTED
    ]
    return "\n".join(out)


def test_the_streaming_decoder_is_the_one_parse_uses_for_big_mail() -> None:
    assert parser.decoder(b"x" * (parser.LARGE_MESSAGE + 1)) is stream.decode
    assert parser.decoder(b"x" * parser.LARGE_MESSAGE) is mime.decode


@pytest.mark.parametrize("path", sorted(DATA.glob("*.eml")), ids=lambda p: p.name)
def test_test_data_mails_read_alike(path: Path) -> None:
    assert disagreement(path.read_bytes()) == ""


# Under `make test` the small corpora and the first linux-man mails are read under coverage's
# tracer, the rest with it paused (tests.support.tracer: about half the CPU).
TRACED = 400


def _corpora() -> Iterator[tuple[str, bytes]]:
    for parts, pattern in (
        (("hyperkitty-testdata",), "*.txt"),
        (("mailman-eml", "eml"), "*.eml"),
        (("bounces", "data"), "*"),
    ):
        for path in sorted(corpus(*parts).glob(pattern)):
            yield path.name, path.read_bytes()
    for n, raw in enumerate(linux_man(10**9)):
        if n % LINUX_MAN_EVERY == 0:
            yield f"linux-man #{n}", raw


@pytest.mark.long(16)
@pytest.mark.timeout(900)  # every corpus message read twice: 28 s alone, 90 s in a parallel run
def test_the_corpora_read_alike() -> None:
    mails = traced_first(_corpora(), TRACED)
    differing = [f"{name}:\n{d}" for name, raw in mails if (d := disagreement(raw, name))]
    assert not differing, f"{len(differing)} mails read differently:\n" + "\n".join(differing)


# Generated MIME trees: nested multiparts, attached and inline messages, named and unnamed
# parts, odd charsets and transfer encodings.
_WORDS = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=40)
_CHARSETS = st.sampled_from([None, "utf-8", "iso-8859-1", "koi8-r", "windows-1252", "x-bogus"])
_NAMES = st.sampled_from(
    # 8-bit names: in UTF-8, and in Latin-1 (its bytes written as surrogate escapes)
    [None, "report.pdf", "=?utf-8?q?R=C3=A9sum=C3=A9?=.txt", "Résumé.txt", "R\udce9sum\udce9.pdf"]
    + ["../up.bin", "", "  ", ".."]  # the last three leave nothing once made safe: no name
)
_DISPOSITIONS = st.sampled_from([None, "inline", "attachment"])


def _field(name: str, value: str | None) -> str:
    return f"{name}: {value}\n" if value else ""


_REPORT = "Reporting-MTA: dns; mx.example.org\n\nFinal-Recipient: rfc822; a@example.org\n"


@st.composite
def _leaf(draw: st.DrawFn) -> str:
    ctype = draw(
        st.sampled_from(
            ["text/plain", "text/html", "text/calendar", "application/pdf", "image/png"]
            + ["application/rtf", "message/delivery-status"]
        )
    )
    charset = draw(_CHARSETS) if ctype.startswith("text/") else None
    cte = draw(st.sampled_from(["8bit", "base64", "quoted-printable", "x-uuencode"]))
    if ctype == "message/delivery-status":
        cte = "7bit"  # EXCEPTIONS["report blocks"]
    body = (
        _REPORT.encode() if ctype == "message/delivery-status" else _encoded(draw(_WORDS), charset)
    )
    if cte == "x-uuencode":
        lines = (binascii.b2a_uu(body[i : i + 45]) for i in range(0, len(body), 45))
        body = b"begin 644 part\n" + b"".join(lines) + b"`\nend\n"
    elif cte == "base64":
        body = base64.encodebytes(body)
    elif cte == "quoted-printable":
        body = quopri.encodestring(body)
    cid = draw(st.sampled_from([None, "<part@example.org>"]))
    head = _named(draw, ctype + (f"; charset={charset}" if charset else ""), draw(_DISPOSITIONS))
    head += _field("Content-Transfer-Encoding", cte) + _field("Content-ID", cid)
    return head + "\n" + body.decode("utf-8", "surrogateescape")


def _encoded(text: str, charset: str | None) -> bytes:
    try:
        return text.encode(charset or "utf-8", "replace")
    except LookupError:  # a charset no one knows: the sender wrote UTF-8
        return text.encode("utf-8")


def _named(draw: st.DrawFn, ctype: str, disposition: str | None) -> str:
    """Content-Type and Content-Disposition fields, a name given (or not) one of three ways."""
    name, way = draw(_NAMES), draw(st.sampled_from(["filename", "name", "rfc2231"]))
    if name is not None and way == "name":
        return _field("Content-Type", f'{ctype}; name="{name}"') + _field(
            "Content-Disposition", disposition
        )
    if name is not None and way == "rfc2231":
        encoded = "".join(c if c.isalnum() or c in ".-" else f"%{ord(c):02X}" for c in name)
        param = f"filename*=utf-8''{encoded}"
    else:
        param = f'filename="{name}"' if name is not None else ""
    disposition = disposition or ("attachment" if name else None)
    return _field("Content-Type", ctype) + _field(
        "Content-Disposition", disposition and "; ".join(filter(None, (disposition, param)))
    )


# A tree twice over: each multipart with its own boundary, and with some multiparts reusing the
# boundary of the one they are in (REUSE until that one writes its own: not MIME, but sent).
Tree = tuple[str, str]
REUSE = "@PARENT@"


def _node(children: st.SearchStrategy[Tree]) -> st.SearchStrategy[Tree]:
    return st.one_of(_multipart(children), _attached_message(children))


@st.composite
def _multipart(draw: st.DrawFn, children: st.SearchStrategy[Tree]) -> Tree:
    parts = draw(st.lists(children, min_size=1, max_size=3))
    own = f"b{draw(st.integers(0, 10**6))}"
    reused = REUSE if draw(st.booleans()) else own
    subtype = draw(st.sampled_from(["mixed", "alternative", "related", "digest"]))
    if subtype == "digest":  # its parts are messages by default: say so or not
        prefix = "Content-Type: message/rfc822\n"
        parts = [(a.removeprefix(prefix), b.removeprefix(prefix)) for a, b in parts]
    head = _named(
        draw,
        f'multipart/{subtype}; boundary="{REUSE}"',  # the boundary written in below
        draw(st.sampled_from([None, None, "attachment"])),
    )

    def sent(texts: list[str], boundary: str) -> str:
        body = "".join(f"--{boundary}\n{p.replace(REUSE, boundary)}\n" for p in texts)
        return f"{head.replace(REUSE, boundary)}\n{body}--{boundary}--\n"

    return sent([a for a, _ in parts], own), sent([b for _, b in parts], reused)


@st.composite
def _attached_message(draw: st.DrawFn, children: st.SearchStrategy[Tree]) -> Tree:
    subject = draw(st.sampled_from([None, "Minutes", "=?utf-8?q?R=C3=A9union?=", "Réunion"]))
    inner = "From: b@example.org\n" + _field("Subject", subject)
    head = _named(draw, "message/rfc822", draw(_DISPOSITIONS))
    own, reused = draw(children)
    return f"{head}\n{inner}{own}", f"{head}\n{inner}{reused}"


_BOUNDARY = re.compile(rb'boundary="([^"]+)"')
_TREES = st.recursive(_leaf().map(lambda leaf: (leaf, leaf)), _node, max_leaves=8)
_FILES = (b"Content-Type: image/png", b"Content-Type: application/pdf")  # never body text


def _mail(tree: str, crlf: bool) -> bytes:
    raw = f"From: a@example.org\nMessage-ID: <t@example.org>\nMIME-Version: 1.0\n{tree}".encode(
        "utf-8", "surrogateescape"
    )
    return raw.replace(b"\n", b"\r\n") if crlf else raw


@pytest.mark.long(29)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=_TREES, crlf=st.booleans())
def test_generated_mime_trees_read_alike(tree: Tree, crlf: bool) -> None:
    raw = _mail(tree[0], crlf)
    boundaries = _BOUNDARY.findall(raw)
    assume(len(boundaries) == len(set(boundaries)))  # one inside another's: the test below
    assert disagreement(raw) == ""
    # No file is lost: every image and PDF is an attachment, named or not (an image sent inline
    # with neither name nor Content-ID was shown on neither path).
    files = [a for a in seen(stream.decode, raw)[2] if a[1] in ("image/png", "application/pdf")]
    assert len(files) == sum(raw.count(f) for f in _FILES)


def _without_containers(
    shown: tuple[str, str, list[tuple[str, str, int, str]]],
) -> tuple[str, str, list[tuple[str, str] | tuple[str, str, int, str]]]:
    """What is shown but the bytes of attached messages and multiparts (their boundaries
    differ)."""
    text, html, attachments = shown
    kept = [a if not a[1].startswith(("multipart/", "message/")) else a[:2] for a in attachments]
    return text, html, kept


@pytest.mark.long(25)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=_TREES, crlf=st.booleans())
def test_a_multipart_reusing_its_parents_boundary_reads_as_with_its_own(
    tree: Tree, crlf: bool
) -> None:
    """Both decoders show a tree whose multiparts reuse their parent's boundary as mail-parser
    shows the same tree with a boundary of each multipart's own."""
    own, reused = _mail(tree[0], crlf), _mail(tree[1].replace(REUSE, "top"), crlf)
    boundaries = _BOUNDARY.findall(own)
    assume(len(boundaries) == len(set(boundaries)) and own != reused)
    assert disagreement(reused) == ""
    expected = _without_containers(seen(mime.decode, own))
    assert _without_containers(seen(stream.decode, reused)) == expected


def _forwarding(filler: int) -> tuple[bytes, bytes]:
    """A mail forwarding an 8-bit message, attached unnamed, after filler bytes of text."""
    inner = (
        "From: bob@example.org\r\nSubject: Réunion lundi\r\nContent-Type: text/plain; "
        "charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nOn se voit au café ?\r\n"
    ).encode()
    text = b"see below\r\n" * (filler // 11)
    return (
        b"From: ann@example.org\r\nMessage-ID: <fwd@example.org>\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="out"\r\n\r\n--out\r\n'
        b"Content-Type: text/plain\r\n\r\n" + text + b"\r\n--out\r\n"
        b"Content-Type: message/rfc822\r\nContent-Disposition: attachment\r\n\r\n"
        + inner
        + b"\r\n--out--\r\n"
    ), inner


@pytest.mark.parametrize("filler", [100, int(parser.LARGE_MESSAGE * 1.1)])
def test_a_forwarded_message_is_kept_as_the_file_that_was_sent_at_any_size(filler: int) -> None:
    raw, inner = _forwarding(filler)
    parsed = parser.parse(raw)
    assert [(a.filename, a.content_type, a.data) for a in parsed.attachments] == [
        ("Réunion lundi.eml", "message/rfc822", inner)
    ]
    assert "On se voit au café ?" in parsed.body_text  # its text is read as well
