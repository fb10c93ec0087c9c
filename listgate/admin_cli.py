"""The owner's commands: `lists edit|delete|members`, `owners|moderators add|remove|show`, `messages
remove|place-variants|reparse`.

Each is a thin shell over listgate.administration, listgate.removal or listgate.reparse (the web
settings page uses the same functions, imported when a command runs); listgate/cli.py names
them.
"""

from __future__ import annotations

import os
import pwd
from collections import Counter
from typing import TYPE_CHECKING

import click

from listgate import plurals
from listgate.numerals import Count
from listgate.states import ListPolicy, ReplyTo, SubscriptionKind, SubscriptionState

if TYPE_CHECKING:
    from listgate.cli import _session as cli_session
    from listgate.models import Subscription


def actor() -> str:
    """Who made a change from the command line, for the audit log."""
    try:
        return f"cli:{pwd.getpwuid(os.getuid()).pw_name}"
    except KeyError:
        return f"cli:uid {os.getuid()}"


def _session() -> cli_session:
    """A write transaction on a migrated database; ListError becomes a clean message."""
    from listgate.cli import _session as session
    from listgate.cli import ensure_schema, load_settings

    settings = load_settings()
    ensure_schema(settings)
    return session(settings)


@click.command("edit")
@click.argument("name")
@click.option("--title", default=None, help="A human title.")
@click.option("--description", default=None, help="What the list is for.")
@click.option(
    "--policy",
    type=click.Choice([p.value for p in ListPolicy]),
    default=None,
    help=(
        "open: anyone posts; members: subscribers post, others are held; "
        "moderated: every post is held."
    ),
)
@click.option(
    "--private/--public", default=None, help="Archive visible to members only, or to everyone."
)
@click.option(
    "--reply-to",
    "reply_to",
    type=click.Choice([r.value for r in ReplyTo]),
    default=None,
    help=(
        "Reply-To on copies: none (default), list, or author "
        "(never where the author's DKIM signature covers it)."
    ),
)
def lists_edit(
    name: str,
    title: str | None,
    description: str | None,
    policy: str | None,
    private: bool | None,
    reply_to: str | None,
) -> None:
    """Change a list's title, description, policy, visibility or Reply-To."""
    from listgate import administration
    from listgate import lists as lists_service

    with _session() as session:
        mlist = lists_service.require(session, name)
        done = administration.edit(
            session,
            mlist,
            actor(),
            title=title,
            description=description,
            policy=policy,
            private=private,
            reply_to=reply_to,
        )
    for line in done:
        click.echo(f"{name}: {line}")
    if not done:
        click.echo(f"{name}: nothing changed")


@click.command("delete")
@click.argument("name")
@click.option(
    "--purge", is_flag=True, help="Also delete its archive: every message, raw mail and attachment."
)
def lists_delete(name: str, purge: bool) -> None:
    """Delete a list; refused while it has posts, unless --purge."""
    from listgate import administration
    from listgate import lists as lists_service

    with _session() as session:
        what = administration.delete_list(
            session, lists_service.require(session, name), actor(), purge
        )
    click.echo(f"deleted {what.describe()}")


# `lists members --status`: the members (bounces stop their mail, not their membership:
# listgate.store.MEMBER_STATES), each state, or every row
_STATUS_CHOICES = ("members", *(s.value for s in SubscriptionState), "all")


