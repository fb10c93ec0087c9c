"""`python -m webarchive`: serve the archive with werkzeug's threaded server (the embedded default)."""

from __future__ import annotations

from listgate import logs
from listgate.config import Settings
from listgate.readiness import notify_ready


def main() -> None:
    """Serve on settings.web_host:web_port until interrupted."""
    from werkzeug.serving import make_server

    from webarchive import create_app

    settings = Settings.from_env()
    logs.setup(settings)
    server = make_server(settings.web_host, settings.web_port, create_app(settings), threaded=True)
    notify_ready(settings, f"web archive ready on {settings.base_url}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
