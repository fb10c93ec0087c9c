"""docker-compose.yml and the Dockerfile, checked without Docker: services, health checks,
start order, scaling, pinned images, that every command and setting they use exists, and
(Docker does not run here) the services' own commands and environment started for real and
driven end to end."""

from __future__ import annotations

import json
import os
import re
import signal
import smtplib
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import pytest
import yaml

from listgate.cli import main
from listgate.config import Settings
from tests.support.config import free_port, wait_until
from tests.support.sink import SmtpSink

ROOT = Path(__file__).resolve().parents[2]
LISTGATE_SERVICES = ("gateway", "archiver", "worker", "beat", "web")
INTERPOLATION = re.compile(r"\$\{(\w+)(?::([-?])([^}]*))?\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """The parsed compose file."""
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def interpolate(value: str, env: dict[str, str]) -> str:
    """Resolve ${VAR}, ${VAR:-default} and ${VAR:?error} the way Compose does."""

    def one(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3) or ""
        if env.get(name):
            return env[name]
        if op == "?":
            raise LookupError(f"{name}: {arg}")
        return arg if op == "-" else ""

    return INTERPOLATION.sub(one, value)


def service_env(service: dict[str, Any], dot_env: dict[str, str]) -> dict[str, str]:
    """The environment a service's process sees (its env_file is the example, copied to .env)."""
    return {k: interpolate(str(v), dot_env) for k, v in (service.get("environment") or {}).items()}


def resolve(args: list[str]) -> click.Command:
    """The click command `listgate ARGS` runs; its options must parse."""
    command: click.Command = main
    rest = list(args)
    while isinstance(command, click.Group) and rest and not rest[0].startswith("-"):
        sub = command.get_command(click.Context(command), rest.pop(0))
        assert sub is not None, f"`listgate {' '.join(args)}`: no such command"
        command = sub
    command.make_context("listgate", rest)  # raises on an unknown option
    return command


def test_the_stack_has_every_service(compose: dict[str, Any]) -> None:
    assert {"postgres", "redis", "migrate", *LISTGATE_SERVICES, "mailsink"} <= set(
        compose["services"]
    )


def test_postgres_and_redis_have_health_checks_the_others_wait_for(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert "ping" in services["redis"]["healthcheck"]["test"]
    for name in LISTGATE_SERVICES:
        deps = services[name]["depends_on"]
        assert deps["postgres"]["condition"] == "service_healthy", name
        assert deps["redis"]["condition"] == "service_healthy", name
        assert deps["migrate"]["condition"] == "service_completed_successfully", name
    assert services["migrate"]["command"] == ["listgate", "db", "upgrade"]


def test_one_image_and_one_env_file(compose: dict[str, Any]) -> None:
    import tomllib

    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    services = compose["services"]
    for name in (*LISTGATE_SERVICES, "migrate"):
        assert (
            services[name]["image"] == f"listgate:{version}" and services[name]["build"] == "."
        ), name
        assert services[name]["env_file"] == ".env", name


def test_every_image_is_pinned_to_an_exact_version(compose: dict[str, Any]) -> None:
    # PostgreSQL numbers its releases MAJOR.MINOR (15.13); everything else MAJOR.MINOR.PATCH.
    exact = re.compile(r"^([\w./-]+:v?\d+\.\d+\.\d+|postgres:\d+\.\d+)(-[\w.-]+)?$")
    images = {name: service["image"] for name, service in compose["services"].items()}
    loose = {name: image for name, image in images.items() if not exact.match(image)}
    assert loose == {}, "pin these to an exact release (no latest, no bare major)"
    base = re.search(r"^FROM (\S+)", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert base and exact.match(base.group(1)), base


def test_every_command_is_a_real_listgate_command(compose: dict[str, Any]) -> None:
    for name in (*LISTGATE_SERVICES, "migrate"):
        command = compose["services"][name]["command"]
        assert command[0] == "listgate", name
        resolve(command[1:])
    assert resolve(["web", "--gunicorn", "--workers", "4"]).name == "web"
    with pytest.raises(click.UsageError):
        resolve(["web", "--no-such-option"])


def test_gateway_publishes_port_25_and_web_uses_gunicorn(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert "25:2525" in services["gateway"]["ports"]
    assert services["gateway"]["environment"]["LISTGATE_SMTP_LISTEN"] == "0.0.0.0:2525"
    assert "--gunicorn" in services["web"]["command"]
    assert services["web"]["environment"]["LISTGATE_WEB_LISTEN"] == "0.0.0.0:8080"
    assert "/healthz" in " ".join(services["web"]["healthcheck"]["test"])


def test_workers_can_be_scaled(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]
    assert "container_name" not in worker and "ports" not in worker


def test_each_service_environment_is_a_valid_configuration(compose: dict[str, Any]) -> None:
    dot_env = {"LISTGATE_SECRET_KEY": "a-production-secret-0123456789"}
    known = set(_example_variables())
    for name in (*LISTGATE_SERVICES, "migrate"):
        env = service_env(compose["services"][name], dot_env)
        assert set(env) <= known, (
            f"{name} sets variables Settings does not read: {set(env) - known}"
        )
        settings = Settings.from_env(env)
        assert (
            settings.database_url.startswith("postgresql://")
            and "@postgres:" in settings.database_url
        )
        assert settings.broker_url == "redis://redis:6379/0"
        assert settings.outbound == "smtp://mailsink:1025"


def test_the_stack_refuses_to_start_without_a_secret_key(compose: dict[str, Any]) -> None:
    with pytest.raises(LookupError, match="LISTGATE_SECRET_KEY"):
        service_env(compose["services"]["web"], {})


def test_outgoing_mail_goes_to_the_sink_service(compose: dict[str, Any]) -> None:
    env = service_env(compose["services"]["worker"], {"LISTGATE_SECRET_KEY": "x" * 20})
    host = env["LISTGATE_OUTBOUND"].split("://", 1)[1].split(":")[0]
    assert host in compose["services"] and host == "mailsink"


def test_dockerfile_installs_the_locked_packages_then_every_package_on_python_311() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11\.\d+-slim", text, re.MULTILINE)
    locked = text.index("pip install --require-hashes -r requirements/run.txt")
    assert text.index("pip install --no-deps --no-build-isolation .") > locked
    for package in ("listgate", "gateway", "worker", "webarchive"):
        assert re.search(rf"^COPY {package} ", text, re.MULTILINE), package


def _example_variables() -> list[str]:
    return re.findall(
        r"^#?\s*(LISTGATE_[A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.MULTILINE
    )


def test_the_installed_package_carries_every_data_file() -> None:
    """`pip install .` in the image ships templates, static files and migrations (package-data)."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]
    missing = []
    for package in ("listgate", "gateway", "worker", "webarchive"):
        shipped = {
            p
            for pattern in config.get(package, [])
            for p in (ROOT / package).glob(pattern)
            if p.is_file()
        }
        for path in (ROOT / package).rglob("*"):
            if (
                path.is_file()
                and path.suffix not in (".py", ".pyc")
                and "__pycache__" not in path.parts
                and path not in shipped
            ):
                missing.append(str(path.relative_to(ROOT)))
        migrations = ROOT / package / "migrations" / "versions"
        for path in migrations.glob("*.py") if migrations.exists() else ():
            assert path in shipped, f"{path} is not in package-data"
    assert missing == [], (
        "add these to [tool.setuptools.package-data] or they are missing in the image"
    )


# --- the production recipe run for real: the compose services' own commands and environment ---


def _hosted(value: str, hosts: dict[str, str]) -> str:
    """A compose value with the stack's service addresses replaced by this test's servers."""
    for compose_address, local in hosts.items():
        value = value.replace(compose_address, local)
    return value


def _compose_database(admin_url: str) -> str:
    """An empty database owned by the compose file's
    user `listgate`, on the test's PostgreSQL; its name.
    """
    from tests.support.services import _admin

    name = f"listgate_compose_{os.getpid()}"
    _admin(
        admin_url,
        "DO $$ BEGIN CREATE ROLE listgate LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$",
        f"DROP DATABASE IF EXISTS {name} WITH (FORCE)",
        f"CREATE DATABASE {name} OWNER listgate",
    )
    return name


@pytest.mark.long(24)
def test_the_compose_services_commands_carry_a_post_end_to_end(
    compose: dict[str, Any], tmp_path: Path, postgres_url: str, redis_db_url: str, sink: SmtpSink
) -> None:
    """Each listgate service's `command` with its `environment` and the env file (.env from
    .env.example).

    What differs from Docker, and only that: the service names postgres/redis/mailsink resolve
    to this test's PostgreSQL and Redis (Debian's packages) and SMTP sink; 0.0.0.0:2525/8080
    become free loopback ports; each container's /data is its own temp dir.
    """
    pg = urlsplit(postgres_url)
    database = _compose_database(postgres_url)
    smtp_port, web_port = free_port(), free_port()
    hosts = {
        "@postgres:5432/listgate": f"@127.0.0.1:{pg.port}/{database}",
        "redis://redis:6379": f"redis://{urlsplit(redis_db_url).netloc}",
        "smtp://mailsink:1025": sink.url,
        "0.0.0.0:2525": f"127.0.0.1:{smtp_port}",
        "0.0.0.0:8080": f"127.0.0.1:{web_port}",
        "127.0.0.1:8080": f"127.0.0.1:{web_port}",
    }
    dot_env = {
        **_env_file(ROOT / ".env.example"),
        "LISTGATE_SECRET_KEY": "compose-secret-0123456789",
    }
    bin_dir = Path(sys.executable).parent
    base = {k: v for k, v in os.environ.items() if not k.startswith("LISTGATE_")}

    def env_of(name: str) -> dict[str, str]:
        service = compose["services"][name]
        assert service["env_file"] == ".env"
        data = tmp_path / name / "data"
        data.mkdir(parents=True, exist_ok=True)
        own = {k: _hosted(v, hosts) for k, v in service_env(service, dot_env).items()}
        return {
            **base,
            **dot_env,
            **own,
            "LISTGATE_DATA_DIR": str(data),
            "PATH": f"{bin_dir}:{base.get('PATH', '')}",
        }

    def argv(name: str) -> list[str]:
        return [
            str(bin_dir / "listgate") if a == "listgate" else a
            for a in compose["services"][name]["command"]
        ]

    done = subprocess.run(
        argv("migrate"),
        env=env_of("migrate"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    procs = {}
    try:
        for name in LISTGATE_SERVICES:
            log = open(tmp_path / f"{name}.log", "wb")  # noqa: SIM115 - closed after start
            procs[name] = subprocess.Popen(
                argv(name),
                env=env_of(name),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            log.close()
        health = [_hosted(a, hosts) for a in compose["services"]["web"]["healthcheck"]["test"][1:]]

        def logs() -> str:
            return "\n".join(
                f"--- {n}\n" + (tmp_path / f"{n}.log").read_text()[-1500:] for n in procs
            )

        assert wait_until(
            lambda: (
                subprocess.run(
                    health, env=env_of("web"), capture_output=True, check=False
                ).returncode
                == 0
            ),
            60,
        ), logs()
        assert wait_until(lambda: _smtp_answers(smtp_port), 60), logs()

        # `docker compose exec web listgate ...`: the web service's environment.
        def admin(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [str(bin_dir / "listgate"), *args],
                env=env_of("web"),
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )

        assert admin("lists", "create", "dev").returncode == 0
        assert admin("subscribe", "bob@example.org", "--list", "dev").returncode == 0
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=30) as smtp:
            smtp.sendmail(
                "ann@example.org",
                [f"dev@{Settings.from_env(env_of('web')).domain}"],
                b"From: ann@example.org\r\nSubject: Compose\r\n"
                b"Message-ID: <compose@example.org>\r\n\r\nThrough the recipe.\r\n",
            )
        assert wait_until(lambda: sink.to("bob@example.org"), 60), logs()
        [copy] = sink.to("bob@example.org")
        assert (
            copy.message["Message-ID"] == "<compose@example.org>"
            and "dev." in copy.message["List-Id"]
        )
        threads = json.loads(
            urllib.request.urlopen(
                f"http://127.0.0.1:{web_port}/api/lists/dev/threads", timeout=10
            ).read()
        )
        assert [t["subject"] for t in threads["threads"]] == ["Compose"]
        status = admin("status")
        assert status.returncode == 0, status.stdout + status.stderr
        assert all(proc.poll() is None for proc in procs.values()), logs()
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        from tests.support.services import drop_database, with_database

        drop_database(postgres_url, with_database(postgres_url, database))


def _env_file(path: Path) -> dict[str, str]:
    """The assignments of an env file (comments and
    blank lines skipped), as docker compose reads it.
    """
    found = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            found[key.strip()] = value.strip()
    return found


def _smtp_answers(port: int) -> bool:
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=5) as smtp:
            return smtp.noop()[0] == 250
    except (OSError, smtplib.SMTPException):
        return False
