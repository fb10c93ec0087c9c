"""The sessions to the outbound relay: authentication, 8-bit mail intact, sessions reused
across waves, each reply mapped to its outcome, lost claims dropped before the final dot.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope
from aiosmtpd.smtp import Session as SmtpSession

from tests.support.config import free_port, wait_until
from tests.support.factories import stored_pk
from tests.support.processes import WorkerProcess
from tests.support.sink import SmtpSink, _Handler
from tests.support.worker import build_site, mail
from worker.mailer import ABANDONED, BOUNCED, DEFERRED, SENT
from worker.relay_sessions import SIZE, Outgoing, SendDots, SmtpWave, connect, wire_form

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning"),
]


class CountingHandler(_Handler):
    """The sink's handler, also counting connections."""

    connections = 0

    async def handle_EHLO(
        self,
        server: SMTP,
        session: SmtpSession,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        type(self).connections += 1
        session.host_name = hostname
        return responses


@pytest.fixture
def relay() -> Iterator[tuple[Controller, CountingHandler]]:
    """An aiosmtpd relay that wants AUTH (user 'list', password 's3cret')."""

    def check(
        server: SMTP, session: SmtpSession, envelope: Envelope, mechanism: str, auth_data: object
    ) -> AuthResult:
        ok = (
            getattr(auth_data, "login", b"") == b"list"
            and getattr(auth_data, "password", b"") == b"s3cret"
        )
        return AuthResult(success=ok, handled=False)  # refused: "535 ... credentials invalid"

    handler = CountingHandler()
    CountingHandler.connections = 0
    ctl = Controller(
        handler,
        hostname="127.0.0.1",
        port=free_port(),
        authenticator=check,
        auth_required=True,
        auth_require_tls=False,
    )
    ctl.start()
    yield ctl, handler
    ctl.stop()


def all_ours(live: list[int], send_dots: SendDots) -> set[int]:
    """The handover of a worker that lost no claim: every copy gets its final dot."""
    return send_dots(set(live))


def copies(data: bytes, count: int, start: int = 0) -> list[Outgoing]:
    """One copy of data for each of r{start}..r{start + count - 1}@example.org."""
    wire = wire_form(data)
    return [
        Outgoing("dev+bounce-x@lists.test", f"r{i}@example.org", wire, not wire.isascii())
        for i in range(start, start + count)
    ]


def test_authenticated_relay_gets_8bit_mail_intact_over_sessions_reused_across_waves(
    relay: tuple[Controller, CountingHandler],
) -> None:
    ctl, handler = relay
    body = "Grüße aus Köln — ünïcödé\r\n.leading dot\r\n".encode()
    data = (
        b"Subject: 8bit\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n\r\n" + body
    )
    with connect(f"smtp://list:s3cret@127.0.0.1:{ctl.port}", size=2) as out:
        results = [r for start in (0, 2, 4) for r in out.send(copies(data, 2, start), all_ours)]
    assert [r.status for r in results] == [SENT] * 6
    assert [r.data for r in handler.received] == [data] * 6
    assert CountingHandler.connections == 2


def test_a_relay_refusing_the_login_is_not_asked_again_by_every_wave(
    relay: tuple[Controller, CountingHandler],
) -> None:
    """A wrong password (535) refuses every session: the first wave finds it out, the later
    waves of the same fan-out or digest run defer their copies untried, instead of logging in
    again and again (a relay locks an account, or bans the address, after a few)."""
    ctl, _handler = relay
    with connect(f"smtp://list:wrong@127.0.0.1:{ctl.port}", size=2) as out:
        waves = [
            out.send(copies(b"Subject: x\r\n\r\ny\r\n", 2, start), all_ours) for start in (0, 2, 4)
        ]
    assert [(r.status, r.code) for wave in waves for r in wave] == [(DEFERRED, 535)] * 6
    assert all(
        "535" in r.detail or "credentials" in r.detail.lower() or "auth" in r.detail.lower()
        for wave in waves
        for r in wave
    ), waves
    assert CountingHandler.connections == 2, "the relay was asked to log in by every wave"


def test_a_relay_refusing_some_sessions_is_asked_again_next_wave(
    relay: tuple[Controller, CountingHandler],
) -> None:
    """Only a wave whose every session was refused stops the rest: one session refused among
    others that opened (a relay's limit of connections) is tried again by the next wave."""
    ctl, _handler = relay
    with connect(f"smtp://list:s3cret@127.0.0.1:{ctl.port}", size=2) as out:
        assert isinstance(out, SmtpWave)
        out.sessions[1].url = f"smtp://list:wrong@127.0.0.1:{ctl.port}"
        first = out.send(copies(b"Subject: x\r\n\r\ny\r\n", 2), all_ours)
        out.sessions[1].url = f"smtp://list:s3cret@127.0.0.1:{ctl.port}"
        second = out.send(copies(b"Subject: x\r\n\r\ny\r\n", 2, 2), all_ours)
    assert [r.status for r in first] == [SENT, DEFERRED]
    assert [r.status for r in second] == [SENT, SENT]


def test_a_refused_connection_defers_every_copy_and_raises_nothing() -> None:
    with connect(f"smtp://127.0.0.1:{free_port()}", size=3, timeout=2) as out:
        results = out.send(copies(b"Subject: x\r\n\r\ny\r\n", 3), all_ours)
    assert [(r.status, r.code) for r in results] == [(DEFERRED, 0)] * 3


def test_scripted_replies_map_to_outcomes(sink: SmtpSink) -> None:
    sink.script("451 4.3.0 later", "550 5.1.1 unknown")
    with connect(sink.url, size=1) as out:
        outcomes = [
            out.send(copies(b"Subject: x\r\n\r\ny\r\n", 1, i), all_ours)[0].status for i in range(3)
        ]
    assert outcomes == [DEFERRED, BOUNCED, SENT]
    assert [r.rcpt_tos for r in sink.received] == [["r2@example.org"]]


def test_a_wave_runs_one_transaction_per_session_and_drops_lost_claims_before_the_dot(
    sink: SmtpSink,
) -> None:
    data = "Subject: wave\r\n\r\n.leading dot\r\nGrüße\r\n".encode()
    items = copies(data, 5)
    sink.script("550 5.1.1 unknown")
    with connect(sink.url, size=5) as out:
        # r4's claim was lost meanwhile
        first = out.send(items, lambda live, dots: dots(set(live) - {4}))
        second = out.send(items[:2], all_ours)
    statuses = [r.status for r in first]
    assert statuses[4] == ABANDONED and sorted(statuses[:4]) == [BOUNCED, SENT, SENT, SENT]
    assert [r.status for r in second] == [SENT, SENT]
    got = [r.rcpt_tos[0] for r in sink.received]
    assert "r4@example.org" not in got and len(got) == 5
    assert all(r.data == data for r in sink.received)


def test_sessions_the_relay_closed_between_waves_are_opened_again_and_the_copies_go_out(
    sink: SmtpSink,
) -> None:
    with connect(sink.url, size=3) as out:
        first = out.send(copies(b"Subject: one\r\n\r\nx\r\n", 3), all_ours)
        # The relay ends its idle sessions (a restart, its idle timeout) while the worker
        # records the wave: nothing is sent on them meanwhile.
        asyncio.run_coroutine_threadsafe(
            sink.controller.close_connections(), sink.controller.loop
        ).result(timeout=10)
        second = out.send(copies(b"Subject: two\r\n\r\nx\r\n", 3, start=3), all_ours)
    assert [r.status for r in first] == [SENT] * 3
    assert [(r.status, r.detail) for r in second] == [(SENT, "2.0.0 OK")] * 3
    assert sorted(r.rcpt_tos[0] for r in sink.received) == [f"r{i}@example.org" for i in range(6)]


class OneMessagePerSession(_Handler):
    """A relay that takes one message per session, then answers MAIL with 421 (as a relay
    limiting its messages per connection does)."""

    async def handle_MAIL(
        self,
        server: SMTP,
        session: SmtpSession,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        if getattr(session, "took_one", False):
            return "421 4.7.0 too many messages in this session"
        session.took_one = True  # type: ignore[attr-defined]
        envelope.mail_from = address
        return "250 OK"


def test_a_session_the_relay_will_not_take_more_on_is_replaced_and_the_copy_goes_out() -> None:
    handler = OneMessagePerSession()
    ctl = Controller(handler, hostname="127.0.0.1", port=free_port())
    ctl.start()
    try:
        with connect(f"smtp://127.0.0.1:{ctl.port}", size=2) as out:
            waves = [out.send(copies(b"Subject: x\r\n\r\ny\r\n", 2, s), all_ours) for s in (0, 2)]
    finally:
        ctl.stop()
    assert [r.status for wave in waves for r in wave] == [SENT] * 4
    assert sorted(r.rcpt_tos[0] for r in handler.received) == [
        f"r{i}@example.org" for i in range(4)
    ]


def test_a_post_to_more_people_than_a_wave_reaches_all_of_them_through_a_relay_limiting_sessions(
    tmp_path: Path, sink: SmtpSink
) -> None:
    # A relay that takes one message per session: the second wave of the post's fan-out meets
    # the sessions of the first, which the relay answers 421 from then on.
    handler = OneMessagePerSession()
    relay = Controller(handler, hostname="127.0.0.1", port=free_port())
    relay.start()
    people = [f"p{i}@example.org" for i in range(SIZE + 4)]
    try:
        site = build_site(tmp_path, sink, LISTGATE_OUTBOUND=f"smtp://127.0.0.1:{relay.port}")
        site.subscribe("dev", *people)
        proc = WorkerProcess(site.env, tmp_path / "worker.log").start()
        try:
            post = site.post(mail("author@example.org", "To everyone", "everyone@example.org"))
            settled = {"sent", "deferred", "bounced", "refused", "failed"}
            wait_until(
                lambda: (
                    set(site.deliveries(stored_pk(post)).values()) <= settled
                    and len(site.deliveries(stored_pk(post))) == len(people)
                ),
                what="every copy tried",
            )
        finally:
            proc.stop()
    finally:
        relay.stop()
    assert Counter(site.deliveries(stored_pk(post)).values()) == {"sent": len(people)}
    assert sorted(r.rcpt_tos[0] for r in handler.received) == sorted(people)
