"""The `listgate` command.

It starts in a small fraction of a second: this module imports little more than click, each
command imports what it needs when it runs, and the commands of other modules are imported only
when asked for (listgate.cli_lazy; `--help` asks for them all).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NoReturn

import click

from listgate import plurals
from listgate.cli_lazy import LazyGroup
from listgate.numerals import ID, Count
from listgate.states import ListPolicy, SubscriptionKind, SubscriptionState

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from listgate import subscriptions
    from listgate.config import Settings
    from listgate.models import OutboxEntry, Subscription

# The commands of other modules, imported when asked for.
ADMIN = "listgate.admin_cli"
LAZY_COMMANDS = {
    "owners": f"{ADMIN}:owners",
    "moderators": f"{ADMIN}:moderators",
    "messages": f"{ADMIN}:messages",
    "spool": "listgate.spool_cli:spool_group",  # failed archiving: show and retry
    "gateways": "listgate.gateways_cli:gateways_group",  # gateways that are not coming back
}
LAZY_LIST_COMMANDS = {
    "edit": f"{ADMIN}:lists_edit",
    "delete": f"{ADMIN}:lists_delete",
    "members": f"{ADMIN}:lists_members",
}


def load_settings() -> Settings:
    """Settings from the environment, or a clean exit naming the bad variable."""
    from listgate.config import Settings, SettingsError

    try:
        return Settings.from_env()
    except SettingsError as exc:
        raise click.ClickException(f"configuration error: {exc}") from None


def setup_logging(settings: Settings) -> None:
    """One log format for every listgate process."""
    from listgate import logs

    logs.setup(settings)


def brief(exc: BaseException) -> str:
    """The first line of an error (a database driver's own message, not SQLAlchemy's wrapping)."""
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def ensure_schema(settings: Settings) -> None:
    """Create or migrate the database when it is behind the code."""
    from listgate.db import make_engine
    from listgate.schema import needs_upgrade, upgrade

    engine = make_engine(settings)
    try:
        if needs_upgrade(engine):
            upgrade(engine)
    except Exception as exc:  # noqa: BLE001 - say what failed, not a traceback
        raise click.ClickException(
            f"database {settings.database_url.split('@')[-1]}: {brief(exc)}"
        ) from None
    finally:
        engine.dispose()


@click.group(
    cls=LazyGroup, lazy=LAZY_COMMANDS, context_settings={"help_option_names": ["-h", "--help"]}
)
@click.version_option(package_name="listgate")
def main() -> None:
    """listgate: an email-list-style discussion gateway.

    Configuration comes from LISTGATE_* environment variables (see .env.example).
    """


def _exec_service(name: str, extra: list[str]) -> NoReturn:
    from listgate import launch

    load_settings()  # fail here, with the variable's name, before starting anything
    service = next(s for s in launch.SERVICES if s.name == name)
    os.execv(sys.executable, [sys.executable, *service.args, *extra])


@main.command(context_settings={"ignore_unknown_options": True})
@click.option("--lmtp", is_flag=True, help="Speak LMTP instead of SMTP (behind Postfix or Exim).")
@click.option(
    "--listen", default="", help="HOST:PORT or unix:/path (default LISTGATE_SMTP_LISTEN)."
)
@click.option(
    "--archiver/--no-archiver",
    default=True,
    show_default=True,
    help="Also archive spooled mail in this process (--no-archiver when `listgate archiver` runs).",
)
def gateway(lmtp: bool, listen: str, archiver: bool) -> None:
    """Run the SMTP/LMTP listener (by default with an archiver in the same process)."""
    ensure_schema(load_settings())
    # Not launch.SERVICES' gateway: under `listgate up` an archiver child archives, so that one only
    # spools.
    os.execv(
        sys.executable,
        [
            sys.executable,
            "-m",
            "gateway",
            *(["--lmtp"] if lmtp else []),
            *(["--listen", listen] if listen else []),
            *([] if archiver else ["--no-archiver"]),
        ],
    )


@main.command(context_settings={"ignore_unknown_options": True})
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def worker(celery_args: tuple[str, ...]) -> None:
    """Run a Celery worker (extra arguments go to celery)."""
    from listgate import logs

    ensure_schema(load_settings())
    if logs.running_as_root():
        click.echo(f"note: {logs.ROOT_NOTE}", err=True)
    _exec_service("worker", list(celery_args))


@main.command(context_settings={"ignore_unknown_options": True})
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def beat(celery_args: tuple[str, ...]) -> None:
    """Run the periodic scheduler (outbox sweeps, retries, digests)."""
    load_settings()
    _exec_service("beat", list(celery_args))


@main.command()
@click.option("--gunicorn", "use_gunicorn", is_flag=True, help="Serve with gunicorn (production).")
@click.option(
    "--workers", type=Count(1, 256), default=2, show_default=True, help="gunicorn worker processes."
)
def web(use_gunicorn: bool, workers: int) -> None:
    """Run the web archive."""
    settings = load_settings()
    ensure_schema(settings)
    if use_gunicorn:
        # The metrics listener is one more bind of the same app (webarchive.views.ops tells them
        # apart).
        metrics = (
            ["--bind", "[{}]:{}".format(*settings.metrics_listen)]
            if settings.metrics_listen
            else []
        )
        os.execvp(
            sys.executable,
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--workers",
                str(workers),
                "--bind",
                f"{settings.web_host}:{settings.web_port}",
                *metrics,
                "--access-logfile",
                "-",
                "webarchive.wsgi:app",
            ],
        )
    _exec_service("web", [])


@main.command()
@click.option(
    "--batch",
    type=Count(1, 10_000),
    default=100,  # listgate.archiver.BATCH (not imported here: this module starts fast)
    show_default=True,
    help="Messages archived per transaction (at most LISTGATE_ARCHIVER_BATCH_BYTES of them).",
)
def archiver(batch: int) -> None:
    """Archive spooled mail (parse, thread, index, queue the fan-out); run several to scale."""
    ensure_schema(load_settings())
    _exec_service("archiver", ["--batch", str(batch)])


@main.command(short_help="Start gateway, archiver, worker, beat and web; Ctrl-C stops all.")
@click.option(
    "--demo/--no-demo",
    default=True,
    help="Create a demo list with a short discussion on first run.",
)
def up(demo: bool) -> None:
    """Start gateway, archiver, worker, beat and web, restart any that dies; Ctrl-C stops all."""
    from listgate import launch, uplock

    settings = load_settings()
    try:
        sys.exit(launch.run(settings, demo, prepare=ensure_schema, echo=click.echo))
    except (launch.PortTaken, uplock.AlreadyRunning) as exc:
        raise click.ClickException(str(exc)) from None


@main.command()
@click.option(
    "--listen", default="127.0.0.1:1025", show_default=True, help="HOST:PORT to listen on."
)
@click.option("--maildir", default="", help="Also keep every message in this Maildir.")
def sink(listen: str, maildir: str) -> None:
    """A development SMTP sink: accepts every message and prints one line for each."""
    os.execv(
        sys.executable,
        [sys.executable, "-m", "gateway.sink", "--listen", listen]
        + (["--maildir", maildir] if maildir else []),
    )


@main.command(short_help="Database, broker, spool, gateways, processes; exit 1 on trouble.")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def status(as_json: bool) -> None:
    """Database, broker, spool, queue, deliveries, gateways and the children of `listgate up`.

    A line each; a part in trouble says so in capitals, and a last line names every problem.
    Exit status 1 on trouble, 0 otherwise (for monitors and scripts). With --json, the same
    figures, `ok` and the list of `problems`.
    """
    from listgate import status as status_service

    settings = load_settings()
    state = status_service.collect(settings)
    if as_json:
        import dataclasses
        import json

        click.echo(
            json.dumps(
                dataclasses.asdict(state) | {"ok": state.ok, "problems": state.problems},
                default=str,
                indent=2,
            )
        )
    else:
        for line in status_service.render(state):
            click.echo(line)
    if not state.ok:
        sys.exit(1)


@main.group()
def db() -> None:
    """Database administration."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Create the database or migrate it to this version."""
    from listgate.db import make_engine
    from listgate.schema import upgrade

    settings = load_settings()
    engine = make_engine(settings)
    try:
        upgrade(engine)
    except Exception as exc:  # noqa: BLE001
        raise click.ClickException(f"migration failed: {brief(exc)}") from None
    click.echo("database is up to date")


