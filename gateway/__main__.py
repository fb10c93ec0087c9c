"""`python -m gateway [--lmtp] [--listen HOST:PORT | unix:/path]`: run the SMTP/LMTP listener."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from gateway.broker import BackgroundSender, BrokerSender
from gateway.handler import GatewayHandler
from gateway.server import GatewayServer, parse_listen
from listgate import logs
from listgate.config import Settings, SettingsError
from listgate.db import make_engine, session_factory, writer
from listgate.readiness import notify_ready
from listgate.schema import needs_upgrade

log = logging.getLogger("gateway")


def main(argv: list[str] | None = None) -> int:
    """Build settings once, serve until SIGTERM/SIGINT, then stop cleanly."""
    parser = argparse.ArgumentParser(prog="python -m gateway", description="listgate's SMTP/LMTP listener")
    parser.add_argument("--lmtp", action="store_true", help="speak LMTP (behind Postfix or Exim)")
    parser.add_argument("--listen", default="", help="HOST:PORT or unix:/path (default LISTGATE_SMTP_LISTEN)")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
        listen = parse_listen(args.listen, settings)
    except (SettingsError, ValueError) as exc:
        sys.stderr.write(f"gateway: configuration error: {exc}\n")
        return 2
    logs.setup(settings)
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every command at INFO
    engine = make_engine(settings)
    try:
        if needs_upgrade(engine):
            log.error("the database at %s is not at the current schema: run `listgate db upgrade` first",
                      settings.database_url.split("@")[-1])
            return 1
    except Exception as exc:  # noqa: BLE001 - say what is wrong, not a traceback
        log.error("cannot open the database %s: %s", settings.database_url.split("@")[-1], exc)
        return 1
    sender = BackgroundSender(BrokerSender(settings))
    handler = GatewayHandler(settings, session_factory(writer(engine)), sender,
                             read_factory=session_factory(engine))
    server = GatewayServer(settings, handler, lmtp=args.lmtp or settings.lmtp, listen=listen)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        server.start()
    except OSError as exc:
        log.error("cannot listen on %s: %s", server.describe(), exc)
        return 1
    notify_ready(settings, f"gateway ready: {'LMTP' if server.lmtp else 'SMTP'} on {server.describe()}")
    stop.wait()
    log.info("stopping")
    server.stop()
    sender.close()
    engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
