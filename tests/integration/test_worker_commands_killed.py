"""A worker killed (SIGKILL) while it carries out what a person mailed: after a restart each
command, bounce, reminder and post has its effect once, and every answer comes once.

Mail goes through a real gateway process into a real worker process; the relay is the test's
sink. The worker is killed at one step of the work (tests/support/pins.py, the sink's stall):

- commit: the command's transaction has done its work and is about to commit;
- publish: it has committed and is about to hand the answer it queued to the broker;
- RCPT / DATA: the relay holds the answer before the message / after its final dot.

Then a worker starts again and the beat's jobs of the next minute run (the recovery of what
a dead worker held, the outbox sweeper). The person then has exactly one answer of each kind,
and `listgate lists members` shows what they asked for.
"""

from __future__ import annotations

import smtplib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parseaddr
from pathlib import Path

import pytest
from celery.schedules import crontab
from sqlalchemy import select, update

from listgate import dispatch, lists, moderation
from listgate.db import transaction
from listgate.models import Bounce, Message, OutboxEntry, Subscription
from listgate.states import (
    DmarcMode,
    ListPolicy,
    PostState,
    SubscriptionKind,
    SubscriptionState,
)
from tests.support import pins, processes
from tests.support.commands import run
from tests.support.config import free_port, wait_until
from tests.support.processes import Service, WorkerProcess
from tests.support.sink import Received, SmtpSink
from tests.support.worker import Site, build_site, mail
from tests.unit.worker.test_bounces import dsn
from worker.celery_app import beat_schedule

pytestmark = pytest.mark.integration

ANN, BOB, CARL, MOD = "ann@example.org", "bob@example.org", "carl@example.org", "mod@example.org"
COMMIT, PUBLISH = pins.COMMIT, pins.PUBLISH


@dataclass
class Scene:
    """A site with its gateway and worker processes; the mail the sink had before the act."""

    site: Site
    sink: SmtpSink
    tmp: Path
    worker: WorkerProcess
    gateway: Service
    before: int = 0

    def send(self, sender: str, to: str, raw: bytes) -> None:
        """Mail to the gateway, as a mail server hands it over."""
        port = int(self.site.env["LISTGATE_SMTP_LISTEN"].rsplit(":", 1)[1])
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
            assert smtp.sendmail(sender, [to], raw) == {}

    def quiet(self, *expected: tuple[str, str]) -> list[Received]:
        """Wait for `expected` (recipient, Subject) and for no work left; the mail so far."""
        try:
            wait_until(lambda: all(self.got()[e] for e in expected), timeout=90)
        except AssertionError:
            raise AssertionError(f"waited for {expected}, got {dict(self.got())}") from None
        wait_until(
            lambda: self.site.count(OutboxEntry, OutboxEntry.done_at.is_(None)) == 0,
            what="no work left waiting",
            timeout=90,
        )
        return self.sink.received[self.before :]

    def got(self) -> Counter[tuple[str, str]]:
        """(recipient, Subject) of each mail the sink had since the act began."""
        return Counter(
            (r.rcpt_tos[0], str(r.message["Subject"])) for r in self.sink.received[self.before :]
        )

    def member(self, address: str, list_name: str = "dev") -> str:
        """Address's line in `listgate lists members LIST --status all` ('' when absent)."""
        shown = run(self.site.env, "lists", "members", list_name, "--status", "all")
        assert shown.exit_code == 0, shown.output
        return "\n".join(line for line in shown.output.splitlines() if address in line)


