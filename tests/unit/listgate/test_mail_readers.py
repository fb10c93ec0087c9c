"""Every reader of raw mail agrees on where the header ends and what it holds, malformed mail
included.

Before listgate.mail, five places split header from body and disagreed on malformed mail: the
importer took a Message-ID from the body, the worker read a Cc: line of the body (and skipped
that subscriber's copy) while the archive had no Cc at all.
"""

from __future__ import annotations

import ast
import email
from email.policy import compat32
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from listgate.mail import fields, mime, stream
from listgate.mail.parser import parse, parse_head, parse_message_id
from listgate.mail.shape import header_shape
from listgate.mail.split import BARE_CR, header_block, header_end
from worker.headers import ListInfo, addresses_in, has_header, rewrite_from

BODY = b"Message-ID: <in-body@example.org>\nCc: bob@example.net\n\nhello\n"
MALFORMED = {
    "LF fields, a CRLF blank line": b"From: ann@example.org\nSubject: s\n\r\n" + BODY,
    "a line without a colon, no blank line": b"From: ann@example.org\nSubject: s\nno colon here\n"
    + BODY,
    "a space before a colon": b"From: ann@example.org\nSubject : s\n" + BODY,
    "an 8-bit field name": b"From: ann@example.org\nSubj\xe9ct: s\n" + BODY,
    "a continuation first, a name-less field": b" stray\nFrom: ann@example.org\n: no name\n\n"
    + BODY,
    "CRLF fields, an LF blank line": b"From: ann@example.org\r\nSubject: s\r\n\n" + BODY,
    "no header at all": b"\r\n" + BODY,
}


@pytest.mark.parametrize("raw", MALFORMED.values(), ids=MALFORMED.keys())
def test_every_reader_takes_the_header_block_the_archive_stores(raw: bytes) -> None:
    parsed = parse(raw)
    # the Message-ID and Cc lines are body
    assert parsed.message_id_generated and parsed.cc_addrs == ()
    # gateway, importer
    assert parse_head(raw).message_id == parse_message_id(raw) == parsed.message_id
    # the worker's copies
    assert not has_header(raw, "Message-ID") and addresses_in(raw, "To", "Cc") == set()
    names = [n for n, _ in parsed.headers]
    assert names == [n for n, _ in fields.read(raw).fields]
    # the gateway's limits count at least these
    assert header_shape(header_block(raw)).fields >= len(names)
    assert b"in-body@example.org" not in header_block(raw)
    assert "hello" in parsed.body_text


@pytest.mark.parametrize("raw", MALFORMED.values(), ids=MALFORMED.keys())
def test_both_body_decoders_read_the_same_body(raw: bytes) -> None:
    header = fields.read(raw)
    small, big = mime.decode(raw, header, []), stream.decode(raw, header, [])
    assert small[0].strip() == big[0].strip() and "in-body@example.org" in small[0]


def test_the_dmarc_rewrite_keeps_every_byte_of_a_malformed_block() -> None:
    raw = MALFORMED["a line without a colon, no blank line"]
    info = ListInfo("dev", "Dev", "lists.test", "https://lists.test")
    out = rewrite_from(raw, info, "Ann", "ann@example.org")
    assert out.endswith(b"Subject: s\nno colon here\n" + BODY) and out.startswith(b"From: ")


_NAME = st.sampled_from(
    [b"From", b"To", b"Subject", b"Message-ID", b"X-A", b"", b"Bad Name", b"\xe9t\xe9", b"From "]
)
_TEXT = st.binary(max_size=12).map(lambda b: b.replace(b"\n", b"").replace(b"\r", b""))
_LINE = st.one_of(
    st.tuples(_NAME, st.sampled_from([b":", b": ", b":\t", b""]), _TEXT).map(b"".join),
    st.tuples(st.sampled_from([b" ", b"\t", b"\r"]), _TEXT).map(b"".join),
    st.sampled_from([b"", b"From someone Mon Jan 1", b"--b", b"\r"]),
)
_BLOCK = st.lists(st.tuples(_LINE, st.sampled_from([b"\r\n", b"\n", b"\r\r\n"])), max_size=8).map(
    lambda lines: b"".join(a + b for a, b in lines)
)


@settings(max_examples=400, deadline=None)
@given(_BLOCK, st.sampled_from([b"", b"body line\r\n", b"Message-ID: <b@x>\r\n"]))
@example(b"From: a@x\nSubject: s\n\r\n", b"Message-ID: <b@x>\r\n")
def test_the_reader_reads_fields_as_the_standard_library_does(block: bytes, body: bytes) -> None:
    raw = block + body
    end = header_end(raw)[0]
    readable = BARE_CR.sub(b" ", raw[:end]) + raw[end:]  # a bare CR is a space in the header block
    msg = email.message_from_bytes(readable, policy=compat32)
    assert list(fields.read(raw).fields) == [(str(k), str(v)) for k, v in msg.raw_items()]
    stdlib = {type(d).__name__ for d in msg.defects}
    ours = {d.split(":", 1)[0] for d in fields.read(raw).defects}
    assert ours == stdlib


_PARSERS = {
    "message_from_bytes",
    "message_from_binary_file",
    "BytesParser",
    "BytesHeaderParser",
    "BytesFeedParser",
}


def _names(node: ast.AST) -> list[str]:
    """The module or attribute names a node mentions."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if isinstance(node, ast.ImportFrom):
        return [a.name for a in node.names] + [node.module or ""]
    return (
        [node.attr]
        if isinstance(node, ast.Attribute)
        else [node.id]
        if isinstance(node, ast.Name)
        else []
    )


def test_no_module_outside_listgate_mail_parses_raw_mail_itself() -> None:
    """import-linter holds mail-parser to listgate.mail; this
    holds the standard library's byte parsers there too.
    """
    root = Path(__file__).resolve().parents[3]
    found = []
    for package in ("listgate", "gateway", "worker", "webarchive"):
        for path in (root / package).rglob("*.py"):
            if path.parent == root / "listgate" / "mail":
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                found += [
                    f"{path.relative_to(root)}:{getattr(node, 'lineno', '?')}: {name}"
                    for name in _names(node)
                    if name in _PARSERS
                    or name.split(".")[0] == "mailparser"
                    or name in ("email.parser", "email.feedparser")
                ]
    assert found == []
