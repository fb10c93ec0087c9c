"""docker-compose.yml and the Dockerfile, checked without Docker: services, health checks,
start order, scaling, and that every command and setting they use exists."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from listgate.cli import main
from listgate.config import Settings

ROOT = Path(__file__).resolve().parents[2]
LISTGATE_SERVICES = ("gateway", "worker", "beat", "web")
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
    assert {"postgres", "redis", "migrate", *LISTGATE_SERVICES, "mailsink"} <= set(compose["services"])


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
        assert services[name]["image"] == f"listgate:{version}" and services[name]["build"] == ".", name
        assert services[name]["env_file"] == ".env", name


def test_every_image_is_pinned_to_an_exact_version(compose: dict[str, Any]) -> None:
    # PostgreSQL numbers its releases MAJOR.MINOR (15.13); everything else MAJOR.MINOR.PATCH.
    exact = re.compile(r"^([\w./-]+:v?\d+\.\d+\.\d+|postgres:\d+\.\d+)(-[\w.-]+)?$")
    images = {name: service["image"] for name, service in compose["services"].items()}
    loose = {name: image for name, image in images.items() if not exact.match(image)}
    assert loose == {}, "pin these to an exact release (no latest, no bare major)"
    base = re.search(r"^FROM (\S+)", (ROOT / "Dockerfile").read_text(), re.M)
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
        assert set(env) <= known, f"{name} sets variables Settings does not read: {set(env) - known}"
        settings = Settings.from_env(env)
        assert settings.database_url.startswith("postgresql://") and "@postgres:" in settings.database_url
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
    assert re.search(r"^FROM python:3\.11\.\d+-slim", text, re.M)
    locked = text.index("pip install --require-hashes -r requirements/run.txt")
    assert text.index("pip install --no-deps --no-build-isolation .") > locked
    for package in ("listgate", "gateway", "worker", "webarchive"):
        assert re.search(rf"^COPY {package} ", text, re.M), package


def _example_variables() -> list[str]:
    return re.findall(r"^#?\s*(LISTGATE_[A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M)


def test_the_installed_package_carries_every_data_file() -> None:
    """`pip install .` in the image ships templates, static files and migrations (package-data)."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    missing = []
    for package in ("listgate", "gateway", "worker", "webarchive"):
        shipped = {p for pattern in config.get(package, []) for p in (ROOT / package).glob(pattern) if p.is_file()}
        for path in (ROOT / package).rglob("*"):
            if path.is_file() and path.suffix not in (".py", ".pyc") and "__pycache__" not in path.parts:
                if path not in shipped:
                    missing.append(str(path.relative_to(ROOT)))
        migrations = (ROOT / package / "migrations" / "versions")
        for path in migrations.glob("*.py") if migrations.exists() else ():
            assert path in shipped, f"{path} is not in package-data"
    assert missing == [], "add these to [tool.setuptools.package-data] or they are missing in the image"
