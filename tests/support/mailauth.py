"""DKIM test keys (made with openssl) and a stub DNS
server on loopback (dnspython) that serves them.
"""

from __future__ import annotations

import base64
import socket
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset


@dataclass(frozen=True)
class Key:
    """A private key file and the TXT record that publishes its public half."""

    path: Path
    selector: str
    domain: str
    record: str

    @property
    def private(self) -> bytes:
        """The PEM bytes."""
        return self.path.read_bytes()

    @property
    def name(self) -> str:
        """Where the record lives: SELECTOR._domainkey.DOMAIN."""
        return f"{self.selector}._domainkey.{self.domain}"


def make_key(directory: Path, selector: str, domain: str, bits: int = 1024) -> Key:
    """A new RSA key; openssl does the work (no Python crypto package needed)."""
    path = directory / f"{selector}.{domain}.pem"
    subprocess.run(
        ["openssl", "genrsa", "-out", str(path), str(bits)], check=True, capture_output=True
    )
    der = subprocess.run(
        ["openssl", "rsa", "-in", str(path), "-pubout", "-outform", "DER"],
        check=True,
        capture_output=True,
    ).stdout
    return Key(path, selector, domain, "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode())


def dnsfunc(records: dict[str, str]) -> Callable[..., bytes | None]:
    """dkimpy's dnsfunc answering from records (a stub: never the network)."""

    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        value = records.get(name.decode().rstrip(".").lower())
        return value.encode() if value is not None else None

    return lookup


@dataclass
class StubDns:
    """A UDP DNS server on 127.0.0.1 answering TXT queries from `records`; NXDOMAIN otherwise."""

    records: dict[str, str]
    queries: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def address(self) -> str:
        """HOST:PORT, the value of LISTGATE_DNS_SERVER."""
        return f"127.0.0.1:{self.sock.getsockname()[1]}"

    def start(self) -> StubDns:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(5)
        self.sock.close()

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                continue
            query = dns.message.from_wire(data)
            response = dns.message.make_response(query)
            question = query.question[0]
            name = question.name.to_text().rstrip(".").lower()
            self.queries.append(name)
            value = self.records.get(name)
            if value is not None and question.rdtype == dns.rdatatype.TXT:
                chunks = " ".join(f'"{value[i : i + 250]}"' for i in range(0, len(value), 250))
                answer = dns.rrset.from_text(question.name, 300, "IN", "TXT", chunks)
                response.answer.append(answer)
            else:
                response.set_rcode(dns.rcode.NXDOMAIN)
            self.sock.sendto(response.to_wire(), peer)