@main.group(name="lists", cls=LazyGroup, lazy=LAZY_LIST_COMMANDS)
def lists_group() -> None:
    """Create, show, edit and delete lists; show a list's members."""


@lists_group.command("create")
@click.argument("name")
@click.option("--title", default="", help="A human title.")
@click.option("--description", default="", help="What the list is for.")
@click.option(
    "--policy",
    type=click.Choice([p.value for p in ListPolicy]),
    default=ListPolicy.OPEN.value,
    show_default=True,
)
@click.option("--private", is_flag=True, help="Archive visible to members only.")
@click.option("--moderators", default="", help="Comma-separated moderator addresses.")
@click.option(
    "--owners",
    default="",
    help="Comma-separated owner addresses (they change the list's settings).",
)
def lists_create(
    name: str,
    title: str,
    description: str,
    policy: str,
    private: bool,
    moderators: str,
    owners: str,
) -> None:
    """Create a list NAME (its address is NAME@LISTGATE_DOMAIN)."""
    from listgate import lists as lists_service

    settings = load_settings()
    ensure_schema(settings)
    with _session(settings) as session:
        mlist = lists_service.create(
            session, name, title, description, policy, private, moderators, owners
        )
        click.echo(
            f"created {mlist.address(settings.domain)} ({policy}{', private' if private else ''})"
        )


