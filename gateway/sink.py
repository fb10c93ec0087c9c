"""`listgate sink`: a development SMTP sink that accepts every message and prints one line for each.

Point LISTGATE_OUTBOUND at it (smtp://127.0.0.1:1025) to watch what listgate sends without a
real relay; --maildir also keeps each message as a file.
"""

from __future__ import annotations

import argparse
import logging
import mailbox
import signal
import sys
import threading
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from listgate.mail import fields
from listgate.mail.names import SUBJECT
from listgate.mail.values import header_text
from listgate.numerals import MAX_PORT, number

log = logging.getLogger("sink")


class SinkHandler:
    """Accept every message: log one line, and keep it in a Maildir when one is given."""

    def __init__(self, maildir: Path | None = None) -> None:
        self.box = mailbox.Maildir(maildir, create=True) if maildir else None
        self.count = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Log and keep the message; always 250."""
        data = envelope.original_content or b""
        subject = header_text(fields.read(data), SUBJECT)
        self.count += 1
        if self.box is not None:
            envelope_lines = (
                f"Return-Path: <{envelope.mail_from}>\n"
                f"Delivered-To: {', '.join(envelope.rcpt_tos)}\n"
            )
            self.box.add(envelope_lines.encode() + data.replace(b"\r\n", b"\n"))
        log.info(
            "#%d from %s to %s: %r (%d bytes)",
            self.count,
            envelope.mail_from or "<>",
            ", ".join(envelope.rcpt_tos),
            str(subject),
            len(data),
        )
        return "250 2.0.0 OK: kept by the listgate development sink"


def main(argv: list[str] | None = None) -> int:
    """Listen until Ctrl-C or SIGTERM."""
    parser = argparse.ArgumentParser(prog="listgate sink", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--listen", default="127.0.0.1:1025", help="HOST:PORT (default 127.0.0.1:1025)"
    )
    parser.add_argument("--maildir", default="", help="also keep every message in this Maildir")
    args = parser.parse_args(argv)
    host, sep, raw_port = args.listen.rpartition(":")
    port = number(raw_port, MAX_PORT)
    if not sep or port is None or not host:
        sys.stderr.write(
            f"listgate sink: --listen {args.listen!r}: expected HOST:PORT, "
            "for example 127.0.0.1:1025\n"
        )
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s sink: %(message)s")
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    handler = SinkHandler(Path(args.maildir) if args.maildir else None)
    controller = Controller(handler, hostname=host.strip("[]"), port=port)
    try:
        controller.start()
    except (OSError, RuntimeError) as exc:
        sys.stderr.write(f"listgate sink: cannot listen on {args.listen}: {exc}\n")
        return 1
    where = f", keeping messages in the Maildir {args.maildir}" if args.maildir else ""
    log.info(
        "listening on %s (LISTGATE_OUTBOUND=smtp://%s)%s; Ctrl-C stops",
        args.listen,
        args.listen,
        where,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    controller.stop()
    log.info("stopped after %d message(s)", handler.count)
    return 0


if __name__ == "__main__":
    sys.exit(main())
