"""Settings: the one place that reads the environment."""

from __future__ import annotations

import ipaddress
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypedDict
from urllib.parse import urlsplit

from listgate.numerals import MAX_PORT, number

MAX_SETTING = 2**63 - 1  # a whole-number setting past this is a typing slip, not a size


class SettingsError(ValueError):
    """A setting is missing or wrong; the message names the variable."""


def _hostport(name: str, value: str) -> tuple[str, int]:
    host, sep, raw_port = value.rpartition(":")
    port = number(raw_port, MAX_PORT)
    if not sep or not host or port is None:
        raise SettingsError(f"{name}={value!r}: expected HOST:PORT, for example 127.0.0.1:2525")
    return host.strip("[]"), port


def _metrics_listen(value: str, web_port: int) -> tuple[str, int] | None:
    """LISTGATE_METRICS_LISTEN: a loopback HOST:PORT of its own (never the web port), or None."""
    name = "LISTGATE_METRICS_LISTEN"
    if not value.strip():
        return None
    host, port = _hostport(name, value.strip())
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        raise SettingsError(
            f"{name}={value!r}: must be a loopback address such as 127.0.0.1:9108 "
            "(to serve /metrics to other hosts set LISTGATE_METRICS_TOKEN instead)"
        )
    if port == web_port:
        raise SettingsError(f"{name}={value!r}: must not be the port of LISTGATE_WEB_LISTEN")
    return host, port


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name, "")
    if raw == "":
        return default
    value = number(raw.removeprefix("-"), MAX_SETTING)
    if value is None:
        raise SettingsError(f"{name}={raw!r}: expected a whole number")
    if raw.startswith("-") or value < minimum:
        raise SettingsError(f"{name}={raw!r}: must be at least {minimum}")
    return value


def _nice(env: Mapping[str, str]) -> int:
    """LISTGATE_ARCHIVER_NICE: 0 (the listener's priority) to 19 (only CPU nobody else wants)."""
    value = _int(env, "LISTGATE_ARCHIVER_NICE", 10, 0)
    if value > 19:
        raise SettingsError(f"LISTGATE_ARCHIVER_NICE={value}: must be at most 19 (as for nice)")
    return value


def _clock(env: Mapping[str, str], name: str, default: tuple[int, int]) -> tuple[int, int]:
    """A time of day in UTC written HH:MM, as (hour, minute)."""
    raw = env.get(name, "").strip()
    if raw == "":
        return default
    hour, sep, minute = raw.partition(":")
    h, m = number(hour, 23), number(minute, 59)
    if not sep or h is None or m is None or len(minute) != 2:
        raise SettingsError(f"{name}={raw!r}: expected a time of day in UTC, HH:MM such as 00:10")
    return h, m


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name}={raw!r}: expected true or false")


def _outbound(name: str, value: str, data_dir: Path) -> str:
    if value == "":
        return f"maildir:{data_dir / 'outbound'}"
    scheme = urlsplit(value).scheme
    if scheme in ("smtp", "smtps", "smtp+starttls"):
        if not urlsplit(value).hostname or urlsplit(value).port is None:
            raise SettingsError(f"{name}={value!r}: expected smtp://host:port")
        return value
    if scheme == "maildir" or value.startswith("maildir:"):
        return value
    raise SettingsError(
        f"{name}={value!r}: expected smtp://host:port, smtp+starttls://user:pass@host:port "
        "or maildir:/path"
    )


def _networks(name: str, value: str) -> tuple[str, ...] | None:
    """Comma-separated addresses or networks (CIDR); None when unset, () for "none"."""
    if not value.strip():
        return None
    if value.strip().lower() == "none":
        return ()
    found = []
    for item in (part.strip() for part in value.split(",")):
        try:
            found.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise SettingsError(
                f"{name}={value!r}: {item!r} is not an address or network "
                "such as 127.0.0.1 or 10.0.0.0/8"
            ) from None
    return tuple(found)


DATABASE_SCHEMES = ("sqlite", "postgresql", "postgres")
BROKER_SCHEMES = ("redis", "rediss", "sqla+sqlite", "sqla+postgresql", "amqp", "memory")


