"""Operations endpoints: /healthz (the database answers, the schema is current) and /metrics.

The metrics are read from database rows on every scrape (see listgate.status), so every
process and every gunicorn worker reports the same numbers. On the web port /metrics wants
the bearer token LISTGATE_METRICS_TOKEN, and without one it is not served there at all: a
reverse proxy on the same host makes every visitor's request come from 127.0.0.1, and one
that sends only X-Real-IP cannot be told from a local scraper. Without a token /metrics is
served on LISTGATE_METRICS_LISTEN, a loopback listener of its own (the same app; a request
is known to have come in there by the local address of its socket, which no header changes),
which serves the operations endpoints and nothing else.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import Iterator
from datetime import UTC, datetime

from flask import Blueprint, Response, abort, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from sqlalchemy import text

from listgate.schema import current, head
from listgate.states import DeliveryState
from listgate.status import Metrics, gather_metrics
from webarchive import context

log = logging.getLogger(__name__)
bp = Blueprint("ops", __name__)
OPERATIONS = ("ops.metrics", "ops.healthz")


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    """200 when the database answers and is migrated; 503 with the reason otherwise."""
    engine = context.resources().engine
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        revision, expected = current(engine), head()
    except Exception as exc:  # noqa: BLE001 - a health check reports, it does not raise
        log.warning("health check: database unavailable: %s", exc)
        return jsonify(status="error", database=f"unavailable: {type(exc).__name__}"), 503
    if revision != expected:
        return jsonify(
            status="error", database=f"at revision {revision}, code expects {expected}"
        ), 503
    return jsonify(status="ok", database="ok", revision=revision), 200


@bp.before_app_request
def _only_operations_on_the_metrics_listener() -> None:
    """The loopback metrics listener answers /metrics and /healthz; any other page is 404 there."""
    if request.endpoint not in OPERATIONS and on_metrics_listener(
        context.settings().metrics_listen
    ):
        abort(404)


@bp.get("/metrics")
def metrics() -> Response:
    """Prometheus text exposition of the counters and gauges (metrics listener, or bearer token)."""
    settings = context.settings()
    if not on_metrics_listener(settings.metrics_listen):
        refusal = _metrics_refusal(settings.metrics_token)
        if refusal is not None:
            return refusal
    snapshot = gather_metrics(context.db())
    body = generate_latest(_Snapshot(snapshot))
    return Response(body, content_type=CONTENT_TYPE_LATEST)


def _metrics_refusal(token: str) -> Response | None:
    """None when this request to the web port may read /metrics, else the 401/404 saying why."""
    if not token:
        return Response(
            "404 Not Found: /metrics is served on LISTGATE_METRICS_LISTEN (loopback), or here "
            "with the bearer token LISTGATE_METRICS_TOKEN.\n",
            404,
            mimetype="text/plain",
        )
    given = request.headers.get("Authorization", "")
    scheme, _, value = given.partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), token.encode()):
        return None
    log.warning("refused /metrics to %s: no or wrong bearer token", request.remote_addr)
    return Response(
        "401 Unauthorized: /metrics needs the bearer token set in LISTGATE_METRICS_TOKEN.\n",
        401,
        {"WWW-Authenticate": 'Bearer realm="metrics"'},
        mimetype="text/plain",
    )


def on_metrics_listener(listen: tuple[str, int] | None) -> bool:
    """Whether this request came in on the metrics listener: its socket's local port, no header."""
    if listen is None:
        return False
    sock = request.environ.get("werkzeug.socket") or request.environ.get("gunicorn.socket")
    if sock is None:  # a test client
        return False
    try:
        host, port = sock.getsockname()[:2]
        return bool(port == listen[1] and ipaddress.ip_address(host).is_loopback)
    except (AttributeError, OSError, TypeError, ValueError):  # not an IP socket
        return False