@pytest.fixture
def scene(tmp_path: Path, sink: SmtpSink, request: pytest.FixtureRequest) -> Iterator[Scene]:
    """The gateway and a worker that stops at armed pins, on the stack the test asks for."""
    stack: dict[str, str] = {}
    if getattr(request, "param", "") == "postgres+redis":
        stack = {
            "LISTGATE_BROKER_URL": request.getfixturevalue("redis_db_url"),
            "LISTGATE_DATABASE_URL": request.getfixturevalue("postgres_db"),
        }
    site = build_site(
        tmp_path,
        sink,
        LISTGATE_SMTP_LISTEN=f"127.0.0.1:{free_port()}",
        LISTGATE_BOUNCE_SCORE_LIMIT="1",
        **stack,
    )
    with transaction(site.db) as session:
        lists.create(
            session, "mod", policy=ListPolicy.MODERATED, moderators=MOD
        ).dmarc_mode = DmarcMode.NEVER
    worker_env = {**site.env, pins.ENV: str(tmp_path / "pins")}
    gateway = processes.gateway(site.env, tmp_path / "gateway.log").start()
    worker = WorkerProcess(worker_env, tmp_path / "worker.log", extra=("-I", "tests.support.pins"))
    try:
        worker.start()
        yield Scene(site, sink, tmp_path, worker, gateway)
    finally:
        worker.stop()
        gateway.stop()


# -- the journeys: what was there before, what the person does, the task carrying it out,
#    whose answer the relay holds, what each one then gets, and what the site then shows --


def ask_to_subscribe(s: Scene) -> None:
    s.send(ANN, "dev+subscribe@lists.test", mail(ANN, "subscribe", "sub@example.org"))


def confirm_by_reply(s: Scene) -> None:
    """Ann answers the confirmation she was sent (to its Reply-To, dev+confirm-CODE@)."""
    [asked] = [r for r in s.sink.received if r.rcpt_tos == [ANN]]
    to = parseaddr(str(asked.message["Reply-To"]))[1]
    assert to.startswith("dev+confirm-"), to
    s.send(ANN, to, mail(ANN, "Re: confirm", "conf@example.org", to=to))


def subscribed_by_mail(s: Scene) -> None:
    ask_to_subscribe(s)
    s.quiet((ANN, "Confirm your subscription to dev"))


def members(s: Scene) -> None:
    s.site.subscribe("dev", ANN, BOB)


def a_thread(s: Scene) -> None:
    """Ann and Bob are members; Carl starts a thread that reaches them."""
    members(s)
    s.send(CARL, "dev@lists.test", mail(CARL, "Release plan", "plan@example.org"))
    s.quiet((ANN, "Release plan"), (BOB, "Release plan"))


def reply_word(word: str, sender: str) -> Callable[[Scene], None]:
    def act(s: Scene) -> None:
        raw = mail(sender, "Re: Release plan", f"{word}@example.org", f"{word}\n")
        s.send(sender, "dev@lists.test", raw.replace(b"\r\nSubject", _reply_to_plan + b"Subject"))

    return act


_reply_to_plan = b"\r\nIn-Reply-To: <plan@example.org>\r\nReferences: <plan@example.org>"


def unsubscribe(s: Scene) -> None:
    s.send(ANN, "dev+unsubscribe@lists.test", mail(ANN, "unsubscribe", "unsub@example.org"))


def held_post(s: Scene) -> None:
    """Bob is a member of the moderated list mod; Ann's post to it is held."""
    s.site.subscribe("mod", BOB)
    s.send(ANN, "mod@lists.test", mail(ANN, "Held plan", "held@example.org", to="mod@lists.test"))
    s.quiet((MOD, "mod: a post awaits moderation: Held plan"))


def held_post_a_day_old(s: Scene) -> None:
    held_post(s)
    with transaction(s.site.db) as session:
        session.execute(
            update(Message)
            .where(Message.status == PostState.HELD)
            .values(received_at=datetime.now(UTC) - timedelta(hours=13))
        )


def moderator_mails(action: str, body: str) -> Callable[[Scene], None]:
    def act(s: Scene) -> None:
        with s.site.db() as session:
            mlist = lists.require(session, "mod")
            post = session.scalars(select(Message).where(Message.list_id == mlist.id)).one()
            to = moderation.address(
                s.site.settings.secret_key, action, post, mlist, s.site.settings.domain
            )
        s.send(MOD, to, mail(MOD, action, f"{action}@example.org", body, to=to))

    return act


