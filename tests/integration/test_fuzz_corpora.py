"""Real mail the gateway's own corpus test does not cover — bounces and linux-man — through real
SMTP.

(hyperkitty-testdata and mailman-eml go through SMTP in test_gateway_broken_mail.py.) Every message
gets a 250, as a mail server would give it, and each stored post keeps its exact bytes.
"""

from __future__ import annotations

import re
import smtplib
from collections.abc import Iterator

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from listgate.config import Settings
from listgate.mail.parser import parse
from listgate.models import Message, MessageVariant
from tests.support.config import prepare, site_env
from tests.support.corpora import corpus, linux_man
from tests.support.gateway import settle
from tests.support.processes import Service, gateway
from tests.support.reliability import record, size

pytestmark = [pytest.mark.integration, pytest.mark.soak]


def crlf(data: bytes) -> bytes:
    """Line ends as they travel over SMTP, ending in one."""
    data = re.sub(rb"\r?\n", b"\r\n", data)
    return data if data.endswith(b"\r\n") else data + b"\r\n"


def as_sent(archived: bytes) -> bytes:
    """The mail as its author sent it: without the
    list's own 'Precedence: bulk' (we drop list mail).
    """
    head, sep, body = archived.partition(b"\n\n")
    return re.sub(rb"(?mi)^Precedence:[^\n]*\n", b"", head + b"\n")[:-1] + sep + body


def _deliver(
    port: int, mails: Iterator[tuple[str, bytes]], rcpt: str
) -> tuple[dict[str, bytes], list[str]]:
    """Send each (name, bytes) over one connection;
    ({name: bytes} accepted and stored, [refusals]).
    """
    stored, refused = {}, []
    c = smtplib.SMTP("127.0.0.1", port, timeout=60)
    try:
        for name, data in mails:
            try:
                c.ehlo_or_helo_if_needed()
                c.mail("sender@example.org")
                code, text = c.rcpt(rcpt)
                assert code == 250, text
                code, text = c.data(data)
            except smtplib.SMTPServerDisconnected:
                refused.append(f"{name}: connection dropped")
                c = smtplib.SMTP("127.0.0.1", port, timeout=60)
                continue
            if code != 250:
                refused.append(f"{name}: {code} {text!r}")
                c.rset()
            elif text.endswith(b": stored"):  # not "already archived, not stored twice"
                stored[name] = data
    finally:
        c.close()
    return stored, refused


@pytest.fixture(scope="module")
def site(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Settings, sessionmaker[Session], Service]]:
    tmp = tmp_path_factory.mktemp("corpora")
    env = site_env(tmp, LISTGATE_MAX_MESSAGES_PER_MINUTE="100000")
    settings, db = prepare(env, "dev")
    gw = gateway(env, tmp / "gateway.log").start()
    yield settings, db, gw
    gw.stop()


def _check_stored(db: sessionmaker[Session], stored: dict[str, bytes]) -> None:
    settle(db)  # a 250 means spooled: wait for the archiver
    with db() as session:
        for name, data in stored.items():
            msg = session.scalars(
                select(Message).where(Message.message_id == parse(data).message_id)
            ).first()
            assert msg is not None, f"{name}: 250 stored, but not in the archive"
            # Other bytes under a Message-ID spooled before the first copy was archived are kept as
            # a variant of it (linux-man #1095/#1096 share one): they must be there, intact.
            kept = [msg.raw.data] + [
                v.raw.data
                for v in session.scalars(
                    select(MessageVariant).where(MessageVariant.message_pk == msg.id)
                )
            ]
            assert data in kept, f"{name}: stored bytes differ"


def test_real_bounces_through_smtp(site: tuple[Settings, sessionmaker[Session], Service]) -> None:
    files = sorted(corpus("bounces", "data").glob("*.txt"))
    settings, db, gw = site
    mails = ((f.name, crlf(f.read_bytes())) for f in files)
    stored, refused = _deliver(settings.smtp_port, mails, "dev@lists.test")
    assert refused == []
    _check_stored(db, stored)
    # and to a VERP bounce address, where the worker reads them: all taken
    mails = ((f.name, crlf(f.read_bytes())) for f in files[:20])
    assert _deliver(settings.smtp_port, mails, "dev+bounce-abcd1234@lists.test")[1] == []
    assert gw.process.poll() is None and "Traceback" not in gw.text()


def test_linux_man_messages_through_smtp(
    site: tuple[Settings, sessionmaker[Session], Service],
) -> None:
    settings, db, gw = site
    n = size(100, 3000)
    mails = ((f"linux-man #{i}", crlf(as_sent(data))) for i, data in enumerate(linux_man(n)))
    stored, refused = _deliver(settings.smtp_port, mails, "dev@lists.test")
    record(
        "real mail through SMTP (linux-man + bounces)",
        n + 117,
        len(refused),
        0,
        None,
        f"{len(stored)} stored, others duplicates or automatic mail",
    )
    assert refused == []
    assert len(stored) > n * 0.9
    _check_stored(db, stored)
    assert gw.process.poll() is None and "Traceback" not in gw.text()
