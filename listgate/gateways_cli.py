"""`listgate gateways forget`: the report of a gateway that is not coming back.

A gateway killed or crashed leaves its report (listgate.gateways), and `listgate status` fails
naming it until a gateway starts again on the same host and address, or it is forgotten here.
listgate/cli.py names the group (imported when it is asked for).
"""

from __future__ import annotations

from datetime import UTC, datetime

import click

from listgate import plurals


@click.group(name="gateways")
def gateways_group() -> None:
    """Gateway processes' reports of themselves: forget one that is not coming back."""


@gateways_group.command("forget")
@click.argument("names", nargs=-1, metavar="[NAME]...")
@click.option(
    "--down",
    "every_down",
    is_flag=True,
    help="Every gateway `listgate status` shows DEAD or SILENT.",
)
def gateways_forget(names: tuple[str, ...], every_down: bool) -> None:
    """Remove the report of the gateway NAME (host/pid/address, as `listgate status` names it),
    dead or silent and not coming back, so that `listgate status` no longer fails for it.
    """
    from listgate import gateways
    from listgate.cli import _session, ensure_schema, load_settings

    if bool(names) == every_down:
        raise click.UsageError("give the names of gateways or --down (not both)")
    if any(not name.strip() for name in names):  # a script's empty variable
        raise click.UsageError("a gateway's name is empty: give it as `listgate status` names it")
    settings = load_settings()
    ensure_schema(settings)
    now = datetime.now(UTC)
    with _session(settings) as session:
        found = {r.name: r for r in gateways.reports(session)}
        if every_down:
            names = tuple(name for name, r in found.items() if not r.up(now))
        for name in names:
            report = found.get(name)
            if report is None:
                raise click.ClickException(
                    f"no gateway reports as {name} (`listgate status` names those that do)"
                )
            if report.up(now):
                raise click.ClickException(
                    f"{name} is running (heard from {int((now - report.seen).total_seconds())} s "
                    "ago): stop it, and it removes its report itself"
                )
            gateways.forget(session, name)
    for name in names:
        click.echo(
            f"forgot gateway {name}, last heard from {found[name].seen:%Y-%m-%d %H:%M:%S} UTC"
        )
    click.echo(f"{plurals.count(len(names), 'gateway')} forgotten")
