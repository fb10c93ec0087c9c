"""README.md agrees with the code: every variable, command and API endpoint, named the same way."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from listgate.cli import main
from listgate.config import Settings
from tests.support.config import search
from tests.unit.listgate.test_config import RecordingEnv, example

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def section(title: str) -> str:
    """The text of one `## title` section."""
    return README.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def table_rows(text: str) -> list[list[str]]:
    """The cells of each table row in text (header and rule rows excluded)."""
    rows = [
        [c.strip() for c in line.strip().strip("|").split("|")]
        for line in text.splitlines()
        if line.startswith("|")
    ]
    return [r for r in rows[2:] if r]


def test_the_configuration_table_names_exactly_the_variables_the_code_reads(tmp_path: Path) -> None:
    env = RecordingEnv({"LISTGATE_DATA_DIR": str(tmp_path)})
    Settings.from_env(env)
    read = {k for k in env.read if k.startswith("LISTGATE_")}
    documented = {
        v
        for row in table_rows(section("Configuration"))
        for v in re.findall(r"`(LISTGATE_[A-Z0-9_]+)`", row[0])
    }
    assert read - documented == set(), "add these to README's Configuration table"
    assert documented - read == set(), "README documents variables the code does not read"


def test_the_configuration_table_defaults_match_env_example() -> None:
    listed = example()
    for row in table_rows(section("Configuration")):
        names = re.findall(r"`(LISTGATE_[A-Z0-9_]+)`", row[0])
        literal = re.fullmatch(r"`([^`$]*)`", row[1])
        if len(names) == 1 and literal and listed.get(names[0]):
            assert listed[names[0]] == literal.group(1), (
                f"{names[0]}: README says {row[1]}, .env.example {listed[names[0]]}"
            )


def test_the_commands_table_names_every_command_as_listgate_command() -> None:
    rows = table_rows(section("Commands"))
    named = {
        search(r"\A`listgate ([\w-]+)", row[0]) for row in rows if row[0].startswith("`listgate ")
    }
    commands = set(main.list_commands(click.Context(main)))  # those imported when asked for too
    assert commands <= named, f"missing from README's Commands table: {commands - named}"
    assert all(row[0].startswith("`listgate ") for row in rows), (
        "every command is spelled `listgate ...`"
    )
    assert ".venv/bin" in section("Commands") and ".venv/bin" in section("Quick start")
    assert "`.venv/bin/listgate " not in README, (
        "name the command `listgate` (say once where make run puts it)"
    )


def test_the_api_section_lists_every_api_route_with_an_example() -> None:
    from webarchive import create_app

    app = create_app(
        Settings.from_env(
            {
                "LISTGATE_SECRET_KEY": "readme-test-0123456789",
                "LISTGATE_DATA_DIR": "/nonexistent-readme-test",
            }
        )
    )
    routes = {
        re.sub(r"<(?:\w+:)?(\w+)>", lambda m: m.group(1).upper(), r.rule)
        for r in app.url_map.iter_rules()
        if r.rule.startswith("/api/")
    }
    text = section("JSON API")
    documented = {search(r"\A`GET (\S+?)(\?\S*)?`", row[0]) for row in table_rows(text)}
    normal = lambda rule: re.sub(r"[A-Z_-]+(?=/|$)", "X", rule)  # noqa: E731 - placeholder names may differ
    assert {normal(r) for r in routes} == {normal(d) for d in documented}
    examples = re.findall(r"^curl -s '?http://127\.0\.0\.1:8080(/api/[^'\s]*)", text, re.MULTILINE)
    for rule in documented:
        pattern = (
            re.escape(rule)
            .replace("MESSAGE\\-ID", "[^/?]+@[^/?]+")
            .replace("NAME", "[^/]+")
            .replace("ID", r"\d+")
        )
        assert any(re.fullmatch(pattern + r"(\?.*)?", e) for e in examples), (
            f"no example for {rule}"
        )


@pytest.mark.parametrize("target", ["run", "test", "install", "audit", "lock"])
def test_the_make_targets_the_readme_names_exist(target: str) -> None:
    assert f"make {target}" in README
    assert re.search(rf"^{target}:", (ROOT / "Makefile").read_text(), re.MULTILINE)
