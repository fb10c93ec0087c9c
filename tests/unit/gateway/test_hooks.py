"""aiosmtpd still finds every command, AUTH mechanism and hook through our short dir()."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.orm import Session, sessionmaker

from gateway.handler import GatewayHandler
from gateway.protocol import GatewayLMTP, GatewaySMTP
from listgate.config import Settings


def _full(obj: object, prefix: str) -> set[str]:
    """What aiosmtpd would find by the default dir() (object.__dir__)."""
    return {n.removeprefix(prefix) for n in object.__dir__(obj) if n.startswith(prefix)}


@pytest.mark.parametrize("protocol", [GatewaySMTP, GatewayLMTP])
def test_the_protocol_knows_every_command_and_hook_it_would_without_the_short_listing(
    protocol: type[GatewaySMTP] | type[GatewayLMTP],
    settings: Settings,
    db: sessionmaker[Session],
) -> None:
    async def built() -> GatewaySMTP | GatewayLMTP:
        return protocol(GatewayHandler(settings, db), max_line=settings.max_line_length)

    server = asyncio.run(built())
    assert set(server._smtp_methods) == _full(server, "smtp_")
    assert {"EHLO", "MAIL", "RCPT", "DATA", "STARTTLS"} <= set(server._smtp_methods)
    assert ("LHLO" in server._smtp_methods) == (protocol is GatewayLMTP)
    assert (
        set(server._handle_hooks)
        == _full(server.event_handler, "handle_")
        == {
            "MAIL",
            "RCPT",
            "DATA",
        }
    )
    assert set(server._auth_methods) == {"LOGIN", "PLAIN"}  # aiosmtpd's built-in mechanisms


def test_a_hook_set_on_the_handler_itself_is_found_too(
    settings: Settings, db: sessionmaker[Session]
) -> None:
    handler = GatewayHandler(settings, db)

    async def handle_NOOP(*args: object) -> str:
        return "250 2.0.0 still here"

    handler.handle_NOOP = handle_NOOP  # type: ignore[attr-defined]  # a hook on the instance itself

    async def built() -> GatewaySMTP:
        return GatewaySMTP(handler, max_line=settings.max_line_length)

    assert asyncio.run(built())._handle_hooks["NOOP"] is handle_NOOP
