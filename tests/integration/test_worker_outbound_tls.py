"""Outbound STARTTLS + AUTH through a real Celery worker,
and no plaintext fallback when STARTTLS is missing.
"""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope
from aiosmtpd.smtp import Session as SmtpSession

from listgate.models import Delivery
from tests.support.config import free_port, wait_until
from tests.support.factories import stored_pk
from tests.support.processes import WorkerProcess
from tests.support.sink import SmtpSink, _Handler
from tests.support.worker import build_site, mail

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning"),
]


@dataclass
class TlsRecordingHandler(_Handler):
    """The sink's handler, also noting whether each message came over TLS."""

    over_tls: list[bool] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.over_tls.append(session.ssl is not None)
        return await super().handle_DATA(server, session, envelope)


@dataclass
class Relay:
    """A running aiosmtpd relay and what it saw."""

    controller: Controller
    handler: TlsRecordingHandler
    logins: list[tuple[bytes, bool]]

    @property
    def port(self) -> int:
        """The relay's port on 127.0.0.1."""
        return int(self.controller.port)


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A throwaway certificate for 127.0.0.1 (the worker trusts it via SSL_CERT_FILE)."""
    cert, key = tmp_path / "relay-cert.pem", tmp_path / "relay-key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def start_relay(tls: tuple[Path, Path] | None) -> Relay:
    """A relay wanting AUTH (list / s3cret): over
    STARTTLS only when tls is given, else plaintext.
    """
    logins: list[tuple[bytes, bool]] = []

    def check(
        server: SMTP, session: SmtpSession, envelope: Envelope, mechanism: str, auth_data: object
    ) -> AuthResult:
        login = getattr(auth_data, "login", b"")
        logins.append((login, session.ssl is not None))
        return AuthResult(
            success=login == b"list" and getattr(auth_data, "password", b"") == b"s3cret"
        )

    kwargs: dict[str, Any] = {"auth_require_tls": False}
    if tls is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(tls[0]), str(tls[1]))
        kwargs = {"tls_context": context, "require_starttls": True, "auth_require_tls": True}
    handler = TlsRecordingHandler()
    ctl = Controller(
        handler,
        hostname="127.0.0.1",
        port=free_port(),
        authenticator=check,
        auth_required=True,
        **kwargs,
    )
    ctl.start()
    return Relay(ctl, handler, logins)


@pytest.fixture
def relays() -> Iterator[list[Relay]]:
    """Relays started by a test, stopped afterwards."""
    started: list[Relay] = []
    yield started
    for relay in started:
        relay.controller.stop()


def test_worker_delivers_over_starttls_with_auth(
    tmp_path: Path, sink: SmtpSink, relays: list[Relay]
) -> None:
    cert, key = self_signed(tmp_path)
    relay = start_relay((cert, key))
    relays.append(relay)
    site = build_site(
        tmp_path, sink, LISTGATE_OUTBOUND=f"smtp+starttls://list:s3cret@127.0.0.1:{relay.port}"
    )
    site.subscribe("dev", "alice@example.org", "bob@example.org")
    proc = WorkerProcess({**site.env, "SSL_CERT_FILE": str(cert)}, tmp_path / "worker.log").start()
    try:
        post = site.post(mail("author@example.org", "Over TLS", "tls-post@example.org"))
        wait_until(
            lambda: set(site.deliveries(stored_pk(post)).values()) == {"sent"},
            what="both copies sent",
        )
    finally:
        proc.stop()
    received = relay.handler.received
    assert sorted(r.rcpt_tos[0] for r in received) == ["alice@example.org", "bob@example.org"]
    assert relay.handler.over_tls == [True, True], "every message must travel inside TLS"
    assert relay.logins and all(login == (b"list", True) for login in relay.logins), (
        "credentials only inside TLS"
    )
    assert not sink.received


def test_relay_without_starttls_defers_and_never_sees_credentials(
    tmp_path: Path, sink: SmtpSink, relays: list[Relay]
) -> None:
    relay = start_relay(None)  # plaintext relay that would happily take AUTH and mail in the clear
    relays.append(relay)
    site = build_site(
        tmp_path, sink, LISTGATE_OUTBOUND=f"smtp+starttls://list:s3cret@127.0.0.1:{relay.port}"
    )
    site.subscribe("dev", "alice@example.org")
    log = tmp_path / "worker.log"
    proc = WorkerProcess(site.env, log).start()
    try:
        post = site.post(mail("author@example.org", "No TLS", "no-tls@example.org"))
        wait_until(
            lambda: set(site.deliveries(stored_pk(post)).values()) == {"deferred"},
            what="the deferral",
        )
    finally:
        proc.stop()
    assert relay.logins == [], "no AUTH may be attempted without TLS"
    assert relay.handler.received == []
    assert "does not offer STARTTLS but LISTGATE_OUTBOUND demands it" in log.read_text(
        errors="replace"
    )
    with site.db() as session:
        row = session.query(Delivery).one()
        assert row.next_attempt_at is not None and "STARTTLS" in row.last_error