@lists_group.command("show")
def lists_show() -> None:
    """Show every list with its counts."""
    settings = load_settings()
    ensure_schema(settings)
    from sqlalchemy import select

    from listgate.models import MailingList

    with _session(settings) as session:
        rows = session.scalars(select(MailingList).order_by(MailingList.name)).all()
        if not rows:
            click.echo("no lists yet: create one with `listgate lists create NAME`")
        for m in rows:
            click.echo(
                f"{m.address(settings.domain):40} {m.policy:10} "
                f"{plurals.count(m.thread_count, 'thread'):>13} "
                f"{plurals.count(m.message_count, 'message'):>16}"
                f"{'  private' if m.private else ''}  {m.title}"
            )


@main.command()
@click.argument("address")
@click.option("--list", "list_name", required=True, help="The list's name.")
@click.option(
    "--thread", "thread_id", type=ID, default=0, help="Follow only this thread id (of that list)."
)
@click.option("--digest", is_flag=True, help="A daily digest instead of every post.")
@click.option(
    "--invite", is_flag=True, help="Mail an invitation to confirm instead (approved in advance)."
)
def subscribe(address: str, list_name: str, thread_id: int, digest: bool, invite: bool) -> None:
    """Subscribe ADDRESS at once (confirmed and approved by an administrator), or invite it."""
    from listgate import confirmations, subscriptions
    from listgate import lists as lists_service

    settings = load_settings()
    ensure_schema(settings)
    kind = (
        SubscriptionKind.THREAD
        if thread_id
        else (SubscriptionKind.DIGEST if digest else SubscriptionKind.LIST)
    )
    with _session(settings) as session:
        mlist = lists_service.require(session, list_name)
        if invite:
            outcome = confirmations.request(
                session,
                mlist,
                address,
                secret=settings.secret_key,
                base_url=settings.base_url,
                domain=settings.domain,
                kind=kind,
                thread_id=thread_id,
                channel=subscriptions.ADMIN,
                invited_by="admin",
            )
            click.echo(outcome.message)
            return
        was = lists_service.status_of(session, mlist, address, kind, thread_id)
        address = lists_service.subscribe(session, mlist, address, kind, thread_id).address
    what = f"{list_name} ({kind}{' ' + str(thread_id) if thread_id else ''})"
    if was == SubscriptionState.ACTIVE:
        click.echo(f"{address} is already subscribed to {what}: nothing changed")
    else:
        click.echo(f"subscribed {address} to {what}")


