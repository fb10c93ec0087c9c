"""The MIME tree mail-parser is given (listgate.mail.mime._tree): the standard library's reading
of the shaping fields and the body, and a single part's body not read line by line."""

from __future__ import annotations

import email
import email.feedparser
from email.message import Message
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from listgate.mail import fields, mime
from listgate.mail.bodies import shaping_fields
from listgate.mail.parser import parse


def _whole(raw: bytes) -> Message:
    """What the standard library reads of the shaping fields and body fed whole."""
    header = fields.read(raw)
    view = b"".join(
        f"{n}: {v}\n".encode("ascii", "surrogateescape") for n, v in shaping_fields(header)
    )
    return email.message_from_bytes(view + b"\n" + raw[header.body :])


def _seen(msg: Message) -> list[tuple[Any, ...]]:
    return [
        (
            p.items(),
            None if p.is_multipart() else p.get_payload(),
            [type(d).__name__ for d in p.defects],
            p.preamble,
            p.epilogue,
            p.get_default_type(),
            p.get_unixfrom(),
        )
        for p in msg.walk()
    ]


_LINE_END = st.sampled_from([b"\n", b"\r\n", b"\r", b"\x0b\n", b""])
_CONTENT_TYPE = st.sampled_from(
    [
        b"text/plain",
        b'text/plain; charset="utf-8"; format=flowed',
        b"text/html;\r\n charset=iso-8859-1",
        b"application/octet-stream; name=x.bin",
        b"multipart/mixed; boundary=b1",
        b"multipart/alternative",  # no boundary
        b"message/rfc822",
        b"message/delivery-status",
        b"multipart",  # broken
        b"",
        b"\xff/\xfe",
    ]
)
_BODY_LINE = st.sampled_from(
    [b"text", b"--b1", b"--b1--", b"", b"Content-Type: text/plain", b"\xe9t\xe9", b" folded", b"x:"]
)


@settings(max_examples=300, deadline=None)
@given(
    content_type=st.one_of(st.none(), _CONTENT_TYPE),
    encoding=st.sampled_from([None, b"base64", b"8bit", b"quoted-printable"]),
    others=st.lists(st.sampled_from([b"Subject: s", b"From: a@example.org", b"X-Y: z"])),
    body=st.lists(st.tuples(_BODY_LINE, _LINE_END), max_size=12),
    end=_LINE_END,
)
def test_the_tree_is_the_standard_librarys_reading_of_the_whole(
    content_type: bytes | None,
    encoding: bytes | None,
    others: list[bytes],
    body: list[tuple[bytes, bytes]],
    end: bytes,
) -> None:
    head = list(others)
    if content_type is not None:
        head.append(b"Content-Type: " + content_type)
    if encoding is not None:
        head.append(b"Content-Transfer-Encoding: " + encoding)
    sep = end if end in (b"\n", b"\r\n") else b"\n"
    raw = sep.join(head) + sep + sep + b"".join(line + e for line, e in body)
    header = fields.read(raw)
    assert _seen(mime._tree(header, raw[header.body :])) == _seen(_whole(raw))


@pytest.mark.parametrize(
    "content_type,fed",
    [("text/plain; charset=utf-8", False), ("multipart/mixed; boundary=b1", True)],
)
def test_a_single_parts_body_is_not_read_line_by_line(
    monkeypatch: pytest.MonkeyPatch, content_type: str, fed: bool
) -> None:
    """The feed parser's lines cost about 5 µs each (a linux-man message's body: 0.05 ms); a
    single part's body is its payload as it came, so its lines are not read; a multipart's are."""
    lines = [f"line {i} of the body" for i in range(2000)]
    if fed:
        lines = ["--b1", "Content-Type: text/plain", "", *lines, "--b1--"]
    raw = (
        f"From: a@example.org\nSubject: s\nMessage-ID: <t@example.org>\n"
        f"Content-Type: {content_type}\n\n" + "\n".join(lines) + "\n"
    ).encode()
    read = 0
    lines_of: Any = email.feedparser.BufferedSubFile  # type: ignore[attr-defined]  # its line reader
    real = lines_of.readline

    def counted(self: object) -> Any:
        nonlocal read
        read += 1
        return real(self)

    monkeypatch.setattr(lines_of, "readline", counted)
    parsed = parse(raw)
    assert parsed.body_text.splitlines()[-1] == "line 1999 of the body"
    if fed:
        assert read >= 2000
    else:
        assert read < 10, f"the feed parser read {read} lines of a single part's body"
