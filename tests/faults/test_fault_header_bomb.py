"""Hostile header shapes over SMTP: each gets a clear 5xx, nothing is stored, other clients are
served meanwhile.

A header folded over 300k short lines (1.2 MB) was stored, then its fan-out read it with a
quadratic join inside the write transaction: every write stalled about 60 s and a legitimate
client got 451. A multipart nested 3,000 deep with `boundary*0=` (RFC 2231) passed the MIME depth
check. A Subject folded over 100k lines is refused like any over-folded field.
"""

from __future__ import annotations

import smtplib
import threading
import time
from pathlib import Path

import pytest

from tests.support.config import prepare, site_env
from tests.support.gateway import archived_ids
from tests.support.processes import gateway
from tests.support.reliability import post, record, size

pytestmark = [pytest.mark.integration, pytest.mark.soak]
REASONS = ("header block of", "folded over", "nested 3000 deep")  # what the 5xx must name


def _folded(msgid: str, field: str, lines: int) -> bytes:
    return (
        f"From: a@example.org\r\nTo: dev@lists.test\r\nMessage-ID: <{msgid}>\r\n{field}: x".encode()
        + b"\r\n y" * lines
        + b"\r\n\r\nbody\r\n"
    )


def _mime_2231(msgid: str, depth: int) -> bytes:
    out = (
        f"From: a@example.org\r\nTo: dev@lists.test\r\nMessage-ID: <{msgid}>\r\nSubject: deep\r\n"
    ).encode()
    for i in range(depth - 1):
        out += b'Content-Type: multipart/mixed; boundary*0="b%d"\r\n\r\n--b%d\r\n' % (i, i)
    out += b"Content-Type: text/plain\r\n\r\nleaf\r\n"
    for i in reversed(range(depth - 1)):
        out += b"--b%d--\r\n" % i
    return out


def _send(port: int, raw: bytes, source: str = "127.0.0.1") -> tuple[int, str]:
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=300, source_address=(source, 0)) as c:
            c.sendmail("a@example.org", ["dev@lists.test"], raw)
        return 250, ""
    except smtplib.SMTPResponseException as exc:
        error = exc.smtp_error
        assert isinstance(error, bytes)  # smtplib reads replies as bytes
        return exc.smtp_code, error.decode(errors="replace")


def test_hostile_header_shapes_get_a_clear_5xx_and_others_are_served(tmp_path: Path) -> None:
    lines = size(300_000, 6_000_000)  # 1.2 MB; 24 MB under SOAK=1 (just under the size limit)
    attacks = {
        f"header folded over {lines} lines ({lines * 4 // 1_000_000} MB)": _folded(
            "bomb@example.org", "X-Fold", lines
        ),
        "Subject folded over 100k lines": _folded("subject@example.org", "Subject", 100_000),
        "multipart nested 3,000 deep via boundary*0= (RFC 2231)": _mime_2231(
            "deep@example.org", 3000
        ),
    }
    env = site_env(tmp_path, LISTGATE_MAX_MESSAGES_PER_MINUTE="100000")
    settings, db = prepare(env, "dev")
    gw = gateway(env, tmp_path / "gateway.log").start()
    others: dict[str, int] = {}
    stop = threading.Event()

    def legitimate() -> None:  # another client posting all along
        i = 0
        while not stop.is_set():
            others[f"ok{i}@example.org"] = _send(
                settings.smtp_port, post(f"ok{i}@example.org"), "127.0.0.2"
            )[0]
            i += 1
            time.sleep(0.05)

    meanwhile = threading.Thread(target=legitimate)
    meanwhile.start()
    try:
        replies = {name: _send(settings.smtp_port, raw) for name, raw in attacks.items()}
    finally:
        stop.set()
        meanwhile.join(120)
        gw.stop()
    stored = archived_ids(db)
    for name, (code, text) in replies.items():
        held = 500 <= code < 600 and any(reason in text for reason in REASONS)
        record(
            f"hostile header: {name}",
            1,
            0,
            0,
            None,
            f"{code} {text[:70]}; {len(others)} posts of another client meanwhile, "
            f"{sum(c == 250 for c in others.values())} got 250",
            held=int(held),
        )
    assert all(
        code in (552, 554) and any(r in text for r in REASONS) for code, text in replies.values()
    ), replies
    assert others and set(others.values()) == {250}, others
    assert sorted(stored) == sorted(others)