@click.command("members")
@click.argument("name")
@click.option(
    "--status",
    "status",
    type=click.Choice(_STATUS_CHOICES),
    default="members",
    show_default=True,
    help="Which subscriptions: the members (active or suspended by bounces), one state, or all.",
)
@click.option("--threads", is_flag=True, help="Also the threads followed and muted.")
def lists_members(name: str, status: str, threads: bool) -> None:
    """The subscribers of list NAME: what each gets, their state, since when."""
    from listgate import lists as lists_service
    from listgate.store import MEMBER_STATES

    states = (
        MEMBER_STATES
        if status == "members"
        else tuple(SubscriptionState)
        if status == "all"
        else (SubscriptionState(status),)
    )
    kinds = tuple(SubscriptionKind) if threads else (SubscriptionKind.LIST, SubscriptionKind.DIGEST)
    with _session() as session:
        rows = lists_service.subscriptions_of(
            session, lists_service.require(session, name), states, kinds
        )
        lines = [_member_line(sub) for sub in rows]
        counts = Counter(sub.status for sub in rows)
    if not lines:
        click.echo(
            f"{name} has no {'members' if status == 'members' else status + ' subscriptions'}"
        )
        return
    click.echo("\n".join(lines))
    noun = "member" if status == "members" else "subscription"
    click.echo(
        f"{plurals.count(len(lines), noun)}: "
        + ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    )


def _member_line(sub: Subscription) -> str:
    """One subscription: address, what it brings, its state (why, for a suspended or ended
    one), since when (asked when, for a request; ended when)."""
    what = {
        SubscriptionKind.LIST: "every post",
        SubscriptionKind.DIGEST: f"{sub.digest_frequency} digest",
        SubscriptionKind.THREAD: f"thread {sub.thread_key}",
        SubscriptionKind.MUTE: f"muted thread {sub.thread_key}",
    }[sub.kind]
    state = str(sub.status)
    if sub.status == SubscriptionState.SUSPENDED:
        state += f" (bounces, score {sub.bounce_score:g})"
    elif sub.status == SubscriptionState.ENDED and sub.end_reason:
        state += f" ({sub.end_reason})"
    if sub.status == SubscriptionState.ENDED:
        when = f"ended {(sub.ended_at or sub.created_at):%Y-%m-%d}"
    elif sub.status in (SubscriptionState.PENDING, SubscriptionState.AWAITING):
        when = f"asked {sub.created_at:%Y-%m-%d}"
    else:
        when = f"since {(sub.confirmed_at or sub.created_at):%Y-%m-%d}"
    return f"{sub.address:40} {what:16} {state:32} {when}"


def _role_group(role: str) -> click.Group:
    """`listgate owners|moderators add|remove|show`."""
    plural, article = f"{role}s", "an" if role[0] in "aeiou" else "a"

    @click.group(name=plural, help=f"Add, remove and show a list's {plural}.")
    def group() -> None:
        pass

    for action in ("add", "remove"):  # administration.ROLE_ACTIONS
        group.add_command(_role_command(role, action, article))

    @group.command("show", help=f"The {plural} of list NAME.")
    @click.argument("name")
    def show(name: str) -> None:
        from listgate import administration
        from listgate import lists as lists_service

        with _session() as session:
            people = administration.members_of(lists_service.require(session, name), role)
        click.echo("\n".join(people) if people else f"{name} has no {plural}")

    return group


def _role_command(role: str, action: str, article: str) -> click.Command:
    """`listgate owners|moderators add|remove NAME ADDRESS`."""
    helps = {
        "add": f"Make ADDRESS {article} {role} of list NAME.",
        "remove": f"ADDRESS is no longer {article} {role} of list NAME.",
    }

    @click.command(action, help=helps[action])
    @click.argument("name")
    @click.argument("address")
    def command(name: str, address: str) -> None:
        from listgate import administration
        from listgate import lists as lists_service

        with _session() as session:
            changed = administration.change_role(
                session, lists_service.require(session, name), action, role, address, actor()
            )
        if action == "remove" and not changed:
            raise click.ClickException(f"{address} is not {article} {role} of {name}")
        state = ("now" if changed else "already") if action == "add" else "no longer"
        click.echo(f"{address.lower()} is {state} {article} {role} of {name}")

    return command


owners = _role_group("owner")
moderators = _role_group("moderator")


@click.group()
def messages() -> None:
    """Act on archived messages."""


