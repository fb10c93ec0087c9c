"""Settings: defaults, every wrong value named, and .env.example kept in sync with the code."""

from __future__ import annotations

import re
from dataclasses import asdict
from pathlib import Path

import pytest

from listgate.config import Settings, SettingsError

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE_LINE = re.compile(r"^#?\s*(LISTGATE_[A-Z0-9_]+)=(.*)$")


class RecordingEnv(dict):
    """An environment that remembers every variable asked for."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.read: set[str] = set()

    def get(self, key: str, default: object = None) -> object:
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> object:
        self.read.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        self.read.add(str(key))
        return super().__contains__(key)


def example() -> dict[str, str]:
    """The variables .env.example lists, with their documented defaults."""
    found = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        m = EXAMPLE_LINE.match(line.strip())
        if m:
            found[m.group(1)] = m.group(2).strip()
    return found


def base(tmp_path: Path, **env: str) -> dict[str, str]:
    """A minimal environment in a temp data dir."""
    return {"LISTGATE_DATA_DIR": str(tmp_path), **env}


def test_env_example_lists_exactly_the_variables_settings_reads(tmp_path: Path) -> None:
    env = RecordingEnv(base(tmp_path))
    Settings.from_env(env)
    read = {k for k in env.read if k.startswith("LISTGATE_")}
    listed = set(example())
    assert read - listed == set(), "add these to .env.example"
    assert listed - read == set(), "these in .env.example are not read by Settings.from_env"


def test_env_example_defaults_are_the_real_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    documented = {k: v for k, v in example().items() if v}
    fields = lambda s: {k: v for k, v in asdict(s).items() if k != "extra"}  # noqa: E731
    assert fields(Settings.from_env(documented)) == fields(Settings.from_env({}))


def test_embedded_defaults_live_in_the_data_dir(tmp_path: Path) -> None:
    s = Settings.from_env(base(tmp_path))
    assert s.database_url == f"sqlite:///{tmp_path}/listgate.sqlite3"
    assert s.broker_url == f"sqla+sqlite:///{tmp_path}/broker.sqlite3"
    assert s.outbound == f"maildir:{tmp_path}/outbound"
    assert (s.smtp_host, s.smtp_port, s.web_port) == ("127.0.0.1", 2525, 8080)
    assert s.base_url == "http://127.0.0.1:8080"


def test_the_generated_secret_key_survives_a_restart(tmp_path: Path) -> None:
    first = Settings.from_env(base(tmp_path)).secret_key
    assert len(first) >= 32
    assert Settings.from_env(base(tmp_path)).secret_key == first


def test_production_values_are_taken_as_given(tmp_path: Path) -> None:
    s = Settings.from_env(
        base(
            tmp_path,
            LISTGATE_DATABASE_URL="postgresql://lg:pw@db:5432/listgate",
            LISTGATE_BROKER_URL="redis://redis:6379/0",
            LISTGATE_DOMAIN="Lists.Example.org.",
            LISTGATE_SMTP_LISTEN="0.0.0.0:25",
            LISTGATE_OUTBOUND="smtp://relay:587",
            LISTGATE_BASE_URL="https://lists.example.org/",
            LISTGATE_LMTP="yes",
            LISTGATE_DMARC_ALWAYS="Yahoo.com, aol.com",
        )
    )
    assert s.domain == "lists.example.org" and s.base_url == "https://lists.example.org"
    assert (s.smtp_host, s.smtp_port, s.lmtp) == ("0.0.0.0", 25, True)
    assert s.dmarc_always_domains == ("yahoo.com", "aol.com")
    assert not s.is_sqlite


BAD = [
    ("LISTGATE_DATABASE_URL", "listgate.sqlite3"),
    ("LISTGATE_DATABASE_URL", "mysql://db/listgate"),
    ("LISTGATE_BROKER_URL", "localhost:6379"),
    ("LISTGATE_BROKER_URL", "kafka://broker"),
    ("LISTGATE_DOMAIN", "lists@example.org"),
    ("LISTGATE_SMTP_LISTEN", "2525"),
    ("LISTGATE_SMTP_LISTEN", "127.0.0.1:70000"),
    ("LISTGATE_WEB_LISTEN", "localhost:http"),
    ("LISTGATE_BASE_URL", "lists.example.org"),
    ("LISTGATE_OUTBOUND", "smtp://relay"),
    ("LISTGATE_OUTBOUND", "sendmail"),
    ("LISTGATE_SECRET_KEY", "tooshort"),
    ("LISTGATE_LOG_LEVEL", "verbose"),
    ("LISTGATE_LMTP", "maybe"),
    ("LISTGATE_TLS_CERT", "/nonexistent/cert.pem"),
    ("LISTGATE_MAX_MESSAGE_SIZE", "25MB"),
    ("LISTGATE_MAX_MESSAGE_SIZE", "10"),
    ("LISTGATE_MAX_HEADERS", "-1"),
    ("LISTGATE_MAX_LINE_LENGTH", "80"),
    ("LISTGATE_MAX_MIME_DEPTH", "x"),
    ("LISTGATE_MAX_CONNECTIONS_PER_CLIENT", "0"),
    ("LISTGATE_MAX_CONNECTIONS", "0"),
    ("LISTGATE_MAX_CONNECTIONS_PER_NETWORK", "٣"),
    ("LISTGATE_MAX_CONNECTIONS_PER_NETWORK", "0"),
    ("LISTGATE_MAX_MESSAGES_PER_MINUTE", "1.5"),
    ("LISTGATE_SMTP_TIMEOUT", "0"),
    ("LISTGATE_SUBJECT_FALLBACK_DAYS", "-3"),
    ("LISTGATE_REPORT_THRESHOLD", "0"),
    ("LISTGATE_BOUNCE_SCORE_LIMIT", "high"),
    ("LISTGATE_METRICS_TOKEN", "short"),
    ("LISTGATE_TRUSTED_PROXIES", "-1"),
    ("LISTGATE_TRUSTED_PROXIES", "nginx"),
    ("LISTGATE_METRICS_LISTEN", "0.0.0.0:9108"),
    ("LISTGATE_ADMINS", "root"),
    ("LISTGATE_DKIM_KEY", "/nonexistent/dkim.pem"),
    ("LISTGATE_DKIM_SELECTOR", "two words"),
    ("LISTGATE_ARC_KEY", "/nonexistent/arc.pem"),
    ("LISTGATE_ARC_SELECTOR", "arc2026"),  # without LISTGATE_ARC_KEY
    ("LISTGATE_DNS_SERVER", "127.0.0.1"),
    ("LISTGATE_DNS_TIMEOUT", "0"),
    ("LISTGATE_TRUSTED_MTAS", "postfix.example.org"),
    ("LISTGATE_AUTO_REPLY_WINDOW", "-5"),
    ("LISTGATE_AUTO_REPLY_WINDOW", "a minute"),
    ("LISTGATE_EDIT_WINDOW_HOURS", "a day"),
    ("LISTGATE_DIGEST_TIME", "24:00"),
    ("LISTGATE_DIGEST_TIME", "0010"),
    ("LISTGATE_DIGEST_TIME", "7:5"),
    ("LISTGATE_REMINDER_TIME", "8am"),
    ("LISTGATE_REMINDER_TIME", "08:60"),
    ("LISTGATE_MAX_DATA_MEMORY", "1G"),
    ("LISTGATE_MAX_DATA_MEMORY", "2097152"),  # smaller than the largest message
    ("LISTGATE_MAX_HEADER_BYTES", "100"),
    ("LISTGATE_MAX_FOLDED_LINES", "0"),
    ("LISTGATE_MAX_RECIPIENTS", "many"),
    ("LISTGATE_ARCHIVER_NICE", "20"),  # nice stops at 19
    ("LISTGATE_ARCHIVER_NICE", "-5"),  # a higher priority than the listener's
    ("LISTGATE_ARCHIVER_BATCH_BYTES", "0"),  # no batch could take any message
    # digits of other scripts, and "²" (a digit to str.isdigit() that int() refuses)
    ("LISTGATE_SMTP_LISTEN", "127.0.0.1:٢٥٢٥"),
    ("LISTGATE_WEB_LISTEN", "127.0.0.1:²"),
    ("LISTGATE_DNS_SERVER", "127.0.0.1:５３"),
    ("LISTGATE_MAX_RECIPIENTS", "१००"),
    ("LISTGATE_SMTP_TIMEOUT", " 30_0"),
]


@pytest.mark.parametrize(("variable", "value"), BAD)
def test_a_wrong_value_is_refused_naming_the_variable(
    tmp_path: Path, variable: str, value: str
) -> None:
    env = base(tmp_path, **{variable: value})
    if variable == "LISTGATE_TLS_CERT":
        env["LISTGATE_TLS_KEY"] = str(tmp_path / "key.pem")
        (tmp_path / "key.pem").write_text("key")
    with pytest.raises(SettingsError) as info:
        Settings.from_env(env)
    assert variable in str(info.value)
    assert "\n" not in str(info.value)


def test_every_listed_variable_has_a_wrong_value_test() -> None:
    free_form = {"LISTGATE_DATA_DIR", "LISTGATE_TLS_KEY", "LISTGATE_DMARC_ALWAYS"}
    untested = set(example()) - {v for v, _ in BAD} - free_form
    assert untested == set(), "add a wrong value for these to BAD"


def test_a_key_file_that_is_no_pem_key_is_refused(tmp_path: Path) -> None:
    (tmp_path / "key.pem").write_text("not a key")
    with pytest.raises(SettingsError, match=r"LISTGATE_DKIM_KEY=.*not a PEM private key"):
        Settings.from_env(base(tmp_path, LISTGATE_DKIM_KEY=str(tmp_path / "key.pem")))


def test_half_a_tls_pair_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="LISTGATE_TLS_CERT and LISTGATE_TLS_KEY"):
        Settings.from_env(base(tmp_path, LISTGATE_TLS_CERT=str(tmp_path)))


def test_an_unwritable_data_dir_without_a_key_is_named(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(SettingsError, match="LISTGATE_SECRET_KEY"):
        Settings.from_env({"LISTGATE_DATA_DIR": str(blocker / "var")})


def test_a_data_dir_that_cannot_be_created_is_named(tmp_path: Path) -> None:
    with pytest.raises(
        SettingsError, match=r"LISTGATE_SECRET_KEY is unset and .* cannot be read or created"
    ):
        Settings.from_env({"LISTGATE_DATA_DIR": "/proc/listgate-test/var"})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", None),
        ("none", ()),
        ("127.0.0.1", ("127.0.0.1/32",)),
        ("10.0.0.0/8, ::1", ("10.0.0.0/8", "::1/128")),
    ],
)
def test_trusted_mtas_are_addresses_or_networks(
    tmp_path: Path, value: str, expected: object
) -> None:
    assert Settings.from_env(base(tmp_path, LISTGATE_TRUSTED_MTAS=value)).trusted_mtas == expected


def test_a_bad_trusted_mta_is_named(tmp_path: Path) -> None:
    with pytest.raises(
        SettingsError, match=r"LISTGATE_TRUSTED_MTAS=.*'mail\.example\.org' is not an address"
    ):
        Settings.from_env(base(tmp_path, LISTGATE_TRUSTED_MTAS="127.0.0.1,mail.example.org"))
