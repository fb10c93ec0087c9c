"""Per-client limits (connections, messages per minute) and checks on a message's shape."""

from __future__ import annotations

import email.message
import ipaddress
import re
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

from listgate.parsing import BARE_CR, header_end

# A "." alone between line breaks where at least one break is not CRLF: the 2023 SMTP
# smuggling class. aiosmtpd only ends DATA on CRLF.CRLF, but a relay after us might not.
_DOT_LINE = re.compile(rb"\.(?=[\r\n])")  # then checked to start a line: a literal first is fast
_LINE = re.compile(rb"([^\r\n]*)(?:\r\n|\r|\n|$)")
_DECLARATION = re.compile(rb"(?i)multipart/|message/")


LOOPBACK = ("127.0.0.0/8", "::1/128")


def trusted_networks(configured: tuple[str, ...] | None, lmtp: bool) -> tuple[str, ...]:
    """LISTGATE_TRUSTED_MTAS when set; otherwise loopback in LMTP mode (the MTA in front) and nobody in SMTP mode."""
    if configured is not None:
        return configured
    return LOOPBACK if lmtp else ()


class ClientLimits:
    """Concurrent connections and messages per minute, per client address; trusted MTAs are exempt.

    Behind Postfix every LMTP connection comes from the MTA's one address: counting it like
    a stranger would throttle the whole list's traffic (Postfix opens up to 20 connections).
    """

    def __init__(self, max_connections: int, max_per_minute: int, clock: Callable[[], float] = time.monotonic,
                 trusted: Iterable[str] = ()) -> None:
        self.max_connections = max_connections
        self.max_per_minute = max_per_minute
        self._clock = clock
        self._lock = threading.Lock()
        self._open: dict[str, int] = defaultdict(int)
        self._recent: dict[str, deque[float]] = defaultdict(deque)
        self.trust(trusted)

    def trust(self, networks: Iterable[str]) -> None:
        """Exempt clients in these networks (addresses or CIDR) from every per-client limit."""
        self._trusted = tuple(ipaddress.ip_network(n, strict=False) for n in networks)
        self._verdicts: dict[str, bool] = {}

    def trusted(self, client: str) -> bool:
        """True when client is in a trusted network."""
        verdict = self._verdicts.get(client)
        if verdict is None:
            try:
                address = ipaddress.ip_address(client)
            except ValueError:
                address = None
            if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
                address = address.ipv4_mapped
            verdict = address is not None and any(address in net for net in self._trusted)
            if len(self._verdicts) < 10_000:  # bounded: a flood of addresses must not grow it
                self._verdicts[client] = verdict
        return verdict

    def connect(self, client: str) -> bool:
        """Count a new connection from client; False (and not counted) when over the limit."""
        if self.trusted(client):
            return True
        with self._lock:
            if self._open[client] >= self.max_connections:
                return False
            self._open[client] += 1
            return True

    def disconnect(self, client: str) -> None:
        """A connection from client closed."""
        if self.trusted(client):
            return
        with self._lock:
            self._open[client] -= 1
            if self._open[client] <= 0:
                del self._open[client]

    def connections(self, client: str) -> int:
        """Open connections from client now."""
        with self._lock:
            return self._open.get(client, 0)

    def allow_message(self, client: str) -> bool:
        """Count a message from client; False (and not counted) over max_per_minute."""
        if self.trusted(client):
            return True
        now = self._clock()
        with self._lock:
            recent = self._recent[client]
            while recent and recent[0] <= now - 60:
                recent.popleft()
            if len(recent) >= self.max_per_minute:
                return False
            recent.append(now)
            return True


SMUGGLING = ("smuggling", "554 5.5.2 Refused: a bare CR or LF next to a '.' line (SMTP smuggling); use CRLF line ends")


def dot_line_with_bare_end(line: bytes) -> bool:
    """A DATA line as received ('.' then a bare CR or LF) that dot-unstuffing would hide from smuggling()."""
    return line[:1] == b"." and line[1:2] in (b"\r", b"\n") and line != b".\r\n"


def smuggling(raw: bytes) -> bool:
    """True when a '.' line is framed by a bare CR or LF (an SMTP smuggling attempt)."""
    for m in _DOT_LINE.finditer(raw):
        i = m.start()
        if i > 0 and raw[i - 1] not in (10, 13):
            continue  # a '.' ending a sentence, not a '.' line
        # A dot-stuffed "..\r\n" line legitimately arrives as CRLF "." CRLF.
        before_ok = i == 0 or raw[i - 2:i] == b"\r\n"
        if not (before_ok and raw[i + 1:i + 3] == b"\r\n"):
            return True
    return False


def header_block(raw: bytes) -> bytes:
    """The top-level header block of a message (everything before the first blank line)."""
    return raw[: header_end(raw)[0]]


@dataclass(frozen=True)
class HeaderShape:
    """What the limits look at in a header block."""

    fields: int  # header fields (continuation lines excluded)
    folded: int  # the most continuation lines of one field
    folded_name: str  # that field's name


def header_shape(head: bytes) -> HeaderShape:
    """Count the fields of a header block (see header_block) and their folding, in one linear pass."""
    fields = most = run = 0
    name = current = b""
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t"):
            run += 1
            if run > most:
                most, name = run, current
        elif line.rstrip(b"\r"):
            fields, run, current = fields + 1, 0, line.split(b":", 1)[0]
    return HeaderShape(fields, most, name.decode("ascii", "replace").strip()[:40])