@messages.command("remove")
@click.argument("message_id")
@click.option("--reason", required=True, help="Shown in the thread where the post was.")
@click.option(
    "--purge",
    is_flag=True,
    help="Also delete its raw mail, attachments and text (a legal takedown).",
)
@click.option(
    "--list",
    "list_name",
    default=None,
    help="Only the copy on this list (default: every list it is on).",
)
def messages_remove(message_id: str, reason: str, purge: bool, list_name: str | None) -> None:
    """Take the message MESSAGE_ID down, leaving a tombstone in its thread."""
    from listgate import removal

    with _session() as session:
        outcome = removal.remove(
            session, removal.find(session, message_id, list_name), reason, actor(), purge
        )
    for line in outcome.removed:
        click.echo(f"removed {line}")
    for line in outcome.purged + outcome.kept:
        click.echo(line)


@messages.command("place-variants")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def messages_place_variants(quiet: bool) -> None:
    """Place each message kept with variants by its earliest-dated copy (variants before 0010)."""
    from sqlalchemy import select

    from listgate import threads
    from listgate.cli import ensure_schema, load_settings
    from listgate.db import make_engine, session_factory, transaction, writer
    from listgate.models import MailingList, Message, MessageVariant
    from listgate.states import PostState
    from listgate.store import lock_list

    settings = load_settings()
    ensure_schema(settings)
    engine = make_engine(settings)
    try:
        db = session_factory(writer(engine))
        with (
            db() as session
        ):  # a takedown stays where it was, as a copy arriving now would leave it
            pks = session.scalars(
                select(MessageVariant.message_pk)
                .distinct()
                .join(Message)
                .where(Message.status != PostState.REMOVED)
                .order_by(MessageVariant.message_pk)
            ).all()
        moved = 0
        with click.progressbar(pks, label="messages with variants", hidden=quiet) as bar:
            for (
                pk
            ) in bar:  # one transaction each, the list locked as an arriving copy would lock it
                with transaction(db) as session:
                    lock_list(
                        session, session.get_one(MailingList, session.get_one(Message, pk).list_id)
                    )
                    moved += threads.place_copies(session, pk, settings.subject_fallback_days)[1]
    finally:
        engine.dispose()
    click.echo(
        f"{plurals.count(len(pks), 'message')} with variants, "
        f"{moved} placed anew by an earlier copy"
    )


@messages.command("reparse")
@click.option(
    "--list",
    "list_name",
    default=None,
    metavar="NAME",
    help="Only this list's posts (default: every list's).",
)
@click.option(
    "--dry-run", is_flag=True, help="Say what would change (counts, examples); write nothing."
)
@click.option(
    "--batch",
    type=Count(1, 10_000),
    default=500,
    show_default=True,
    help="Messages per transaction.",
)
@click.option(
    "--examples",
    type=Count(0, 10_000),
    default=10,
    show_default=True,
    help="Message-IDs shown of the posts that change.",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def messages_reparse(
    list_name: str | None, dry_run: bool, batch: int, examples: int, quiet: bool
) -> None:
    """Derive archived posts' text, HTML, attachments and search index again from their stored
    bytes, as the mail would be archived now (after a decoder fix). Message-IDs, threads, dates,
    authors, moderation, votes, reports and web edits stay; removed posts are left alone. Safe to
    stop and run again: a second run changes nothing."""
    from listgate import lists as lists_service
    from listgate import reparse as reparse_service
    from listgate.cli import ensure_schema, load_settings, setup_logging

    settings = load_settings()
    setup_logging(settings)
    ensure_schema(settings)
    try:
        tally = reparse_service.run(
            settings,
            list_name,
            dry_run=dry_run,
            batch=batch,
            examples=examples,
            progress=not quiet,
        )
    except lists_service.ListError as exc:
        raise click.ClickException(str(exc)) from None
    for line in tally.lines():
        click.echo(line)
