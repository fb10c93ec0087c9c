"""Thread order and keyset cursors, without a web server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from listgate.models import Message
from webarchive.reading.threads import BadCursor, decode_cursor, encode_cursor, order_thread

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _msg(pk: int, parent: int | None, minutes: int, status: str = "visible") -> Message:
    return Message(
        id=pk,
        parent_id=parent,
        date=T0 + timedelta(minutes=minutes),
        status=status,
        message_id=f"{pk}@x",
    )


def test_depth_first_with_siblings_by_date() -> None:
    msgs = [_msg(1, None, 0), _msg(2, 1, 5), _msg(3, 1, 1), _msg(4, 3, 2), _msg(5, 2, 6)]
    nodes = order_thread(msgs)
    assert [(n.message.id, n.depth, n.parent.id if n.parent else None) for n in nodes] == [
        (1, 0, None),
        (3, 1, 1),
        (4, 2, 3),
        (2, 1, 1),
        (5, 2, 2),
    ]


def test_hidden_and_held_posts_are_skipped_over() -> None:
    msgs = [
        _msg(1, None, 0),
        _msg(2, 1, 1, "held"),
        _msg(3, 2, 2),
        _msg(4, 3, 3, "hidden"),
        _msg(5, 4, 4),
    ]
    assert [(n.message.id, n.depth) for n in order_thread(msgs)] == [(1, 0), (3, 1), (5, 2)]


def test_a_parent_loop_in_bad_data_still_shows_every_post() -> None:
    msgs = [_msg(1, 2, 0), _msg(2, 1, 1), _msg(3, None, 2)]
    assert sorted(n.message.id for n in order_thread(msgs)) == [1, 2, 3]


def test_cursor_round_trip_and_garbage() -> None:
    when = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
    assert decode_cursor(encode_cursor(when, 42)) == (when, 42)
    for bad in ("", "abc", "1_", "_1", "99999999999999999999999_1", "1_" + "9" * 30, "1_²", "1_0"):
        with pytest.raises(BadCursor):
            decode_cursor(bad)
