"""A site with a real Celery worker for integration tests, and mail as a client writes it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from celery import Celery
from sqlalchemy import ColumnElement, func, insert, select
from sqlalchemy.orm import Session, sessionmaker

from listgate import dispatch, lists
from listgate.config import Settings
from listgate.db import transaction
from listgate.ingest import IngestResult, ingest
from listgate.mail.parser import parse
from listgate.models import Delivery, Subscription
from listgate.states import DmarcMode, SubscriptionState
from tests.support.config import make_settings, migrated
from tests.support.processes import WorkerProcess
from tests.support.sink import SmtpSink


@dataclass
class Site:
    """Settings, database and a producer app for one test."""

    settings: Settings
    env: dict[str, str]
    db: sessionmaker[Session]
    app: Celery
    list_name: str = "dev"  # the list a test made for itself (test_worker_mail gives each its own)
    log: Path | None = None  # the worker's log, when the test started one itself

    def post(self, raw: bytes, list_name: str = "dev") -> IngestResult:
        """Ingest a post as the gateway would, then enqueue its work after the commit."""
        with transaction(self.db) as session:
            result = ingest(
                session, parse(raw), lists.require(session, list_name), domain=self.settings.domain
            )
        dispatch.enqueue(self.app, result.outbox)
        return result

    def subscribe(
        self, list_name: str, *addresses: str, kind: str = "list", thread_id: int = 0
    ) -> None:
        """Active subscriptions, as an administrator adds them."""
        with transaction(self.db) as session:
            mlist = lists.require(session, list_name)
            if len(addresses) > 50:
                session.execute(
                    insert(Subscription),
                    [
                        {
                            "list_id": mlist.id,
                            "address": a,
                            "kind": kind,
                            "thread_key": thread_id,
                            "status": SubscriptionState.ACTIVE,
                        }
                        for a in addresses
                    ],
                )
            else:
                for address in addresses:
                    lists.subscribe(session, mlist, address, kind, thread_id)

    def deliveries(self, message_pk: int) -> dict[str, str]:
        """{address: status} of a post's deliveries."""
        with self.db() as session:
            return dict(
                session.execute(
                    select(Delivery.address, Delivery.status).where(
                        Delivery.message_pk == message_pk
                    )
                ).all()
            )

    def count(self, model: type, *where: ColumnElement[bool]) -> int:
        """How many rows of model match."""
        with self.db() as session:
            return session.scalar(select(func.count()).select_from(model).where(*where)) or 0


def mail(
    sender: str,
    subject: str,
    msgid: str,
    body: str = "Hello list.\n",
    *,
    to: str = "dev@lists.test",
    cc: str = "",
    in_reply_to: str = "",
    extra: str = "",
) -> bytes:
    """A small post as a mail client would write it (CRLF)."""
    lines = [f"From: {sender.split('@')[0].title()} <{sender}>", f"To: {to}"]
    if cc:
        lines.append(f"Cc: {cc}")
    lines += [
        f"Subject: {subject}",
        f"Message-ID: <{msgid}>",
        "Date: Wed, 25 Nov 2026 10:00:00 +0000",
    ]
    if in_reply_to:
        lines += [f"In-Reply-To: <{in_reply_to}>", f"References: <{in_reply_to}>"]
    if extra:
        lines.append(extra)
    lines += [
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
        "",
        *body.splitlines(),
    ]
    return ("\r\n".join(lines) + "\r\n").encode()


def site_for(tmp: Path, outbound: str, **env: str) -> Site:
    """Settings, a migrated database and a producer app for a site sending to `outbound`."""
    from worker.celery_app import make_celery

    env = {
        "LISTGATE_DATA_DIR": str(tmp / "var"),
        "LISTGATE_DOMAIN": "lists.test",
        "LISTGATE_SECRET_KEY": "test-secret-key-0123456789",
        "LISTGATE_OUTBOUND": outbound,
        "LISTGATE_BASE_URL": "https://lists.test",
        **env,
    }
    settings = make_settings(tmp, **env)
    return Site(settings, env, migrated(settings), make_celery(settings))


def build_site(tmp: Path, sink: SmtpSink, **env: str) -> Site:
    """site_for() the sink, with one list 'dev'."""
    site = site_for(tmp, sink.url, **env)
    with transaction(site.db) as session:
        # No DMARC lookups in these tests (the resolver would try the real DNS): see test_dmarc.py.
        lists.create(session, "dev", title="Developers").dmarc_mode = DmarcMode.NEVER
    return site


def worker_site(tmp: Path, outbound: str, **env: str) -> Iterator[Site]:
    """A migrated site sending to `outbound`, with one
    real worker running while the generator is open.
    """
    site = site_for(tmp, outbound, **env)
    proc = WorkerProcess(site.env, tmp / "worker.log").start()
    try:
        yield site
    finally:
        proc.stop()
        site.db.kw["bind"].dispose()
