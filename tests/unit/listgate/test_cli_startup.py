"""The `listgate` command starts without importing the database layer, the broker client or the
web app, and its help still lists every command with its short help.

Start-up is measured by what a fresh `python -m listgate.cli` imports (a count, not a time): the
command runs on every administrator's keystroke and many times in each journey.
"""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

import listgate
from listgate import cli

# What only a command that works on the database, the broker or the web needs.
HEAVY = ("sqlalchemy", "alembic", "celery", "kombu", "redis", "flask", "aiosmtpd", "mailparser")


def imported_by(*args: str) -> set[str]:
    """The top-level packages a fresh `python -m listgate.cli ARGS` imported."""
    script = (
        "import sys, runpy\n"
        "sys.argv = ['listgate', *sys.argv[1:]]\n"
        "try:\n"
        "    runpy.run_module('listgate.cli', run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})), file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return set(done.stderr.split())


@pytest.mark.parametrize(
    "args",
    [["--help"], ["--version"], ["lists", "--help"], ["owners", "--help"], ["spool", "--help"]],
)
def test_help_and_version_import_no_database_broker_or_web(args: list[str]) -> None:
    heavy = sorted(imported_by(*args) & set(HEAVY))
    assert not heavy, f"`listgate {' '.join(args)}` imported {heavy}"


def command_paths(group: click.Group, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command and group under group, as the words that name it."""
    ctx = click.Context(group)
    found = []
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, f"`listgate {' '.join((*path, name))}` is listed, not found"
        found.append((*path, name))
        if isinstance(command, click.Group):
            found += command_paths(command, (*path, name))
    return found


def test_every_group_lists_each_command_with_its_short_help() -> None:
    paths = command_paths(cli.main)
    for path in [(), *(p for p in paths if isinstance(resolve(p), click.Group))]:
        group = resolve(path)
        assert isinstance(group, click.Group)
        result = CliRunner().invoke(cli.main, [*path, "--help"])
        assert result.exit_code == 0, result.output
        listing = result.output.split("Commands:", 1)[1]
        for name in group.list_commands(click.Context(group)):
            sub = group.get_command(click.Context(group), name)
            assert sub is not None
            short = sub.get_short_help_str(limit=30).rstrip(".")
            line = next((x for x in listing.splitlines() if x.split()[:1] == [name]), "")
            assert (
                short and line.startswith(f"  {name} ") and short[:20] in " ".join(listing.split())
            ), f"`listgate {' '.join(path)} --help` shows no help for {name}:\n{result.output}"


def test_every_command_says_its_help() -> None:
    paths = command_paths(cli.main)
    named_elsewhere = {
        ("owners", "add"),
        ("lists", "edit"),
        ("spool", "retry"),
        ("gateways", "forget"),
    }
    assert named_elsewhere <= set(paths)
    for path in paths:
        result = CliRunner().invoke(cli.main, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert f"Usage: main {' '.join(path)}" in result.output, (path, result.output)


def test_every_command_of_the_cli_modules_is_reachable() -> None:
    """A command written in a *_cli module and not named in listgate.cli would never run."""
    reachable = {id(resolve(path)) for path in command_paths(cli.main)}
    for info in pkgutil.iter_modules(listgate.__path__):
        if not info.name.endswith("_cli"):
            continue
        module = importlib.import_module(f"listgate.{info.name}")
        for attribute, value in vars(module).items():
            if isinstance(value, click.Command) and value.name not in (None, "main"):
                assert id(value) in reachable, f"listgate.{info.name}.{attribute} is not reachable"


def resolve(path: tuple[str, ...]) -> click.Command:
    """The command `listgate PATH...` names."""
    command: click.Command = cli.main
    for name in path:
        assert isinstance(command, click.Group)
        sub = command.get_command(click.Context(command), name)
        assert sub is not None, path
        command = sub
    return command