class _Snapshot:
    """A registry-like object that yields one scrape's metric families."""

    def __init__(self, m: Metrics) -> None:
        self.m = m

    def collect(self) -> Iterator[Metric]:
        """The metric families, named listgate_*."""
        m = self.m
        yield _counter(
            "listgate_received", "Messages accepted by the SMTP/LMTP listener.", {(): m.received}
        )
        yield _counter(
            "listgate_stored",
            "Messages archived, by status (visible or held).",
            _by("status", m.stored),
        )
        yield _counter(
            "listgate_refused",
            "Messages or recipients refused, by reason.",
            _by("reason", m.refused),
        )
        yield _counter(
            "listgate_delivered",
            "Copies handed to the outbound relay.",
            {(): m.deliveries.get(DeliveryState.SENT, 0)},
        )
        yield _counter(
            "listgate_bounced", "Bounce reports matched, by kind.", _by("kind", m.bounced)
        )
        yield _gauge("listgate_deliveries", "Delivery rows by status.", _by("status", m.deliveries))
        yield _gauge(
            "listgate_deferred",
            "Deliveries waiting for a retry after a temporary failure.",
            {(): m.deliveries.get(DeliveryState.DEFERRED, 0)},
        )
        yield _gauge("listgate_archived_messages", "Messages in the archive.", {(): m.archived})
        yield _gauge(
            "listgate_outbox_pending", "Outbox entries not done yet.", {(): m.outbox_pending}
        )
        yield _gauge(
            "listgate_outbox_failed",
            "Outbox entries that failed for good (not retried).",
            {(): m.outbox_failed},
        )
        yield _gauge(
            "listgate_not_posted", "Accepted mail kept in the not-posted queue.", {(): m.not_posted}
        )
        yield _gauge(
            "listgate_subscriptions_awaiting_approval",
            "Subscription requests waiting for a moderator.",
            {(): m.awaiting_approval},
        )
        yield _gauge(
            "listgate_queue_lag_seconds",
            "Age of the oldest outbox entry not done.",
            {(): m.queue_lag_seconds},
        )
        yield _gauge(
            "listgate_failed_posts",
            "Posts a relay refused as messages (not a recipient) in the last 30 days.",
            {(): len(m.failed)},
        )
        yield _gauge(
            "listgate_spool_pending",
            "Messages accepted (250) and not archived yet.",
            {(): m.spool.pending},
        )
        yield _gauge(
            "listgate_spool_age_seconds",
            "Age of the oldest message waiting in the spool.",
            {(): m.spool.oldest_seconds},
        )
        yield _gauge(
            "listgate_spool_failed",
            "Spooled messages whose archiving failed (listgate spool retry).",
            {(): m.spool.failed},
        )
        yield from _gateway_gauges(m)
        if m.last_received is not None:
            yield _gauge(
                "listgate_last_received_timestamp_seconds",
                "When the last mail was received (Unix time).",
                {(): m.last_received.timestamp()},
            )


Samples = dict[tuple[tuple[str, str], ...], float]  # ((label, value), ...) -> sample


def _gateway_gauges(m: Metrics) -> Iterator[Metric]:
    """Each gateway's connections and limits (those up), whether it is up, and when it last said.

    Every gateway whose report is in the database is here until it is replaced or forgotten
    (listgate.gateways): `listgate_gateway_up == 0` is the alert for one killed, crashed or hung.
    """
    now = m.read_at or datetime.now(UTC)
    live = [r for r in m.gateways if r.up(now)]
    for name, doc, value in (
        ("connections", "Connections open now, by gateway process.", "connections"),
        (
            "connection_limit",
            "A gateway's limit of connections (LISTGATE_MAX_CONNECTIONS).",
            "limit",
        ),
        (
            "network_share",
            "Connections one network may hold (LISTGATE_MAX_CONNECTIONS_PER_NETWORK).",
            "network_share",
        ),
    ):
        yield _gauge(
            f"listgate_gateway_{name}",
            doc,
            {(("gateway", r.name),): getattr(r, value) for r in live},
        )
    yield _gauge(
        "listgate_gateway_up",
        "1 while a gateway reports; 0 once it is not heard from for 60 s or its process is gone "
        "(until one starts on its address, or `listgate gateways forget`).",
        {(("gateway", r.name),): float(r.up(now)) for r in m.gateways},
    )
    yield _gauge(
        "listgate_gateway_unheard_seconds",
        "Seconds since a gateway last reported (it reports every 15 s; silent after 60).",
        {(("gateway", r.name),): max(0.0, (now - r.seen).total_seconds()) for r in m.gateways},
    )
    yield _gauge(
        "listgate_gateway_seen_timestamp_seconds",
        "When a gateway last reported its connections (Unix time); silent ones too.",
        {(("gateway", r.name),): r.seen.timestamp() for r in m.gateways},
    )


def _by(label: str, values: dict[str, int]) -> Samples:
    return {((label, key),): value for key, value in values.items()}


def _counter(name: str, doc: str, samples: Samples) -> Metric:
    return _family(CounterMetricFamily, name, doc, samples)


def _gauge(name: str, doc: str, samples: Samples) -> Metric:
    return _family(GaugeMetricFamily, name, doc, samples)


def _family(
    cls: type[CounterMetricFamily | GaugeMetricFamily], name: str, doc: str, samples: Samples
) -> Metric:
    """A metric family whose label names come from the samples' keys."""
    family = cls(name, doc, labels=[k for k, _ in next(iter(samples), ())])
    for key, value in samples.items():
        family.add_metric([v for _, v in key], value)
    return family
