"""`python -m gateway [--lmtp] [--listen HOST:PORT | unix:/path] [--no-archiver | --archiver-only]`.

The SMTP/LMTP listener spools what it accepts; the archiver stage archives the spool. By default
both run in this process; `listgate up` and the compose file run them as separate processes.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Engine

from gateway.broker import BackgroundSender, BrokerSender
from gateway.handler import GatewayHandler
from gateway.server import GatewayServer, parse_listen
from listgate import logs
from listgate.archiver import BATCH, Archiver
from listgate.config import Settings, SettingsError
from listgate.db import look_ups, make_engine, session_factory, writer
from listgate.numerals import number
from listgate.readiness import notify_ready
from listgate.schema import needs_upgrade
from listgate.spool import Spool

log = logging.getLogger("gateway")


MOST_BATCH = 10_000  # messages the archiver may take per transaction


def count(most: int) -> Callable[[str], int]:
    """An option's type: a whole number from 1 to most in ASCII digits (listgate.numerals)."""

    def read(raw: str) -> int:
        value = number(raw, most)
        if not value:
            raise argparse.ArgumentTypeError(
                f"{raw[:40]!r}: expected a whole number from 1 to {most:,} in digits 0-9"
            )
        return value

    return read


def parser() -> argparse.ArgumentParser:
    """The command line of `python -m gateway`."""
    parser = argparse.ArgumentParser(
        prog="python -m gateway", description="listgate's SMTP/LMTP listener"
    )
    parser.add_argument("--lmtp", action="store_true", help="speak LMTP (behind Postfix or Exim)")
    parser.add_argument(
        "--listen", default="", help="HOST:PORT or unix:/path (default LISTGATE_SMTP_LISTEN)"
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--no-archiver", action="store_true", help="only spool; an archiver process archives"
    )
    mode.add_argument(
        "--archiver-only", action="store_true", help="only archive the spool (no listener)"
    )
    parser.add_argument(
        "--batch",
        type=count(MOST_BATCH),
        default=BATCH,
        help=f"messages the archiver takes per transaction (1 to {MOST_BATCH:,})",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Build settings once, serve until SIGTERM/SIGINT, then stop cleanly."""
    args = parser().parse_args(argv)
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
            log.error(
                "the database at %s is not at the current schema: run `listgate db upgrade` first",
                settings.database_url.split("@")[-1],
            )
            return 1
    except Exception as exc:  # noqa: BLE001 - say what is wrong, not a traceback
        log.error("cannot open the database %s: %s", settings.database_url.split("@")[-1], exc)
        return 1
    pace = _yield_cpu(settings.archiver_nice) if args.archiver_only else None
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    # the archiver's: outbox entries after its commit
    sender = BackgroundSender(BrokerSender(settings))
    spool = Spool(engine)
    archiver = (
        None
        if args.no_archiver
        else Archiver(
            settings,
            session_factory(writer(engine)),
            read_factory=session_factory(engine),
            spool=spool,
            enqueue=sender,
            batch=args.batch,
            pace=pace,
        )
    )
    try:
        if archiver is not None and args.archiver_only:
            notify_ready(
                settings,
                f"archiver ready: batches of up to {args.batch}"
                + (
                    f", CPU priority lowered by {settings.archiver_nice} (LISTGATE_ARCHIVER_NICE)"
                    if settings.archiver_nice
                    else ""
                ),
            )
            archiver.run(stop)
            return 0
        return _serve(settings, engine, spool, listen, args.lmtp, archiver, stop)
    finally:
        sender.close()
        spool.close()
        engine.dispose()


def _yield_cpu(nice: int) -> SessionPriority | None:
    """Lower this process's CPU priority (before its threads start: they inherit it); the
    archiver's pace, when its session is its own (SessionPriority).

    The archiver stage runs behind the listener: under a burst the 250s come first, the spool
    grows, and the archive catches up on the CPU the listener leaves. Only a process of its own is
    lowered: a lowered thread beside the listener's would hold the GIL while the scheduler passes
    it over, and the listener would wait for it.
    """
    if not nice:
        return None
    log.debug("archiver CPU priority lowered by %d (LISTGATE_ARCHIVER_NICE)", nice)
    os.nice(nice)
    own_session = os.getsid(0) == os.getpid()
    return SessionPriority(nice) if own_session and session_group_nice() is not None else None


_GROUP = re.compile(r"/autogroup-\d+ nice (-?\d+)")


def session_group_nice(pid: int | str = "self", proc: Path = Path("/proc")) -> int | None:
    """The nice value of a process's session group ("/autogroup-42 nice 10" in /proc/PID/autogroup),
    or None where the kernel does not group it by session: no such file (not Linux, autogroup
    not built), or an empty one (the process is in a CPU cgroup of its own, as in a container or
    a CI runner: the cgroup's weight decides, not the session's)."""
    try:
        found = _GROUP.match((proc / str(pid) / "autogroup").read_text())
    except OSError:
        return None
    return int(found.group(1)) if found else None


class SessionPriority:
    """The archiver's session group (Linux autogroup) lowered while the spool outgrows the
    archiver, at its normal weight otherwise: the archiver's pace (listgate.archiver.Pace).

    Where the kernel groups threads by session (autogroup, on by default in most distributions),
    a thread's nice value counts only against its own session's threads; each session's group
    gets an equal share of the CPU. `listgate up`, the compose file and the benchmarks start each
    process in a session of its own, so the nice value alone left the archiver an equal share
    beside the listener (measured: two CPU-bound processes on one core, each in its own session,
    one at nice 10: 1.14 and 1.16 s of CPU in 3 s; its group at nice 10: 1.31 and 0.19 s).
    Always lowered, though, the group also yields to every other session on the machine, and
    the archive fell behind its half-rate freshness bound on a busy host (docs/benchmarks.md):
    so only while mail arrives faster than it is archived (a burst: the listener first); a
    spool that shrinks, or a batch that takes all that waits, gives the weight back. A session
    shared with other processes (a shell's) is never changed: its group is theirs too.
    """

    def __init__(self, nice: int) -> None:
        self.nice = nice
        self.lowered = False
        self.usable = True  # False after a write failed: not Linux, no autogroup, not allowed

    def __call__(self, outgrown: bool) -> None:
        if outgrown == self.lowered or not self.usable:
            return
        try:
            with open("/proc/self/autogroup", "w") as group:
                group.write(str(self.nice if outgrown else 0))
        except OSError as exc:
            log.debug("the archiver's session group keeps its priority: %s", exc)
            self.usable = False
            return
        self.lowered = outgrown


def _serve(
    settings: Settings,
    engine: Engine,
    spool: Spool,
    listen: tuple[str, int] | Path,
    lmtp: bool,
    archiver: Archiver | None,
    stop: threading.Event,
) -> int:
    """Listen (with an in-process archiver unless there is none) until stop is set."""
    handler = GatewayHandler(
        settings,
        session_factory(writer(engine)),
        read_factory=session_factory(look_ups(engine)),
        spool=spool,
    )
    server = GatewayServer(
        settings, handler, lmtp=lmtp or settings.lmtp, listen=listen, archiver=archiver
    )
    try:
        server.start()
    except OSError as exc:
        log.error("cannot listen on %s: %s", server.describe(), exc)
        return 1
    notify_ready(
        settings,
        f"gateway ready: {'LMTP' if server.lmtp else 'SMTP'} on {server.describe()}"
        + (
            ", archiving in this process"
            if archiver is not None
            else ", spooling for a separate archiver"
        ),
    )
    stop.wait()
    log.info("stopping")
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
