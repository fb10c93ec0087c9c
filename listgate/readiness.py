"""Tell a supervisor that this process now serves: `listgate up`, or systemd with Type=notify.

The protocol is systemd's: a datagram "READY=1" to the unix socket named by NOTIFY_SOCKET
(Settings.notify_socket). Without a supervisor asking, it does nothing.
"""

from __future__ import annotations

import logging
import os
import socket

from listgate.config import Settings

log = logging.getLogger(__name__)


def notify_ready(settings: Settings, message: str = "") -> None:
    """Log message and send READY=1 (with this process id) to the supervisor's socket, if any.

    Under a supervisor the message goes at DEBUG: the supervisor prints one summary instead.
    """
    address = settings.notify_socket
    if message:
        log.log(logging.DEBUG if address else logging.INFO, "%s", message)
    if not address:
        return
    if address.startswith("@"):  # systemd's abstract-namespace spelling
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(f"READY=1\nMAINPID={os.getpid()}".encode(), address)
    except OSError as exc:  # the supervisor is gone or the socket is wrong: serve anyway
        log.warning(
            "cannot tell the supervisor we are ready (NOTIFY_SOCKET=%s): %s",
            settings.notify_socket,
            exc,
        )
