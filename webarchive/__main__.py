"""`python -m webarchive`: serve the archive with werkzeug's threaded server (the embedded default).

With LISTGATE_METRICS_LISTEN set, a second werkzeug server on that loopback address serves the
same app, where webarchive.views.ops answers /metrics without a token (and nothing but /metrics
and /healthz).
"""

from __future__ import annotations

import logging
import threading

from listgate import logs
from listgate.config import Settings
from listgate.readiness import notify_ready

log = logging.getLogger(__name__)


def main() -> None:
    """Serve on settings.web_host:web_port (and the metrics listener) until interrupted."""
    from werkzeug.serving import make_server

    from webarchive import create_app

    settings = Settings.from_env()
    logs.setup(settings)
    app = create_app(settings)
    if settings.metrics_listen is not None:
        host, port = settings.metrics_listen
        try:
            metrics = make_server(host, port, app, threaded=True)
        except OSError as exc:
            log.error("cannot listen on LISTGATE_METRICS_LISTEN=%s:%d: %s", host, port, exc)
            raise SystemExit(1) from None
        threading.Thread(target=metrics.serve_forever, name="metrics", daemon=True).start()
        log.info("serving /metrics on the loopback listener %s:%d", host, port)
    server = make_server(settings.web_host, settings.web_port, app, threaded=True)
    notify_ready(settings, f"web archive ready on {settings.base_url}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