def line_over(raw: bytes, limit: int) -> int:
    """The length of the first line longer than limit bytes, or 0; scans without copying lines."""
    pos, size = 0, len(raw)
    while pos < size:
        nl = raw.find(b"\n", pos)
        end = size if nl < 0 else nl
        if end - pos > limit:  # only a long stretch is looked at closely (it may hold bare CRs)
            for line in raw[pos:end].split(b"\r"):
                if len(line) > limit:
                    return len(line)
        pos = end + 1
    return 0


def iter_lines(raw: bytes) -> Iterator[bytes]:
    """raw.splitlines(), one line at a time (a 20 MB message is never a list of lines)."""
    for m in _LINE.finditer(raw):
        if m.start() == len(raw):
            return
        yield m.group(1)


def mime_depth(raw: bytes) -> int:
    """How deeply multiparts and attached messages nest (1 for a plain message)."""
    stack: list[bytes | None] = []  # open boundaries; None marks an attached message/rfc822
    deepest = 0
    in_headers, headers = True, []
    for line in iter_lines(raw):
        if in_headers:
            if line.strip():
                headers.append(line)
                continue
            ctype = _content_type(headers)
            headers, in_headers = [], False
            if ctype.lower().startswith(b"multipart/"):
                boundary = _boundary(ctype)
                if boundary:
                    stack.append(boundary)
            elif ctype.lower().startswith((b"message/rfc822", b"message/global")):
                stack.append(None)
                in_headers = True
            deepest = max(deepest, len(stack))
            continue
        if line.startswith(b"--"):
            in_headers = _boundary_line(stack, line.rstrip())
    return deepest + 1


def _boundary_line(stack: list[bytes | None], line: bytes) -> bool:
    """Close or open parts on a boundary line; True when part headers follow."""
    for i in range(len(stack) - 1, -1, -1):
        b = stack[i]
        if b is None:
            continue
        if line == b"--" + b + b"--":
            del stack[i:]
            return False
        if line == b"--" + b:
            del stack[i + 1:]
            return True
    return False


def _content_type(headers: list[bytes]) -> bytes:
    """The unfolded Content-Type value of a header block (boundaries are case-sensitive)."""
    value: list[bytes] = []
    inside = False
    for line in headers:
        if line[:1] in (b" ", b"\t"):
            if inside:
                value.append(line.strip())
            continue
        inside = line.lower().startswith(b"content-type:")
        if inside:
            value = [line.split(b":", 1)[1].strip()]
    return b" ".join(value)


def _boundary(ctype: bytes) -> bytes | None:
    """The boundary parameter of a Content-Type value, read as the parser reads it (RFC 2231 spellings too)."""
    msg = email.message.Message()
    msg["Content-Type"] = ctype.decode("latin-1")
    boundary = msg.get_boundary()
    return boundary.encode("latin-1", "replace") if boundary else None


def shape_problem(raw: bytes, max_headers: int, max_line: int, max_depth: int, *,
                  max_header_bytes: int = 256 * 1024, max_folded: int = 1000) -> tuple[str, str] | None:
    """(reason label, 5xx reply) when the message breaks a limit, else None."""
    if smuggling(raw):
        return SMUGGLING
    problem = header_problem(header_block(raw), max_headers, max_header_bytes, max_folded)
    if problem is not None:
        return problem
    longest = line_over(raw, max_line)  # after the header checks: they name a clearer reason
    if longest:
        return "line-too-long", f"552 5.3.4 Refused: a line of {longest} bytes, the limit is {max_line}"
    # Each level needs a multipart/ or message/ declaration: skip the line scan when too few exist.
    if not any(i >= max_depth for i, _ in enumerate(_DECLARATION.finditer(raw), 1)):
        return None
    depth = mime_depth(raw)
    if depth > max_depth:
        return "mime-too-deep", f"554 5.6.0 Refused: MIME parts nested {depth} deep, the limit is {max_depth}"
    return None


def header_problem(head: bytes, max_headers: int, max_bytes: int, max_folded: int) -> tuple[str, str] | None:
    """(reason label, 5xx reply) when a header block breaks a limit, else None.

    A bare CR is refused because parsers disagree on it: the standard library ends the header
    block at "CRLF CR", our own splitters do not, so what one reads as a header the other reads
    as body (a Message-ID lost, a field hidden from a check).
    """
    if len(head) > max_bytes:
        return "header-too-big", f"552 5.3.4 Refused: a header block of {len(head)} bytes, the limit is {max_bytes}"
    if BARE_CR.search(head):
        return "bare-cr", "554 5.6.0 Refused: a bare CR in the header block; use CRLF line ends"
    shape = header_shape(head)
    if shape.fields > max_headers:
        return "too-many-headers", f"552 5.3.4 Refused: {shape.fields} header fields, the limit is {max_headers}"
    if shape.folded > max_folded:
        return "header-folded", (f"554 5.6.0 Refused: the {shape.folded_name} field is folded over {shape.folded} "
                                 f"lines, the limit is {max_folded}")
    return None
