"""`listgate up`: lock the data dir, check the ports, prepare the database, run the services."""

from __future__ import annotations

import errno
import logging
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from listgate import logs, readiness, uplock
from listgate.config import Settings
from listgate.supervisor import Service, Supervisor, state_file

log = logging.getLogger("listgate.up")

# The children of `listgate up`, in start order. Adding one is one line here; the child calls
# listgate.readiness.notify_ready(settings) once it serves (or pass notifies=False).
SERVICES = (
    Service("gateway", ("-m", "gateway", "--no-archiver")),  # spools; the archiver below archives
    Service("archiver", ("-m", "gateway", "--archiver-only")),
    Service("worker", ("-m", "worker", "worker")),
    Service("beat", ("-m", "worker", "beat")),
    Service("web", ("-m", "webarchive")),
)


class PortTaken(Exception):
    """A configured port cannot be bound; the message names the port and the variable."""


def check_ports(settings: Settings) -> None:
    """Raise PortTaken when the SMTP or web port cannot be bound (before anything starts)."""
    for variable, host, port in (
        ("LISTGATE_SMTP_LISTEN", settings.smtp_host, settings.smtp_port),
        ("LISTGATE_WEB_LISTEN", settings.web_host, settings.web_port),
    ):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do
            try:
                sock.bind((host, port))
            except OSError as exc:
                # This data dir's own services are gone by now (they hold its lock until then):
                # what listens there is another program.
                why = (
                    "is already in use by another program: stop it, or"
                    if exc.errno == errno.EADDRINUSE
                    else f"cannot be used ({exc.strerror}):"
                )
                raise PortTaken(
                    f"port {port} on {host} {why} set {variable} to a free HOST:PORT, "
                    f"for example {variable}={host}:{port + 1}"
                ) from None


def create_demo(settings: Settings) -> bool:
    """Create the demo list on a first run; True when it was created now."""
    from listgate import demo  # the database's modules: not for `listgate worker` to exec it
    from listgate.db import make_engine, session_factory, transaction, writer

    engine = make_engine(settings)
    try:
        with transaction(session_factory(writer(engine))) as session:
            return demo.create(session, settings.domain)
    finally:
        engine.dispose()


def _client_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def _command_path() -> str:
    """How to type the `listgate` command of this code (.venv/bin/listgate after `make run`)."""
    path = Path(sys.executable).parent / "listgate"
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path) if path.exists() else "listgate"


def _relay_note(settings: Settings) -> str:
    """Where mail goes, and a warning when an SMTP relay does not answer now."""
    from listgate.status import redact

    if settings.outbound.startswith("maildir:"):
        return f"Maildir {settings.outbound.split(':', 1)[1]} (one file per copy, in new/)"
    url = urlsplit(settings.outbound)
    try:
        socket.create_connection((url.hostname, url.port or 25), timeout=2).close()
        return f"relay {redact(settings.outbound)}"
    except OSError:
        return (
            f"relay {redact(settings.outbound)} -- nothing answers there now: "
            "copies wait until it does "
            f"(a development sink: {_command_path()} sink --listen {url.hostname}:{url.port})"
        )


def summary(settings: Settings, with_demo: bool) -> list[str]:
    """The lines printed once every child serves."""
    from listgate import demo
    from listgate.status import redact

    protocol = "LMTP" if settings.lmtp else "SMTP"
    command = _command_path()
    lines = [
        "listgate is up (Ctrl-C stops everything)",
        f"  {protocol:9}{_client_host(settings.smtp_host)}:{settings.smtp_port}",
        f"  {'web':9}{settings.base_url}/",
        f"  {'database':9}{redact(settings.database_url)}",
        f"  {'broker':9}{redact(settings.broker_url)}",
        f"  {'mail out':9}{_relay_note(settings)}",
        f"  {'status':9}{command} status   (processes, queue, deferred copies)",
    ]
    if with_demo:
        lines += [
            "",
            f"Try it: this posts to {demo.NAME}@{settings.domain}, "
            f"whose subscriber {demo.SUBSCRIBER} gets a copy:",
            "",
            "  "
            + demo.post_command(
                settings.domain, _client_host(settings.smtp_host), settings.smtp_port
            ),
            "",
            f"then read it at {settings.base_url}/lists/{demo.NAME}/ and in the mail out "
            f"{'Maildir' if settings.outbound.startswith('maildir:') else 'relay'} above.",
        ]
    if logs.running_as_root():
        lines += ["", f"note: {logs.ROOT_NOTE}"]
    return lines


def run(
    settings: Settings,
    with_demo: bool,
    prepare: Callable[[Settings], None],
    echo: Callable[[str], None],
) -> int:
    """Start and supervise the services until Ctrl-C or SIGTERM; the exit status.

    Raises uplock.AlreadyRunning, before anything else, while an `up` runs on this data dir.
    """
    from listgate import demo

    # Held until the supervisor has stopped every child; the children hold it too, so that after
    # a kill -9 of `up` the next one waits for them to be gone.
    with uplock.hold(settings.data_dir, echo) as lock:
        check_ports(settings)
        logs.setup(settings)
        prepare(settings)
        if with_demo and create_demo(settings):
            echo(
                f"created the demo list {demo.NAME}@{settings.domain} with a short discussion "
                f"and one subscriber, {demo.SUBSCRIBER}"
            )
        echo(f"starting {', '.join(s.name for s in SERVICES)} ...")

        def ready() -> None:
            echo("\n".join(summary(settings, with_demo)))
            readiness.notify_ready(settings)  # when `up` itself runs under systemd (Type=notify)

        return Supervisor(
            SERVICES,
            echo=echo,
            on_ready=ready,
            state_path=state_file(settings.data_dir),
            inherited=() if lock is None else (lock,),
        ).run()
