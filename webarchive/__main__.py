"""`python -m webarchive`: serve the archive with werkzeug's threaded server (the embedded default)."""

from __future__ import annotations

import logging

from listgate.config import Settings


def main() -> None:
    """Serve on settings.web_host:web_port until interrupted."""
    from werkzeug.serving import run_simple

    from webarchive import create_app

    settings = Settings.from_env()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(settings)
    run_simple(settings.web_host, settings.web_port, app, threaded=True, use_reloader=False)


if __name__ == "__main__":
    main()
