"""The STARTTLS server context: built once, rebuilt only when the certificate or key changes."""

from __future__ import annotations

import logging
import os
import ssl
import threading

log = logging.getLogger(__name__)

_Stamp = tuple[tuple[int, int, int], ...]  # (inode, size, mtime) of each file


class ServerTls:
    """The SSLContext for a certificate and key; a renewed pair is picked up by the next connection.

    Building a context (load_cert_chain) costs far more than a connection's other work, so it is
    built once; each new connection only compares the files' inode, size and mtime. A pair that
    does not load (say the certificate was replaced and the key not yet) keeps the last good
    context and says so once.
    """

    def __init__(self, cert: str, key: str) -> None:
        self.cert, self.key = cert, key
        self._lock = threading.Lock()
        self._stamp: _Stamp | None = None
        self._context: ssl.SSLContext | None = None
        self._failed: _Stamp | None = None
        self.context()  # a configured pair that does not load stops the start (OSError)

    def context(self) -> ssl.SSLContext:
        """The current context, rebuilt first when either file changed since it was built."""
        stamp = self._stamp_now()
        context = self._context
        if context is not None and stamp == self._stamp:
            return context
        with self._lock:
            if self._context is None or stamp not in (self._stamp, self._failed):
                self._load(stamp)
            assert self._context is not None
            return self._context

    def _load(self, stamp: _Stamp) -> None:
        try:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(self.cert, self.key)
        except (OSError, ssl.SSLError) as exc:
            if self._context is None:
                raise OSError(
                    f"cannot load the TLS certificate {self.cert} with the key {self.key}: {exc}"
                ) from exc
            self._failed = stamp
            log.warning(
                "cannot load the changed TLS certificate %s / key %s (%s): "
                "STARTTLS goes on with the previous pair",
                self.cert,
                self.key,
                exc,
            )
            return
        if self._context is not None:
            log.info("loaded the changed TLS certificate %s", self.cert)
        self._context, self._stamp, self._failed = context, stamp, None

    def _stamp_now(self) -> _Stamp:
        stamps = []
        for path in (self.cert, self.key):
            try:
                st = os.stat(path)
            except OSError:  # gone (mid-rotation?): the load fails, the old pair stays
                stamps.append((0, -1, 0))
                continue
            stamps.append((st.st_ino, st.st_size, st.st_mtime_ns))
        return tuple(stamps)
