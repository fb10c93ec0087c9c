"""`python -m worker worker|beat [celery args]`: build Settings once, then the app, then run it."""

from __future__ import annotations

import logging
import sys

from listgate.config import Settings, SettingsError

USAGE = "usage: python -m worker worker|beat [celery arguments]"


def main(argv: list[str]) -> int:
    """Run a Celery worker (default concurrency 2) or beat for the configured broker."""
    if not argv or argv[0] not in ("worker", "beat"):
        print(USAGE, file=sys.stderr)
        return 2
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from worker.celery_app import make_celery

    app = make_celery(settings)
    extra = argv[1:]
    if argv[0] == "worker":
        defaults = [] if any(a.startswith(("-c", "--concurrency")) for a in extra) else ["--concurrency", "2"]
        app.worker_main(["worker", "--loglevel", settings.log_level, *defaults, *extra])
    else:
        settings.data_dir.mkdir(parents=True, exist_ok=True)  # beat keeps its schedule file there
        app.start(["beat", "--loglevel", settings.log_level, *extra])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
