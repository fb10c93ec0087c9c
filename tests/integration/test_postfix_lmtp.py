"""Behind a real MTA: a burst through Debian's Postfix, configured with README's lines, to the LMTP
listener.

Every post must be archived exactly once and Postfix must defer none: the MTA is one client
address opening many connections, so per-client limits that throttled it (421 "too many
connections", 451 "per minute") would defer part of the burst to Postfix's next retry.
Unknown lists are refused during the SMTP dialogue (reject_unverified_recipient).
"""

from __future__ import annotations

import os
import re
import smtplib
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select

from listgate.models import Message
from tests.integration.postfix import PostfixInstance
from tests.support.config import free_port, prepare, site_env, wait_until
from tests.support.reliability import size

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def readme_postfix_lines(domain: str, lmtp_port: int) -> str:
    """The main.cf lines of README's "Behind Postfix" section, for this domain and port."""
    section = (ROOT / "README.md").read_text().split("## Behind Postfix", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```ini\n(.*?)```", section, re.DOTALL)
    assert block, "README's Postfix section has no ```ini block"
    return (
        block.group(1)
        .replace("lists.example.org", domain)
        .replace("127.0.0.1:2525", f"127.0.0.1:{lmtp_port}")
    )


def post(i: int) -> bytes:
    """One post of the burst."""
    return (
        f"From: Ann <ann{i % 7}@example.org>\r\nTo: dev@lists.test\r\nSubject: burst {i}\r\n"
        f"Message-ID: <burst-{i}@example.org>\r\n\r\nPost number {i}.\r\n"
    ).encode()


def send_burst(port: int, numbers: list[int], refused: list[str]) -> None:
    """Submit posts to Postfix over one SMTP session."""
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as smtp:
        for i in numbers:
            try:
                smtp.sendmail(f"ann{i % 7}@example.org", ["dev@lists.test"], post(i))
            except smtplib.SMTPException as exc:
                refused.append(f"{i}: {exc}")


@pytest.mark.long(28)
def test_a_burst_through_postfix_is_archived_once_with_no_deferral(tmp_path: Path) -> None:
    burst = size(200, 700)
    # Tight per-client limits: the burst exceeds both, so only the MTA's exemption gets it through.
    env = site_env(
        tmp_path,
        LISTGATE_LMTP="true",
        LISTGATE_MAX_CONNECTIONS_PER_CLIENT="3",
        LISTGATE_MAX_MESSAGES_PER_MINUTE="40",
    )
    settings, db = prepare(env, "dev")
    lmtp_port = settings.smtp_port
    log = open(tmp_path / "gateway.log", "wb")  # noqa: SIM115 - closed below
    gateway = subprocess.Popen(
        [sys.executable, "-m", "listgate.cli", "gateway"],
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    mta = PostfixInstance(free_port(), readme_postfix_lines("lists.test", lmtp_port))
    try:
        assert wait_until(
            lambda: "gateway ready: LMTP" in (tmp_path / "gateway.log").read_text(), 30
        ), (tmp_path / "gateway.log").read_text()
        mta.start()
        with (
            smtplib.SMTP("127.0.0.1", mta.port, timeout=60) as smtp,
            pytest.raises(smtplib.SMTPRecipientsRefused) as unknown,
        ):
            smtp.sendmail(
                "ann@example.org", ["nosuch@lists.test"], b"Subject: lost\r\n\r\nlost\r\n"
            )
        code, text = unknown.value.recipients["nosuch@lists.test"]
        assert code == 550 and b"undeliverable" in text.lower(), text

        refused: list[str] = []
        senders = [
            threading.Thread(target=send_burst, args=(mta.port, list(range(k, burst, 4)), refused))
            for k in range(4)
        ]
        for t in senders:
            t.start()
        for t in senders:
            t.join(300)
        assert refused == []
        assert mta.wait_drained(120), f"Postfix still holds mail: {mta.deliveries()}"
        # probes
        outcomes = {
            k: v for k, v in mta.deliveries().items() if k not in ("deliverable", "undeliverable")
        }
        # nothing deferred for a later retry, nothing bounced
        assert outcomes == {"sent": burst}, outcomes
        with db() as session:
            rows = session.execute(
                select(Message.message_id, func.count()).group_by(Message.message_id)
            ).all()
        assert sorted(mid for mid, _ in rows) == sorted(
            f"burst-{i}@example.org" for i in range(burst)
        )
        assert all(n == 1 for _, n in rows)
    finally:
        mta.stop()
        gateway.terminate()
        gateway.wait(30)
        log.close()
