"""Both body decoders show a reader the same mail: the same text, html and attachments (names,
types, sizes, sha256), whatever the size of the mail that picks the decoder.

The oracle runs mail-parser's decoder (mime) and the streaming decoder (stream, which parse()
uses above LARGE_MESSAGE) on the same bytes: tests/data's mails, generated MIME trees and, when
LISTGATE_TEST_CORPORA is set, the real corpora. What differs on purpose is named in EXCEPTIONS.
"""

from __future__ import annotations

import base64
import quopri
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from listgate.mail import fields, mime, parser, stream
from listgate.mail.bodies import BodyDecoder
from tests.support.corpora import corpus, linux_man

DATA = Path(__file__).parents[2] / "data" / "mail"
LINUX_MAN_SAMPLE = 3000  # messages: all of its MIME shapes, in a few seconds

# Differences that are intended, each with its reason; the oracle applies them, nothing else.
EXCEPTIONS = {
    "container bytes": (
        "an attached message (message/*) is stored by mail-parser as the standard library's "
        "re-serialisation of it (its line ends made LF, a blank line added at its end), by the "
        "streaming decoder as the bytes that were sent: compared with line ends and trailing "
        "blank lines normalised"
    ),
    "attached multipart": (
        "mail-parser stores an attached multipart as its parts' text joined without their "
        "delimiters (not a file anyone can open), the streaming decoder as the bytes sent: "
        "only its name and type are compared"
    ),
}


def seen(decode: BodyDecoder, raw: bytes) -> tuple[str, str, list[tuple[str, str, int, str]]]:
    """What a reader sees of raw's bodies through decode: text, html, attachments."""
    text, html, attachments = decode(raw, fields.read(raw), [])
    return (
        text,
        html,
        [(a.filename, a.content_type, *_content(a.content_type, a.data)) for a in attachments],
    )


def _content(ctype: str, data: bytes) -> tuple[int, str]:
    import hashlib

    if ctype.startswith("multipart/"):  # EXCEPTIONS["attached multipart"]
        return 0, ""
    if ctype.startswith("message/"):  # EXCEPTIONS["container bytes"]
        data = data.replace(b"\r\n", b"\n").rstrip(b"\n")
    return len(data), hashlib.sha256(data).hexdigest()


def disagreement(raw: bytes) -> str:
    """'' when both decoders show raw alike, else what differs."""
    small, big = seen(mime.decode, raw), seen(stream.decode, raw)
    out = [
        f"{what}: mail-parser {a!r} != streaming {b!r}"
        for what, a, b in zip(("text", "html", "attachments"), small, big, strict=True)
        if a != b
    ]
    return "\n".join(out)


def test_the_streaming_decoder_is_the_one_parse_uses_for_big_mail() -> None:
    assert parser.decoder(b"x" * (parser.LARGE_MESSAGE + 1)) is stream.decode
    assert parser.decoder(b"x" * parser.LARGE_MESSAGE) is mime.decode


@pytest.mark.parametrize("path", sorted(DATA.glob("*.eml")), ids=lambda p: p.name)
def test_test_data_mails_read_alike(path: Path) -> None:
    assert disagreement(path.read_bytes()) == ""


def _corpora() -> Iterator[tuple[str, bytes]]:
    for parts, pattern in (
        (("hyperkitty-testdata",), "*.txt"),
        (("mailman-eml", "eml"), "*.eml"),
        (("bounces", "data"), "*"),
    ):
        for path in sorted(corpus(*parts).glob(pattern)):
            yield path.name, path.read_bytes()
    for n, raw in enumerate(linux_man(LINUX_MAN_SAMPLE)):
        yield f"linux-man #{n}", raw


def test_the_corpora_read_alike() -> None:
    differing = [f"{name}:\n{d}" for name, raw in _corpora() if (d := disagreement(raw))]
    assert not differing, f"{len(differing)} mails read differently:\n" + "\n".join(differing)


# Generated MIME trees: nested multiparts, attached and inline messages, named and unnamed
# parts, odd charsets and transfer encodings.
_WORDS = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=40)
_CHARSETS = st.sampled_from([None, "utf-8", "iso-8859-1", "koi8-r", "windows-1252", "x-bogus"])
_NAMES = st.sampled_from(
    [None, "report.pdf", "=?utf-8?q?R=C3=A9sum=C3=A9?=.txt", "notes.txt", "../up.bin"]
)
_DISPOSITIONS = st.sampled_from([None, "inline", "attachment"])


def _field(name: str, value: str | None) -> str:
    return f"{name}: {value}\n" if value else ""


@st.composite
def _leaf(draw: st.DrawFn) -> str:
    ctype = draw(st.sampled_from(["text/plain", "text/html", "application/pdf", "image/png"]))
    charset = draw(_CHARSETS) if ctype.startswith("text/") else None
    cte = draw(st.sampled_from(["8bit", "base64", "quoted-printable"]))
    body = draw(_WORDS).encode(charset or "utf-8", "replace")
    if cte == "base64":
        body = base64.encodebytes(body)
    elif cte == "quoted-printable":
        body = quopri.encodestring(body)
    disposition, name = draw(_DISPOSITIONS), draw(_NAMES)
    cid = draw(st.sampled_from([None, "<part@example.org>"]))
    head = f"Content-Type: {ctype}" + (f"; charset={charset}" if charset else "") + "\n"
    head += _field("Content-Transfer-Encoding", cte) + _field("Content-ID", cid)
    head += _disposition(disposition, name)
    return head + "\n" + body.decode("utf-8", "surrogateescape")


def _disposition(disposition: str | None, name: str | None) -> str:
    if name and not disposition:
        disposition = "attachment"
    return _field(
        "Content-Disposition",
        disposition and disposition + (f'; filename="{name}"' if name else ""),
    )


def _node(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(_multipart(children), _attached_message(children))


@st.composite
def _multipart(draw: st.DrawFn, children: st.SearchStrategy[str]) -> str:
    parts = draw(st.lists(children, min_size=1, max_size=3))
    boundary = f"b{draw(st.integers(0, 10**6))}"
    subtype = draw(st.sampled_from(["mixed", "alternative", "related"]))
    head = f'Content-Type: multipart/{subtype}; boundary="{boundary}"\n'
    head += _disposition(draw(st.sampled_from([None, None, "attachment"])), None)
    body = "".join(f"--{boundary}\n{p}\n" for p in parts)
    return f"{head}\n{body}--{boundary}--\n"


@st.composite
def _attached_message(draw: st.DrawFn, children: st.SearchStrategy[str]) -> str:
    subject = draw(st.sampled_from([None, "Minutes", "=?utf-8?q?R=C3=A9union?="]))
    inner = "From: b@example.org\n" + _field("Subject", subject) + draw(children)
    head = "Content-Type: message/rfc822\n" + _disposition(draw(_DISPOSITIONS), draw(_NAMES))
    return f"{head}\n{inner}"


_TREES = st.recursive(_leaf(), _node, max_leaves=8)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=_TREES, crlf=st.booleans())
def test_generated_mime_trees_read_alike(tree: str, crlf: bool) -> None:
    raw = f"From: a@example.org\nMessage-ID: <t@example.org>\nMIME-Version: 1.0\n{tree}".encode(
        "utf-8", "surrogateescape"
    )
    if crlf:
        raw = raw.replace(b"\n", b"\r\n")
    assert disagreement(raw) == ""
