"""Wire form and the Maildir wave (the embedded default): claim checks decide what is written."""

from __future__ import annotations

import mailbox
from pathlib import Path

from worker.mailer import ABANDONED, SENT
from worker.relay_sessions import Outgoing, SendDots, connect, wire_form


def test_wire_form_uses_crlf_doubles_leading_dots_and_ends_with_a_line_break() -> None:
    assert wire_form(b"Subject: x\n\n.hidden\nlast") == b"Subject: x\r\n\r\n..hidden\r\nlast\r\n"


def test_maildir_wave_writes_only_the_copies_still_claimed(tmp_path: Path) -> None:
    items = [
        Outgoing("dev+bounce-x@lists.test", f"r{i}@example.org", wire_form(b"Subject: s\n\n.dot\n"))
        for i in range(3)
    ]
    handed: list[set[int]] = []

    def handover(indexes: list[int], send_dots: SendDots) -> set[int]:
        assert indexes == [0, 1, 2]
        handed.append(send_dots({0, 2}))  # r1's claim was lost meanwhile
        return handed[-1]

    with connect(f"maildir:{tmp_path / 'out'}") as out:
        results = out.send(items, handover)
    assert [r.status for r in results] == [SENT, ABANDONED, SENT]
    assert handed == [{0, 2}]
    copies = sorted(m["Delivered-To"] for m in mailbox.Maildir(tmp_path / "out"))
    assert copies == ["r0@example.org", "r2@example.org"]
    for copy in mailbox.Maildir(tmp_path / "out"):
        assert copy["Return-Path"] == "<dev+bounce-x@lists.test>" and copy["Subject"] == "s"
        assert copy.get_payload() == ".dot\n"