@main.command()
@click.argument("address")
@click.option("--list", "list_name", required=True, help="The list's name.")
@click.option(
    "--thread",
    "thread_id",
    type=ID,
    default=0,
    help="Only leave this thread (a list member mutes it).",
)
@click.option("--notify", is_flag=True, help="Mail the address a goodbye (leaving the list only).")
def unsubscribe(address: str, list_name: str, thread_id: int, notify: bool) -> None:
    """End ADDRESS's subscriptions to a list (or to one thread); their history is kept."""
    from listgate import lists as lists_service
    from listgate import subscriptions

    settings = load_settings()
    ensure_schema(settings)
    with _session(settings) as session:
        action = subscriptions.LEAVE_THREAD if thread_id else subscriptions.LEAVE
        outcome = subscriptions.change(
            session,
            lists_service.require(session, list_name),
            address,
            action,
            thread_id=thread_id,
            channel=subscriptions.ADMIN,
            notify=notify,
        )
    click.echo(outcome.message + (" A goodbye mail is on its way." if outcome.outbox else ""))


@main.command("import")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--list", "list_name", required=True, help="The list to import into.")
@click.option(
    "--batch",
    type=Count(1, 10_000),
    default=500,
    show_default=True,
    help="Messages per transaction.",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def import_(path: Path, list_name: str, batch: int, quiet: bool) -> None:
    """Import an mbox (plain, .gz, .xz) or a Maildir at PATH into a list; reruns skip what is in."""
    from listgate import importer
    from listgate import lists as lists_service

    settings = load_settings()
    setup_logging(settings)
    ensure_schema(settings)
    try:
        summary = importer.run_import(settings, path, list_name, batch=batch, progress=not quiet)
    except (importer.SourceError, lists_service.ListError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    for line in summary.lines():
        click.echo(line)


class _session:
    """A write transaction that turns ListError (TooLong...) into a clean CLI message.

    The mail its actions queue (welcome, goodbye, invitation, a released post...) is handed to
    the broker as soon as it commits, as the web does; with the broker down, the worker's
    outbox sweeper sends it later.
    """

    def __init__(self, settings: Settings) -> None:
        from listgate.db import make_engine, session_factory, transaction, writer

        self.settings = settings
        self.engine = make_engine(settings)
        self.cm = transaction(session_factory(writer(self.engine)))
        self.outbox: list[OutboxEntry] = []

    def __enter__(self) -> Session:
        from listgate import dispatch

        session = self.cm.__enter__()
        self.outbox = dispatch.collect(session)
        return session

    def __exit__(self, *exc: Any) -> Literal[False]:
        from listgate import lists as lists_service
        from listgate.limits import TooLong
        from listgate.subscriptions import SubscriptionError

        try:
            self.cm.__exit__(*exc)
        finally:
            self.engine.dispose()
        if exc[0] is not None and issubclass(
            exc[0], (lists_service.ListError, LookupError, SubscriptionError, TooLong)
        ):
            raise click.ClickException(str(exc[1]))
        if exc[0] is None and self.outbox:
            send(self.settings, self.outbox)
        return False


def send(settings: Settings, entries: list[OutboxEntry]) -> None:
    """Hand committed outbox entries to the broker; one line if it cannot take them now."""
    from listgate.sender import BrokerSender  # deferred: importing Celery is slow

    sender = BrokerSender(settings, "listgate-cli")
    # The note below says it; a log set up for the command (if any) still gets the details.
    quiet = logging.NullHandler()
    logging.getLogger("listgate").addHandler(quiet)
    try:
        sent = sender(entries)
    finally:
        logging.getLogger("listgate").removeHandler(quiet)
    if sent < len(entries):
        note = f"note: the broker is not reachable ({brief(sender.error or Exception())}); {LATER}"
        # after what the command says it did
        click.get_current_context().call_on_close(lambda: click.echo(note, err=True))


LATER = "the mail goes out when it is back"


@main.group(name="requests")
def requests_group() -> None:
    """Subscription requests to private and members-only lists, which a moderator must approve."""


@requests_group.command("show")
@click.option("--list", "list_name", default="", help="Only this list.")
def requests_show(list_name: str) -> None:
    """Confirmed requests waiting for approval."""
    from sqlalchemy import select

    from listgate import approvals
    from listgate import lists as lists_service
    from listgate.models import MailingList

    settings = load_settings()
    ensure_schema(settings)
    with _session(settings) as session:
        named = {m.id: m.name for m in session.scalars(select(MailingList))}
        ids = [lists_service.require(session, list_name).id] if list_name else list(named)
        rows = approvals.waiting(session, ids)
        for sub in rows:
            thread = f" thread {sub.thread_key}" if sub.kind == SubscriptionKind.THREAD else ""
            click.echo(
                f"{named[sub.list_id]:20} {sub.address:40} {sub.kind}{thread}  "
                f"since {sub.created_at:%Y-%m-%d %H:%M} UTC"
            )
        click.echo(f"{plurals.count(len(rows), 'request')} waiting")


@requests_group.command("approve")
@click.argument("address")
@click.option("--list", "list_name", required=True, help="The list's name.")
@click.option(
    "--by", default="admin", show_default=True, help="Who approves (kept with the subscription)."
)
def requests_approve(address: str, list_name: str, by: str) -> None:
    """Let ADDRESS in (every request it has on the list); it gets a welcome mail."""
    from listgate import approvals

    _decide(address, list_name, lambda session, sub: approvals.approve(session, sub, by))


@requests_group.command("refuse")
@click.argument("address")
@click.option("--list", "list_name", required=True, help="The list's name.")
@click.option(
    "--reason", default="", help="Mailed to the address (if it ever confirmed its request)."
)
@click.option(
    "--by", default="admin", show_default=True, help="Who refuses (kept with the subscription)."
)
def requests_refuse(address: str, list_name: str, reason: str, by: str) -> None:
    """Turn down ADDRESS's requests on the list; it is told (with the reason given)."""
    from listgate import approvals

    _decide(address, list_name, lambda session, sub: approvals.refuse(session, sub, by, reason))


def _decide(
    address: str, list_name: str, decide: Callable[[Session, Subscription], subscriptions.Outcome]
) -> None:
    from listgate import approvals
    from listgate import lists as lists_service

    settings = load_settings()
    ensure_schema(settings)
    with _session(settings) as session:
        subs = approvals.requests_of(session, lists_service.require(session, list_name), address)
        if not subs:
            raise click.ClickException(f"{address} has no request waiting on {list_name}")
        messages = [decide(session, sub).message for sub in approvals.still_waiting(subs)]
    for message in messages:
        click.echo(message)


@main.group(name="not-posted")
def not_posted_group() -> None:
    """Mail accepted with a 250 and not posted (automatic replies, loops): look, release it."""


@not_posted_group.command("show")
@click.option("--list", "list_name", default="", help="Only this list.")
def not_posted_show(list_name: str) -> None:
    """Every entry waiting, with its reason."""
    from listgate import lists as lists_service
    from listgate import notposted

    settings = load_settings()
    ensure_schema(settings)
    with _session(settings) as session:
        ids = [lists_service.require(session, list_name).id] if list_name else None
        rows = notposted.waiting(session, ids, limit=1000)
        for n in rows:
            click.echo(
                f"{n.id:6}  {n.received_at:%Y-%m-%d %H:%M}  "
                f"{n.from_addr or n.envelope_from or '<>'}: "
                f"{n.subject[:60]!r} ({n.reason})"
            )
        click.echo(f"{plurals.count(len(rows), 'mail')} not posted")


@not_posted_group.command("release")
@click.argument("entry_id", type=ID)
@click.option(
    "--by", default="admin", show_default=True, help="Who releases it (kept with the entry)."
)
def not_posted_release(entry_id: int, by: str) -> None:
    """Post the mail ENTRY_ID (see `listgate not-posted show`); subscribers get it in minutes."""
    from listgate import ingest

    settings = load_settings()
    ensure_schema(settings)
    with _session(settings) as session:
        result = ingest.release(
            session,
            entry_id,
            by,
            domain=settings.domain,
            fallback_days=settings.subject_fallback_days,
        )
    click.echo(
        f"entry {entry_id} released: {result.status}"
        + (f" (message {result.message_pk})" if result.message_pk else "")
    )


if __name__ == "__main__":
    main()