@dataclass(frozen=True)
class Settings:
    """Everything the processes need to know, built once per process."""

    data_dir: Path
    database_url: str
    broker_url: str
    domain: str
    smtp_host: str
    smtp_port: int
    web_host: str
    web_port: int
    base_url: str
    outbound: str
    secret_key: str
    lmtp: bool = False
    max_message_size: int = 25 * 1024 * 1024
    max_header_count: int = 1000
    max_line_length: int = 100_000
    max_mime_depth: int = 50
    max_connections_per_client: int = 16
    max_connections: int = 0  # simultaneous SMTP connections, all clients; 0: from fds and memory
    max_messages_per_minute: int = 600
    smtp_timeout: int = 300  # seconds a client may stay silent, or spend in one DATA
    subject_fallback_days: int = 30
    tls_cert: str = ""
    tls_key: str = ""
    report_threshold: int = 3
    bounce_score_limit: float = 5.0
    dmarc_always_domains: tuple[str, ...] = ()
    log_level: str = "INFO"
    metrics_token: str = ""  # bearer token for /metrics; unset: loopback clients only
    trusted_proxies: int = 0  # reverse proxies in front of the web archive (X-Forwarded-* hops)
    metrics_listen: tuple[str, int] | None = (
        None  # loopback listener serving /metrics without a token
    )
    admins: tuple[str, ...] = ()  # site administrators: act on every list, last to hear of reports
    dkim_key: str = ""  # PEM file: list-generated mail is DKIM-signed for the list domain
    dkim_selector: str = "listgate"
    arc_key: str = ""  # PEM file: every copy of a post is ARC-sealed
    arc_selector: str = ""
    dns_server: str = ""  # HOST:PORT of the resolver for DMARC/DKIM look-ups ("": the system's)
    dns_timeout: int = 5  # seconds for one DNS look-up
    trusted_mtas: tuple[str, ...] | None = (
        None  # networks free of per-client limits; None: loopback in LMTP mode
    )
    notify_socket: str = ""  # systemd's NOTIFY_SOCKET: where to say READY=1 (listgate up sets it)
    auto_reply_window: int = (
        60  # seconds: at most one automatic reply per sender (RFC 3834); 0 turns it off
    )
    edit_window_hours: int = 24  # how long the author of a web post may edit its text
    max_data_memory: int = 256 * 1024 * 1024  # bytes of DATA all SMTP connections may hold at once
    max_header_bytes: int = 256 * 1024  # bytes of a message's header block
    max_folded_lines: int = 1000  # continuation lines of one header field
    archiver_nice: int = 10  # how far below the listener the archiver's CPU priority is (nice)
    # bytes of spooled mail one archiving batch takes at most (a larger message: alone)
    archiver_batch_bytes: int = 8 * 1024 * 1024
    digest_time: tuple[int, int] = (0, 10)  # UTC (hour, minute) the beat sends the digests due
    reminder_time: tuple[int, int] = (8, 0)  # UTC (hour, minute) of the moderators' daily reminder
    max_recipients: int = 100  # RCPTs accepted per SMTP transaction
    # simultaneous SMTP connections from one network (IPv4 /24, IPv6 /64); 0: a quarter of the
    # gateway's limit, at least max_connections_per_client
    max_connections_per_network: int = 0
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_sqlite(self) -> bool:
        """True on the embedded default database."""
        return self.database_url.startswith("sqlite")

    def with_(self, **changes: Any) -> Settings:
        """A copy with some values changed (tests, CLI flags)."""
        return replace(self, **changes)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from LISTGATE_* variables; raise SettingsError naming a bad one."""
        env = os.environ if env is None else env
        data_dir = Path(env.get("LISTGATE_DATA_DIR", "") or "./var").resolve()
        database_url = (
            env.get("LISTGATE_DATABASE_URL", "") or f"sqlite:///{data_dir / 'listgate.sqlite3'}"
        )
        if (
            urlsplit(database_url).scheme.split("+")[0] not in DATABASE_SCHEMES
            or "://" not in database_url
        ):
            raise SettingsError(
                f"LISTGATE_DATABASE_URL={database_url!r}: expected sqlite:///path or postgresql://user@host/db"
            )
        broker_url = (
            env.get("LISTGATE_BROKER_URL", "") or f"sqla+sqlite:///{data_dir / 'broker.sqlite3'}"
        )
        if urlsplit(broker_url).scheme not in BROKER_SCHEMES or "://" not in broker_url:
            raise SettingsError(
                f"LISTGATE_BROKER_URL={broker_url!r}: expected redis://host:port/0 or sqla+sqlite:///path"
            )
        domain = (env.get("LISTGATE_DOMAIN", "") or "lists.localhost").strip().lower().rstrip(".")
        if not domain or "@" in domain or " " in domain:
            raise SettingsError(
                f"LISTGATE_DOMAIN={domain!r}: expected a mail domain such as lists.example.org"
            )
        smtp_host, smtp_port = _hostport(
            "LISTGATE_SMTP_LISTEN", env.get("LISTGATE_SMTP_LISTEN", "") or "127.0.0.1:2525"
        )
        web_host, web_port = _hostport(
            "LISTGATE_WEB_LISTEN", env.get("LISTGATE_WEB_LISTEN", "") or "127.0.0.1:8080"
        )
        base_url = (env.get("LISTGATE_BASE_URL", "") or f"http://{web_host}:{web_port}").rstrip("/")
        if urlsplit(base_url).scheme not in ("http", "https"):
            raise SettingsError(
                f"LISTGATE_BASE_URL={base_url!r}: expected an http:// or https:// URL"
            )
        secret_key = env.get("LISTGATE_SECRET_KEY", "")
        if not secret_key:
            secret_key = _stored_secret(data_dir)
        elif len(secret_key) < 16:
            raise SettingsError("LISTGATE_SECRET_KEY: too short, use at least 16 characters")
        dmarc = tuple(
            d.strip().lower() for d in env.get("LISTGATE_DMARC_ALWAYS", "").split(",") if d.strip()
        )
        log_level = (env.get("LISTGATE_LOG_LEVEL", "") or "INFO").upper()
        if log_level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise SettingsError(
                f"LISTGATE_LOG_LEVEL={log_level!r}: expected DEBUG, INFO, WARNING or ERROR"
            )
        tls_cert, tls_key = env.get("LISTGATE_TLS_CERT", ""), env.get("LISTGATE_TLS_KEY", "")
        if bool(tls_cert) != bool(tls_key):
            raise SettingsError("LISTGATE_TLS_CERT and LISTGATE_TLS_KEY: set both or neither")
        for name, path in (("LISTGATE_TLS_CERT", tls_cert), ("LISTGATE_TLS_KEY", tls_key)):
            if path and not os.access(path, os.R_OK):
                raise SettingsError(f"{name}={path!r}: no such readable file")
        max_message_size = _int(env, "LISTGATE_MAX_MESSAGE_SIZE", 25 * 1024 * 1024, 1024)
        metrics_token = env.get("LISTGATE_METRICS_TOKEN", "").strip()
        if metrics_token and len(metrics_token) < 16:
            raise SettingsError("LISTGATE_METRICS_TOKEN: too short, use at least 16 characters")
        return cls(
            data_dir=data_dir,
            database_url=database_url,
            broker_url=broker_url,
            domain=domain,
            smtp_host=smtp_host,
            smtp_port=smtp_port,
            web_host=web_host,
            web_port=web_port,
            base_url=base_url,
            outbound=_outbound("LISTGATE_OUTBOUND", env.get("LISTGATE_OUTBOUND", ""), data_dir),
            secret_key=secret_key,
            lmtp=_bool(env, "LISTGATE_LMTP", False),
            max_message_size=max_message_size,
            max_header_count=_int(env, "LISTGATE_MAX_HEADERS", 1000, 10),
            max_line_length=_int(env, "LISTGATE_MAX_LINE_LENGTH", 100_000, 998),
            max_mime_depth=_int(env, "LISTGATE_MAX_MIME_DEPTH", 50, 2),
            max_connections_per_client=_int(env, "LISTGATE_MAX_CONNECTIONS_PER_CLIENT", 16, 1),
            max_messages_per_minute=_int(env, "LISTGATE_MAX_MESSAGES_PER_MINUTE", 600, 1),
            smtp_timeout=_int(env, "LISTGATE_SMTP_TIMEOUT", 300, 1),
            subject_fallback_days=_int(env, "LISTGATE_SUBJECT_FALLBACK_DAYS", 30, 0),
            tls_cert=tls_cert,
            tls_key=tls_key,
            report_threshold=_int(env, "LISTGATE_REPORT_THRESHOLD", 3, 1),
            bounce_score_limit=float(_int(env, "LISTGATE_BOUNCE_SCORE_LIMIT", 5, 1)),
            dmarc_always_domains=dmarc,
            log_level=log_level,
            metrics_token=metrics_token,
            trusted_proxies=_int(env, "LISTGATE_TRUSTED_PROXIES", 0, 0),
            metrics_listen=_metrics_listen(env.get("LISTGATE_METRICS_LISTEN", ""), web_port),
            **_mail_auth(env),
            trusted_mtas=_networks("LISTGATE_TRUSTED_MTAS", env.get("LISTGATE_TRUSTED_MTAS", "")),
            notify_socket=env.get("NOTIFY_SOCKET", ""),
            auto_reply_window=_int(env, "LISTGATE_AUTO_REPLY_WINDOW", 60, 0),
            edit_window_hours=_int(env, "LISTGATE_EDIT_WINDOW_HOURS", 24, 0),
            max_data_memory=_data_memory(env, max_message_size),
            max_header_bytes=_int(env, "LISTGATE_MAX_HEADER_BYTES", 256 * 1024, 1024),
            max_folded_lines=_int(env, "LISTGATE_MAX_FOLDED_LINES", 1000, 1),
            max_recipients=_int(env, "LISTGATE_MAX_RECIPIENTS", 100, 1),
            max_connections=_int(env, "LISTGATE_MAX_CONNECTIONS", 0, 1),  # unset: 0, derived
            archiver_nice=_nice(env),
            archiver_batch_bytes=_int(env, "LISTGATE_ARCHIVER_BATCH_BYTES", 8 * 1024 * 1024, 1),
            digest_time=_clock(env, "LISTGATE_DIGEST_TIME", (0, 10)),
            reminder_time=_clock(env, "LISTGATE_REMINDER_TIME", (8, 0)),
            max_connections_per_network=_int(env, "LISTGATE_MAX_CONNECTIONS_PER_NETWORK", 0, 1),
        )


def _pem(env: Mapping[str, str], name: str) -> str:
    """The path of a readable PEM private key file, or ''."""
    path = env.get(name, "").strip()
    if not path:
        return ""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError as exc:
        raise SettingsError(f"{name}={path!r}: cannot read the key file: {exc.strerror}") from None
    if "-----BEGIN" not in text or "PRIVATE KEY-----" not in text:
        raise SettingsError(f"{name}={path!r}: not a PEM private key")
    return path


class _MailAuth(TypedDict):
    admins: tuple[str, ...]
    dkim_key: str
    dkim_selector: str
    arc_key: str
    arc_selector: str
    dns_server: str
    dns_timeout: int


def _mail_auth(env: Mapping[str, str]) -> _MailAuth:
    """Site administrators, DKIM and ARC keys, and the DNS resolver."""
    admins = tuple(
        a.strip().lower() for a in env.get("LISTGATE_ADMINS", "").split(",") if a.strip()
    )
    for address in admins:
        if "@" not in address or any(c in address for c in " <>;"):
            raise SettingsError(f"LISTGATE_ADMINS: {address!r} is not an email address")
    arc_key, arc_selector = (
        _pem(env, "LISTGATE_ARC_KEY"),
        env.get("LISTGATE_ARC_SELECTOR", "").strip(),
    )
    if bool(arc_key) != bool(arc_selector):
        raise SettingsError("LISTGATE_ARC_KEY and LISTGATE_ARC_SELECTOR: set both or neither")
    for name in ("LISTGATE_DKIM_SELECTOR", "LISTGATE_ARC_SELECTOR"):
        value = env.get(name, "").strip()
        if value and not all(
            part.replace("-", "").replace("_", "").isalnum() for part in value.split(".")
        ):
            raise SettingsError(
                f"{name}={value!r}: expected a DNS label such as listgate or mail2026"
            )
    dns_server = env.get("LISTGATE_DNS_SERVER", "").strip()
    if dns_server:
        _hostport("LISTGATE_DNS_SERVER", dns_server)
    return {
        "admins": admins,
        "dkim_key": _pem(env, "LISTGATE_DKIM_KEY"),
        "dkim_selector": env.get("LISTGATE_DKIM_SELECTOR", "").strip() or "listgate",
        "arc_key": arc_key,
        "arc_selector": arc_selector,
        "dns_server": dns_server,
        "dns_timeout": _int(env, "LISTGATE_DNS_TIMEOUT", 5, 1),
    }


def _data_memory(env: Mapping[str, str], max_message_size: int) -> int:
    value = _int(env, "LISTGATE_MAX_DATA_MEMORY", 256 * 1024 * 1024, 1024 * 1024)
    if value < max_message_size:
        raise SettingsError(
            f"LISTGATE_MAX_DATA_MEMORY={value}: must be at least LISTGATE_MAX_MESSAGE_SIZE "
            f"({max_message_size}), or no message of the largest size could be received"
        )
    return value


def _stored_secret(data_dir: Path) -> str:
    """The embedded default keeps a generated key in the data dir, so links survive restarts."""
    path = data_dir / "secret_key"
    try:
        return _read_or_create_secret(path)
    except OSError as exc:
        raise SettingsError(
            f"LISTGATE_SECRET_KEY is unset and {path} cannot be read or created: {exc}"
        ) from None


def _read_or_create_secret(path: Path) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_urlsafe(32))
    try:
        os.link(tmp, path)  # atomic: the first process to start wins, the others read its key
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_text().strip()