def reminders_run(s: Scene) -> None:
    """The beat's daily reminder job."""
    s.site.app.send_task(dispatch.SEND_REMINDERS)


def mailbox_gone(s: Scene) -> None:
    """Ann's mail server reports her copy of Carl's post undeliverable (a DSN to its VERP)."""
    [copy] = [r for r in s.sink.received if r.rcpt_tos == [ANN]]
    s.send("", copy.mail_from, dsn(ANN, "5.1.1", f"550 5.1.1 <{ANN}>: User unknown"))


def carl_posts(s: Scene) -> None:
    s.send(CARL, "dev@lists.test", mail(CARL, "Release plan", "plan@example.org"))


def _thread_subscriptions(s: Scene, address: str) -> list[str]:
    """The kinds of address's live subscriptions to one thread (follow, mute)."""
    with s.site.db() as session:
        return list(
            session.scalars(
                select(Subscription.kind).where(
                    Subscription.address == address,
                    Subscription.thread_key != 0,
                    Subscription.status == SubscriptionState.ACTIVE,
                )
            )
        )


def _status(s: Scene, msgid: str) -> str | None:
    with s.site.db() as session:
        return session.scalar(select(Message.status).where(Message.message_id == msgid))


@dataclass(frozen=True)
class Journey:
    before: Callable[[Scene], None]
    act: Callable[[Scene], None]
    task: str
    answered: str  # whose answer the relay holds (RCPT, DATA)
    expected: dict[tuple[str, str], int]
    shown: Callable[[Scene], bool]


def _nothing(s: Scene) -> None:
    pass


JOURNEYS = {
    "subscribe": Journey(
        _nothing,
        ask_to_subscribe,
        dispatch.HANDLE_COMMAND,
        ANN,
        {(ANN, "Confirm your subscription to dev"): 1},
        lambda s: "pending" in s.member(ANN),
    ),
    "confirm": Journey(
        subscribed_by_mail,
        confirm_by_reply,
        dispatch.HANDLE_COMMAND,
        ANN,
        {(ANN, "Welcome to dev"): 1},
        lambda s: "active" in s.member(ANN),
    ),
    "unsubscribe": Journey(
        members,
        unsubscribe,
        dispatch.HANDLE_COMMAND,
        ANN,
        {(ANN, "You have left dev"): 1},
        lambda s: "ended" in s.member(ANN),
    ),
    "follow": Journey(
        a_thread,
        reply_word("follow", CARL),
        dispatch.HANDLE_COMMAND,
        CARL,
        {(CARL, "Done: your mail from dev"): 1},
        lambda s: _thread_subscriptions(s, CARL) == [SubscriptionKind.THREAD],
    ),
    "mute": Journey(
        a_thread,
        reply_word("mute", ANN),
        dispatch.HANDLE_COMMAND,
        ANN,
        {(ANN, "Done: your mail from dev"): 1},
        lambda s: _thread_subscriptions(s, ANN) == [SubscriptionKind.MUTE],
    ),
    "approve": Journey(
        held_post,
        moderator_mails(moderation.APPROVE, "approve\n"),
        dispatch.HANDLE_COMMAND,
        BOB,
        {(BOB, "Held plan"): 1},
        lambda s: _status(s, "held@example.org") == PostState.VISIBLE,
    ),
    "reject": Journey(
        held_post,
        moderator_mails(moderation.REJECT, "reject: off topic\n"),
        dispatch.HANDLE_COMMAND,
        ANN,
        {(ANN, "Your mail to mod was not accepted"): 1},
        lambda s: _status(s, "held@example.org") == PostState.REJECTED,
    ),
    "bounce": Journey(
        a_thread,
        mailbox_gone,
        dispatch.HANDLE_BOUNCE,
        ANN,
        {(ANN, "Your subscription to dev is suspended"): 1},
        lambda s: "suspended" in s.member(ANN) and s.site.count(Bounce) == 1,
    ),
    "reminder": Journey(
        held_post_a_day_old,
        reminders_run,
        dispatch.SEND_REMINDERS,
        MOD,
        {(MOD, "mod: 1 post still awaits moderation"): 1},
        lambda s: True,
    ),
    "fan-out": Journey(
        members,
        carl_posts,
        dispatch.FANOUT,
        ANN,
        {(ANN, "Release plan"): 1, (BOB, "Release plan"): 1},
        lambda s: _status(s, "plan@example.org") == PostState.VISIBLE,
    ),
}
# Every journey is killed in its command's transaction and before its answer is published. A
# notice held by the relay is a notice like any other (test_worker_notice_killed holds one of
# each other kind): held here for the kinds only these journeys send. The fan-out of a post
# this small queues nothing after its commit (it sends its one chunk itself), and its copies
# held at RCPT/DATA are test_worker_delivery's.
CASES = [
    *((journey, at) for journey in JOURNEYS for at in (COMMIT, PUBLISH) if journey != "fan-out"),
    ("fan-out", COMMIT),
    *((journey, at) for journey in ("confirm", "mute", "reminder") for at in ("RCPT", "DATA")),
]


