"""reparse.compare: which stored attachment rows stay (their download address with them), which
are new, gone or renamed, and when a web edit keeps its text."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from types import SimpleNamespace

from listgate.mail.message import ParsedAttachment
from listgate.mail.parser import parse
from listgate.reparse import Change, _Row, compare

MAIL = parse(b"From: a@example.org\r\nMessage-ID: <c@x>\r\n\r\nthe text\r\n")


def _att(name: str, data: bytes, ctype: str = "application/octet-stream") -> ParsedAttachment:
    return ParsedAttachment(name, ctype, data)


def _row(pk: int, place: int, att: ParsedAttachment) -> _Row:
    return _Row(pk, place, att.filename, att.content_type, att.sha256)


def _stored(text: str = "the text\r\n", edited: bool = False) -> SimpleNamespace:
    return SimpleNamespace(
        body_text=text,
        body_html="",
        is_flowed=False,
        edited_at=datetime.now(UTC) if edited else None,
    )


def _compare(stored: SimpleNamespace, rows: list[_Row], *new: ParsedAttachment) -> Change:
    change = Change(1, "c@x", replace(MAIL, attachments=tuple(new)))
    compare(change, stored, rows)
    return change


def test_the_same_derivation_changes_nothing() -> None:
    a, b = _att("a.bin", b"a"), _att("b.bin", b"b")
    change = _compare(_stored(MAIL.body_text), [_row(7, 0, a), _row(8, 1, b)], a, b)
    assert not change.any


def test_a_file_found_before_the_others_is_added_and_they_keep_their_rows() -> None:
    sig, a = _att("attachment-1.asc", b"sig", "application/pgp-signature"), _att("a.bin", b"a")
    change = _compare(_stored(MAIL.body_text), [_row(7, 0, a)], sig, a)
    assert change.added == [(0, sig)] and change.removed == [] and change.renamed == 0
    assert [(r.id, place) for r, place, _ in change.moved] == [(7, 1)]


def test_the_same_bytes_under_another_name_are_renamed_in_their_row() -> None:
    old, new = _att("attachment-1.txt", b"notes", "text/plain"), _att("notes.txt", b"notes")
    change = _compare(_stored(MAIL.body_text), [_row(7, 0, old)], new)
    assert change.renamed == 1 and not change.added and not change.removed
    assert [(r.id, a.filename) for r, _, a in change.moved] == [(7, "notes.txt")]


def test_two_copies_of_the_same_bytes_each_keep_a_row_the_name_they_had_first() -> None:
    one, two = _att("one.bin", b"same"), _att("two.bin", b"same")
    change = _compare(_stored(MAIL.body_text), [_row(7, 0, two), _row(8, 1, one)], one, two)
    assert change.renamed == 0 and not change.added and not change.removed
    assert sorted((r.id, place) for r, place, _ in change.moved) == [(7, 1), (8, 0)]


def test_a_file_the_decoder_no_longer_sees_is_removed() -> None:
    a, noise = _att("a.bin", b"a"), _att("noise.bin", b"noise")
    change = _compare(_stored(MAIL.body_text), [_row(7, 0, a), _row(8, 1, noise)], a)
    assert change.removed == [_row(8, 1, noise)] and not change.added


def test_an_edited_post_keeps_its_text_and_says_so() -> None:
    change = Change(1, "c@x", MAIL)
    assert compare(change, _stored("edited", edited=True), []) is True
    assert not change.text and not change.any
    unedited = Change(1, "c@x", MAIL)
    assert compare(unedited, _stored("old decoder's text"), []) is False
    assert unedited.text
