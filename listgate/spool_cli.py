"""`listgate spool show|retry`: spooled mail whose archiving failed, and putting it back in line.

listgate/cli.py names the group (imported when it is asked for). Mail archived and not posted is
not here: see `listgate not-posted`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from listgate import plurals
from listgate.numerals import ID

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from listgate.spool import Spool


@click.group(name="spool")
def spool_group() -> None:
    """Mail answered 250 whose archiving failed: look, and give it to the archiver again."""


def _spool(session: Session) -> Spool:
    """The spool of the database the CLI's session is bound to."""
    from sqlalchemy import Engine

    from listgate.spool import Spool

    bind = session.get_bind()
    assert isinstance(bind, Engine)  # the CLI's sessions come from session_factory(engine)
    return Spool(bind)


@spool_group.command("show")
def spool_show() -> None:
    """Every failed message with its error, and how many wait for the archiver."""
    from listgate.cli import _session, ensure_schema, load_settings

    settings = load_settings()
    ensure_schema(settings)
    with _session(settings) as session:
        spool = _spool(session)
        try:
            rows, depth = spool.failed(session, limit=1000), spool.depth(session)
        finally:
            spool.close()
    for r in rows:
        click.echo(
            f"{r.id:6}  {r.received_at:%Y-%m-%d %H:%M}  "
            f"<{r.message_id}> from {r.mail_from or '<>'} "
            f"to {r.rcpt_tos.replace(chr(10), ', ')}: {r.reason}"
        )
    click.echo(
        f"{plurals.count(len(rows), 'mail')} failed to archive; "
        f"{depth.pending} waiting for the archiver"
    )


@spool_group.command("retry")
@click.argument("spool_id", type=ID, required=False)
@click.option("--all", "every", is_flag=True, help="Every failed message.")
def spool_retry(spool_id: int | None, every: bool) -> None:
    """Give the failed message SPOOL_ID (see `listgate spool show`), or --all, to the archiver."""
    from listgate.cli import _session, ensure_schema, load_settings

    if (spool_id is None) == (not every):
        raise click.UsageError("give a spool id or --all (not both)")
    settings = load_settings()
    ensure_schema(settings)
    with _session(settings) as session:
        spool = _spool(session)
        try:
            n = spool.retry(session, None if spool_id is None else [spool_id])
        finally:
            spool.close()
    if spool_id is not None and n == 0:
        raise click.ClickException(
            f"there is no failed message {spool_id} in the spool: it is back in line or archived "
            "already if it was retried before, or there was never one with this id "
            "(see `listgate spool show`)"
        )
    click.echo(f"{plurals.count(n, 'mail')} back in line for the archiver")