@pytest.mark.parametrize(("journey", "at"), CASES)
def test_a_worker_killed_mid_command_acts_once_and_answers_once(
    scene: Scene, journey: str, at: str
) -> None:
    kill_mid_command(scene, JOURNEYS[journey], at)


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.parametrize(
    ("journey", "at"), [("confirm", COMMIT), ("bounce", PUBLISH), ("unsubscribe", "DATA")]
)
@pytest.mark.parametrize("scene", ["postgres+redis"], indirect=True)
def test_on_postgres_and_redis_a_killed_command_acts_once(
    scene: Scene, journey: str, at: str
) -> None:
    kill_mid_command(scene, JOURNEYS[journey], at)


def runs_again_the_same_day(s: Scene, task: str) -> bool:
    """Whether the beat's schedule runs a daily task again in the hours after its first run."""
    [when] = [e["schedule"] for e in beat_schedule(s.site.settings).values() if e["task"] == task]
    assert isinstance(when, crontab)
    return len(vars(when)["hour"]) > 1  # the hours it runs at (celery's stubs do not say)


def kill_mid_command(s: Scene, journey: Journey, at: str) -> None:
    """The journey's act with the worker killed at `at`, then a worker again and the beat."""
    journey.before(s)
    s.before = len(s.sink.received)
    if at in (COMMIT, PUBLISH):
        reached = pins.arm(s.tmp / "pins", at, journey.task)
        journey.act(s)
        wait_until(reached.exists, what=f"the worker held at {at} of {journey.task}")
        s.worker.kill()
    else:
        held = s.sink.stall(journey.answered, at)
        journey.act(s)
        wait_until(held.reached.is_set, what=f"{journey.answered}'s answer held at {at}")
        s.worker.kill()
        held.released.set()
    s.worker.start()
    # The beat's jobs of the next minute after a restart (a claim is stale at once here), and
    # its daily job that was killed, if the beat runs it again later that day.
    s.site.app.send_task(dispatch.RETRY_DEFERRED, kwargs={"stale_after": 0})
    s.site.app.send_task(dispatch.SWEEP_OUTBOX, kwargs={"older_than": 0})
    if journey.task == dispatch.SEND_REMINDERS and runs_again_the_same_day(s, journey.task):
        s.site.app.send_task(journey.task)
    s.quiet(*journey.expected)
    assert s.got() == journey.expected, f"what each one got after the kill at {at}"
    assert journey.shown(s), f"the state the site shows after the kill at {at}: {s.member('')}"
