"""Command groups whose subcommands live in other modules, imported when one is asked for.

Click's lazy-group pattern: `listgate subscribe` does not import the owner's commands;
`listgate --help` imports them all (to print each one's short help), so those modules keep
their own heavy imports inside the commands.
"""

from __future__ import annotations

import importlib

import click


class LazyGroup(click.Group):
    """A group with `lazy` subcommands: name -> "module:attribute" of a click.Command."""

    def __init__(self, *args: object, lazy: dict[str, str] | None = None, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.lazy = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy and cmd_name not in self.commands:
            module, attribute = self.lazy[cmd_name].split(":")
            command = getattr(importlib.import_module(module), attribute)
            if not isinstance(command, click.Command) or command.name != cmd_name:
                raise TypeError(f"{self.lazy[cmd_name]} is not the command {cmd_name!r}")
            self.add_command(command)
        return super().get_command(ctx, cmd_name)
