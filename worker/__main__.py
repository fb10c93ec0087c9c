"""`python -m worker worker|beat [celery args]`: build Settings once, then the app, then run it."""

from __future__ import annotations

import sys
import warnings

import click

from listgate import logs
from listgate.config import Settings, SettingsError
from listgate.readiness import notify_ready

USAGE = "usage: python -m worker worker|beat [celery arguments]"


def main(argv: list[str]) -> int:
    """Run a Celery worker (default concurrency 2) or beat; the exit status Celery ends with."""
    if not argv or argv[0] not in ("worker", "beat"):
        print(USAGE, file=sys.stderr)
        return 2
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    logs.setup(settings)
    from celery.exceptions import CPendingDeprecationWarning, SecurityWarning
    from celery.signals import beat_init, worker_ready

    from worker.celery_app import make_celery

    # Celery's multi-line warning about root; `listgate worker` and `listgate up` say it in one
    # line.
    warnings.filterwarnings("ignore", category=SecurityWarning)
    # a note about Celery 6, at every reconnect
    warnings.filterwarnings("ignore", category=CPendingDeprecationWarning)
    app = make_celery(settings)
    extra = argv[1:]
    # -q: no banners; listgate's own lines (and `listgate up`'s summary) say what matters.
    quiet = [] if settings.log_level == "DEBUG" else ["-q"]
    if argv[0] == "worker":
        worker_ready.connect(lambda **_: notify_ready(settings, "worker ready"), weak=False)
        defaults = (
            []
            if any(a.startswith(("-c", "--concurrency")) for a in extra)
            else ["--concurrency", "2"]
        )
        args = [*quiet, "worker", "--loglevel", settings.log_level, *defaults, *extra]
    else:
        settings.data_dir.mkdir(parents=True, exist_ok=True)  # beat keeps its schedule file there
        beat_init.connect(lambda **_: notify_ready(settings, "beat ready"), weak=False)
        args = [*quiet, "beat", "--loglevel", settings.log_level, *extra]
    try:
        return int(app.start(args) or 0)
    except click.ClickException as exc:  # a wrong Celery option: one line, not a traceback
        print(f"{argv[0]}: {exc.format_message()}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
