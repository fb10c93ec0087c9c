"""/healthz and /metrics."""

from __future__ import annotations

from datetime import UTC
from pathlib import Path

from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.orm import Session, sessionmaker

from listgate import counters
from listgate.config import Settings
from listgate.db import transaction
from listgate.models import Bounce, Delivery
from tests.support.factories import MakeList, make_mail, post
from tests.support.gateway import through_hooks


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text page, keyed by name and labels."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_healthz_is_ok_on_a_migrated_database(client: FlaskClient) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.get_json()["status"] == "ok"


def test_healthz_is_503_when_the_database_is_not_migrated(tmp_path: Path) -> None:
    from tests.support.config import make_settings
    from webarchive import create_app

    app = create_app(make_settings(tmp_path))
    r = app.test_client().get("/healthz")
    assert r.status_code == 503
    assert "expects" in r.get_json()["database"]


def test_healthz_is_503_when_the_database_is_unreachable(tmp_path: Path) -> None:
    from tests.support.config import make_settings
    from webarchive import create_app

    app = create_app(
        make_settings(tmp_path, LISTGATE_DATABASE_URL="postgresql://lg@127.0.0.1:1/lg")
    )
    r = app.test_client().get("/healthz")
    assert r.status_code == 503
    assert r.get_json()["database"].startswith("unavailable")


def test_metrics_expose_what_happened(
    settings: Settings, db: sessionmaker[Session], make_list: MakeList
) -> None:
    from webarchive import create_app

    token = "metrics-token-0123456789"
    client = create_app(settings.with_(metrics_token=token)).test_client()
    make_list("dev")
    stored = post(db, make_mail("hello"))
    with transaction(db) as session:
        counters.bump(session, counters.RECEIVED, n=3)
        counters.bump(session, counters.STORED, "visible")
        counters.bump(session, counters.REFUSED, "unknown-list", n=2)
        session.add(Delivery(message_pk=stored.message_pk, address="a@x.org", status="sent"))
        session.add(Delivery(message_pk=stored.message_pk, address="b@x.org", status="deferred"))
        refused = Delivery(message_pk=stored.message_pk, address="c@x.org", status="refused")
        session.add(refused)
        session.flush()
        session.add(
            Bounce(
                delivery_id=refused.id,
                address="c@x.org",
                kind="refused",
                diagnostic="552 5.3.4 too big",
            )
        )
    r = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200 and r.content_type.startswith("text/plain")
    got = samples(r.get_data(as_text=True))
    assert got[("listgate_received_total", ())] == 3
    assert got[("listgate_stored_total", (("status", "visible"),))] == 1
    assert got[("listgate_refused_total", (("reason", "unknown-list"),))] == 2
    assert got[("listgate_delivered_total", ())] == 1
    assert got[("listgate_deferred", ())] == 1
    assert ("listgate_queue_lag_seconds", ()) in got
    assert got[("listgate_failed_posts", ())] == 1  # a post the relay refused as a message
    assert got[("listgate_bounced_total", (("kind", "refused"),))] == 1


def test_metrics_show_failed_work_and_what_waits_for_moderators(
    settings: Settings, db: sessionmaker[Session], make_list: MakeList
) -> None:
    from datetime import datetime

    from listgate.models import OutboxEntry
    from webarchive import create_app

    token = "metrics-token-0123456789"
    client = create_app(settings.with_(metrics_token=token)).test_client()

    make_list("dev")
    post(db, make_mail("auto", headers={"Auto-Submitted": "auto-replied"}))
    with transaction(db) as session:
        now = datetime.now(UTC)
        session.add(
            OutboxEntry(
                kind="listgate.handle_command", done_at=now, failed_at=now, last_error="boom"
            )
        )
    got = samples(
        client.get("/metrics", headers={"Authorization": f"Bearer {token}"}).get_data(as_text=True)
    )
    assert got[("listgate_outbox_failed", ())] == 1
    assert got[("listgate_not_posted", ())] == 1
    assert got[("listgate_subscriptions_awaiting_approval", ())] == 0


def test_metrics_show_the_spool_waiting_for_the_archiver(
    db: sessionmaker[Session], settings: Settings, make_list: MakeList
) -> None:
    from gateway.handler import GatewayHandler
    from webarchive import create_app

    token = "metrics-token-0123456789"
    client = create_app(settings.with_(metrics_token=token)).test_client()
    make_list("dev")
    handler = GatewayHandler(settings, db)
    for n in range(3):  # answered 250, not archived: no archiver runs here
        raw = b"From: a@example.org\r\nSubject: s\r\nMessage-ID: <spool%d@x>\r\n\r\nx\r\n" % n
        assert through_hooks(handler, raw, "a@example.org", ["dev@lists.test"]).endswith("stored")
    handler.spool.close()
    got = samples(
        client.get("/metrics", headers={"Authorization": f"Bearer {token}"}).get_data(as_text=True)
    )
    assert got[("listgate_spool_pending", ())] == 3
    assert got[("listgate_spool_age_seconds", ())] >= 0
    assert got[("listgate_spool_failed", ())] == 0


def test_metrics_say_which_gateway_is_up_and_how_long_each_was_unheard(
    settings: Settings, db: sessionmaker[Session]
) -> None:
    from datetime import datetime, timedelta

    from listgate import gateways
    from webarchive import create_app

    token = "metrics-token-0123456789"
    client = create_app(settings.with_(metrics_token=token)).test_client()
    now = datetime.now(UTC)
    with transaction(db) as session:
        gateways.report(session, "a/1/0.0.0.0:25", 3, 100, 25, now)
        gateways.report(session, "b/2/0.0.0.0:25", 5, 100, 25, now - timedelta(minutes=10))
    r = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    got = samples(r.get_data(as_text=True))
    a, b = (("gateway", "a/1/0.0.0.0:25"),), (("gateway", "b/2/0.0.0.0:25"),)
    assert (got[("listgate_gateway_up", a)], got[("listgate_gateway_up", b)]) == (1, 0)
    assert 0 <= got[("listgate_gateway_unheard_seconds", a)] < 60
    assert 600 <= got[("listgate_gateway_unheard_seconds", b)] < 660
    # the numbers of one not heard from are old: not given as today's
    assert got[("listgate_gateway_connections", a)] == 3
    assert ("listgate_gateway_connections", b) not in got
