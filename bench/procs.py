"""Starting listgate's own processes by their real entry points."""

from __future__ import annotations

from bench.archive import Archive
from bench.common import PYTHON, Context, NotAvailable, Proc, wait_port


def start_gateway(
    ctx: Context, archive: Archive, name: str = "gateway", args: tuple[str, ...] = ()
) -> Proc:
    """`python -m gateway [ARGS]` on the archive's SMTP port, once it accepts connections."""
    proc = ctx.start(name, [PYTHON, "-m", "gateway", *args], env=archive.env)
    try:
        wait_port("127.0.0.1", archive.smtp_port, 60, proc.popen)
    except NotAvailable as exc:
        proc.stop()
        raise NotAvailable(
            f"the gateway did not start: {exc}; log: {proc.tail(3)[-300:]}"
        ) from None
    return proc


def start_archiver(
    ctx: Context, archive: Archive, name: str = "archiver", batch: int | None = None
) -> Proc:
    """The archiver stage as its own process (`python -m gateway --archiver-only`), as in `up`
    (batch: its --batch; None: the default)."""
    size = [] if batch is None else ["--batch", str(batch)]
    return ctx.start(name, [PYTHON, "-m", "gateway", "--archiver-only", *size], env=archive.env)


def start_worker(ctx: Context, archive: Archive, concurrency: int, name: str = "worker") -> Proc:
    """`python -m worker worker` with concurrency prefork processes."""
    cmd = [
        PYTHON,
        "-m",
        "worker",
        "worker",
        "--concurrency",
        str(concurrency),
        "--loglevel",
        "WARNING",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
    return ctx.start(name, cmd, env=archive.env)


def start_web(ctx: Context, archive: Archive, workers: int = 2, name: str = "web") -> Proc:
    """The web archive under gunicorn (`listgate web --gunicorn`), once it answers."""
    cmd = [PYTHON, "-m", "listgate.cli", "web", "--gunicorn", "--workers", str(workers)]
    proc = ctx.start(name, cmd, env=archive.env)
    try:
        wait_port("127.0.0.1", archive.web_port, 60, proc.popen)
    except NotAvailable as exc:
        proc.stop()
        raise NotAvailable(
            f"the web archive did not start: {exc}; log: {proc.tail(3)[-300:]}"
        ) from None
    return proc
