"""One person's whole life with a list, over time, through real processes: issue 11's journeys.

Pat subscribes (mail command, web form, signed-in web, administrator), confirms (reply, link),
receives posts, follows a thread, mutes it (by mail and on the web), switches to the digest,
follows and leaves a thread by its link while on the digest, gets the digest, switches back,
then leaves by every channel in turn (one-click POST, the unsubscribe page's button, mail
command, web dashboard, the `listgate unsubscribe` command, a thread's "unsubscribe" reply),
coming back each time. Sam, a plain list member, and the authors Ann and Bob live beside her.
A post goes through the gateway between steps, and after each step the SMTP sink must hold
exactly the mails predicted for each recipient: no missing copy, no extra one, no repeat.

Twice: `listgate up` on the embedded default, and separate gateway, worker, beat and web
processes on PostgreSQL and Redis.
"""

from __future__ import annotations

import json
import re
import smtplib
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage, Message
from pathlib import Path

import pytest

from listgate import dispatch
from listgate.config import Settings
from tests.integration.web_client import WebClient
from tests.support.config import DOMAIN, search
from tests.support.quiet import Quiet
from tests.support.shared_stack import AUTO_REPLY_WINDOW, SinkView, journey_env
from tests.support.sink import Received, SmtpSink, payload
from tests.support.stack import Stack, make_stack, run_separately
from worker.celery_app import make_celery

pytestmark = pytest.mark.integration
SHARED_STACK: dict[str, str] = {}  # a shared `listgate up` (up_stack, sink)

PAT, SAM, ANN, BOB = "pat@example.org", "sam@example.org", "ann@example.net", "bob@example.net"
WAIT = 60.0  # at most this long for the wanted mails to arrive and then for the site to be quiet
GRACE = 0.2  # quiet for this long, twice read, with nothing new at the sink: the step is over


class Journey:
    """A running stack, its sink, and what has been checked so far."""

    def __init__(self, stack: Stack, sink: SmtpSink) -> None:
        self.stack, self.sink = stack, sink
        self.list = stack.list_name()  # "dev" on a stack of its own
        self.seen = 0
        self.serial = 0
        self.posts: list[str] = []
        self.subjects: dict[str, str] = {}
        self.web = WebClient(stack.web_port)
        self.replied: dict[str, float] = {}  # address: when an automatic reply to it arrived

    # -- acting ------------------------------------------------------------------------------

    def mail(
        self,
        sender: str,
        to: str,
        subject: str,
        body: str = "",
        in_reply_to: str = "",
        msgid: str = "",
        date: str = "Mon, 30 Nov 2026 10:00:00 +0000",
    ) -> str:
        """Send a mail through the gateway (SMTP); its Message-ID (msgid, or a new one)."""
        self._pace(sender)
        self.serial += 1
        msgid = msgid or f"j{self.serial}-{int(time.time())}@example.net"
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"], msg["Message-ID"] = (
            sender,
            to,
            subject,
            f"<{msgid}>",
        )
        msg["Date"] = date
        if in_reply_to:
            msg["In-Reply-To"] = msg["References"] = f"<{in_reply_to}>"
        msg.set_content(body or "Hello.\n")
        with smtplib.SMTP("127.0.0.1", self.stack.smtp_port, timeout=30) as smtp:
            assert smtp.send_message(msg, from_addr=sender, to_addrs=[to]) == {}
        return msgid

    def _pace(self, sender: str) -> None:
        """Wait until the sender's last automatic reply is AUTO_REPLY_WINDOW old.

        RFC 3834: one automatic reply per address and window, so a mail answered by one must
        come that long after the last, or its answer is (rightly) withheld. The reply was
        claimed before it reached the sink, so counting from its arrival is enough.
        """
        last = self.replied.get(sender.lower())
        if last is not None:
            time.sleep(max(0.0, last + AUTO_REPLY_WINDOW - time.monotonic()))

    @property
    def address(self) -> str:
        """The posting address of the journey's list."""
        return f"{self.list}@{DOMAIN}"

    def new_thread(self) -> str:
        subject = f"Topic {self.serial + 1}"
        msgid = self.mail(ANN, f"{self.list}@{DOMAIN}", subject, "A new topic.\n")
        self.posts.append(msgid)
        self.subjects[msgid] = subject
        return msgid

    def thread_path(self, msgid: str) -> str:
        """The web page of the thread a post started (found by its subject through the JSON API)."""
        threads = json.loads(self.web.get(f"/api/lists/{self.list}/threads?limit=100").body)[
            "threads"
        ]
        return next(f"/threads/{t['id']}" for t in threads if t["subject"] == self.subjects[msgid])

    def reply(self, parent: str) -> str:
        msgid = self.mail(
            BOB, f"{self.list}@{DOMAIN}", "Re: a topic", "A reply.\n", in_reply_to=parent
        )
        self.posts.append(msgid)
        return msgid

    def command(self, word: str) -> None:
        self.mail(PAT, f"{self.list}+{word}@{DOMAIN}", word)

    def thread_command(self, parent: str, word: str) -> None:
        self.mail(
            PAT,
            f"{self.list}@{DOMAIN}",
            "Re: a topic",
            f"{word}\n\n> the quoted post\n",
            in_reply_to=parent,
        )

    def cli(self, *args: str) -> str:
        return self.stack.listgate(*args)

    def send_digest(self) -> None:
        """What the beat does after midnight, for today, through the real worker."""
        app = make_celery(Settings.from_env(self.stack.env))
        app.send_task(dispatch.SEND_DIGESTS, kwargs={"day": datetime.now(UTC).date().isoformat()})

    # -- checking ----------------------------------------------------------------------------

    def expect(self, *wanted: tuple[str, str]) -> list[Received]:
        """Wait for the new mails at the sink to be exactly
        `wanted`: (recipient, Message-ID or words of the Subject).

        First until as many mails as wanted arrived, then until the site is quiet (nothing left
        that could send mail now: tests.support.quiet) twice, GRACE apart, with no mail arriving
        in between: an extra copy has then reached the sink, or is not coming.
        """
        deadline = time.monotonic() + WAIT
        while len(self.sink.received) - self.seen < len(wanted) and time.monotonic() < deadline:
            self.stack.check_alive()
            time.sleep(0.1)
        self._wait_quiet(deadline)
        new = self.sink.received[self.seen :]
        self.seen += len(new)
        for r in new:
            if str(r.message["Auto-Submitted"]).startswith("auto-replied"):
                self.replied.update((rcpt.lower(), time.monotonic()) for rcpt in r.rcpt_tos)
        left = list(new)
        for rcpt, label in wanted:
            match = next((r for r in left if r.rcpt_tos == [rcpt] and _matches(r, label)), None)
            assert match is not None, (
                f"missing {label!r} for {rcpt}; got {_show(new)}\n{self.stack.log_tail(15)}"
            )
            left.remove(match)
        assert not left, f"unexpected mail: {_show(left)} (expected {wanted})"
        return new

    def arrivals(self) -> list[tuple[str, str]]:
        """The new mails at the sink once the site is quiet, unchecked: sorted (recipient,
        Message-ID). Where a copy is missing this answers at once, where expect waits WAIT."""
        self._wait_quiet(time.monotonic() + WAIT)
        new = self.sink.received[self.seen :]
        self.seen += len(new)
        return sorted((r.rcpt_tos[0], str(r.message["Message-ID"]).strip("<>")) for r in new)

    def _wait_quiet(self, deadline: float) -> None:
        """Return once the site was quiet twice in a row, GRACE apart, the sink unchanged."""
        with Quiet(self.stack.env, self.sink) as quiet:
            while True:
                self.stack.check_alive()
                arrived = len(self.sink.received)
                busy = quiet.busy()
                if not busy:
                    time.sleep(GRACE)
                    busy = quiet.busy()
                    if not busy and len(self.sink.received) == arrived:
                        return
                if time.monotonic() >= deadline:
                    pytest.fail(
                        f"still busy after {WAIT:.0f}s: {'; '.join(busy) or 'mail kept arriving'};"
                        f" got {_show(self.sink.received[self.seen :])}\n{self.stack.log_tail(15)}",
                        pytrace=False,
                    )
                time.sleep(0.05)

    def copies_to(self, *addresses: str) -> list[tuple[str, str]]:
        return [(a, self.posts[-1]) for a in addresses]

    def body(self, received: list[Received], rcpt: str, label: str) -> tuple[Message, str]:
        r = next(r for r in received if r.rcpt_tos == [rcpt] and _matches(r, label))
        msg = r.message
        part = msg.get_payload(0) if msg.is_multipart() else msg
        assert isinstance(part, Message)
        return msg, payload(part).decode()

    def sign_in(self, web: WebClient) -> None:
        web.post("/signin", {"address": PAT, "next": "/"}, on_page="/signin")
        got = self.expect((PAT, "sign-in link"))
        link = search(r"(http://\S+/signin/\S+)", self.body(got, PAT, "sign-in link")[1])
        done = web.post(link, {"next": "/"}, on_page=link)
        assert "You are signed in as pat@example.org" in done.body

    def dashboard(self, action: str, kind: str) -> str:
        """Press a button of pat's "My subscriptions"
        page on her row of `kind`; the flashed answer.
        """
        page = self.web.get("/me/subscriptions")
        row = re.search(
            rf'<tr>\s*<td><a [^>]*>{self.list}</a></td>\s*<td>{kind}.*?action="([^"]+)"',
            page.body,
            re.DOTALL,
        )
        assert row, page.body
        done = self.web.post(row.group(1), {"action": action}, on_page="/me/subscriptions")
        return search(r'<p class="flash ok" role="status">(.*?)</p>', done.body)


def _matches(r: Received, label: str) -> bool:
    msg = r.message
    return (
        str(msg["Message-ID"]).strip("<>") == label or label.lower() in str(msg["Subject"]).lower()
    )


def _show(mails: list[Received]) -> list[tuple[list[str], str]]:
    return [(r.rcpt_tos, f"{r.message['Subject']} {r.message['Message-ID']}") for r in mails]


def list_unsubscribe_url(received: list[Received], rcpt: str, msgid: str) -> str:
    msg = next(
        r.message
        for r in received
        if r.rcpt_tos == [rcpt] and str(r.message["Message-ID"]).strip("<>") == msgid
    )
    return search(
        r"<(http[^>]+/unsubscribe/[^>]+)>", " ".join(str(msg["List-Unsubscribe"]).split())
    )


def digest_posts(received: list[Received], rcpt: str, posts: list[str]) -> list[str]:
    """The posts (of `posts`) the digest mailed to rcpt holds, by their own Message-ID header."""
    data = next(r for r in received if r.rcpt_tos == [rcpt]).data.decode(errors="replace").lower()
    return [p for p in posts if f"message-id: <{p.lower()}>" in data]


def life_with_a_list(j: Journey) -> None:
    """The journey; every step is followed by a post and an exact check of what arrived."""
    assert f"created {j.list}@lists.test" in j.cli(
        "lists", "create", j.list, "--title", "Developers"
    )
    j.cli("subscribe", SAM, "--list", j.list)
    t1 = j.new_thread()
    j.expect((SAM, t1))

    # In by mail command, confirmed by replying to the confirmation.
    j.command("subscribe")
    confirm = j.expect((PAT, "Confirm your subscription"))
    reply_to = j.body(confirm, PAT, "Confirm")[0]["Reply-To"]
    j.mail(PAT, reply_to, "Re: confirm", "yes\n")
    welcome = j.expect((PAT, "Welcome"))
    assert "/unsubscribe/" in j.body(welcome, PAT, "Welcome")[1]
    j.reply(t1)
    j.expect(*j.copies_to(SAM, ANN, PAT))

    # Follow t1 by mail while already a member: one copy, not two.
    j.thread_command(t1, "follow")
    j.expect((PAT, "Done"))
    j.reply(t1)
    j.expect(*j.copies_to(SAM, ANN, PAT))

    # Mute t1 by mail; the web thread page says so; t1 stops, the rest of the list goes on.
    j.thread_command(t1, "mute")
    j.expect((PAT, "Done"))
    j.sign_in(j.web)
    thread_path = j.thread_path(t1)
    assert "You muted this thread" in j.web.get(thread_path).body
    j.reply(t1)
    j.expect(*j.copies_to(SAM, ANN))
    t2 = j.new_thread()
    j.expect(*j.copies_to(SAM, PAT))

    # Unmute, then mute again, from the thread's web page.
    page = j.web.post(f"{thread_path}/unmute", on_page=thread_path)
    assert "Mute this thread" in page.body
    j.reply(t1)
    j.expect(*j.copies_to(SAM, ANN, PAT))
    page = j.web.post(f"{thread_path}/mute", on_page=thread_path)
    assert "You muted this thread" in page.body
    j.reply(t1)
    j.expect(*j.copies_to(SAM, ANN))

    # The digest: no single posts; a followed thread still comes one by one until left by its link.
    assert "daily digest" in j.dashboard("digest", "every post")
    t3 = j.new_thread()
    j.expect(*j.copies_to(SAM))
    t2_path = j.thread_path(t2)
    assert "You now follow this thread" in j.web.post(f"{t2_path}/follow", on_page=t2_path).body
    j.reply(t2)
    got = j.expect(*j.copies_to(SAM, ANN, PAT))
    thread_link = list_unsubscribe_url(got, PAT, j.posts[-1])
    assert "Stop mail about this thread" in j.web.get(thread_link).body
    j.web.post(thread_link, {"List-Unsubscribe": "One-Click"})
    t2_left = j.reply(t2)
    j.expect(*j.copies_to(SAM, ANN))
    j.send_digest()
    digest = j.expect((PAT, "digest"))
    # The day's posts she did not get one by one, except those of the thread she muted while on
    # every post: t1 (before she came), t3 and the reply after she left t2.
    assert digest_posts(digest, PAT, j.posts) == [t1, t3, t2_left]
    assert "(3 messages)" in str(digest[0].message["Subject"])

    # Back to every post.
    assert "every post" in j.dashboard("list", "daily digest")
    t4 = j.new_thread()
    got = j.expect(*j.copies_to(SAM, PAT))

    # Out 1: the RFC 8058 one-click POST of the List-Unsubscribe header.
    j.web.post(list_unsubscribe_url(got, PAT, t4), {"List-Unsubscribe": "One-Click"})
    j.expect((PAT, "You have left"))
    j.new_thread()
    j.expect(*j.copies_to(SAM))

    # In by the web form (not signed in), confirmed by the link.
    stranger = WebClient(j.stack.web_port)
    stranger.post(
        f"/lists/{j.list}/subscribe", {"address": PAT, "kind": "list"}, on_page=f"/lists/{j.list}/"
    )
    confirm = j.expect((PAT, "Confirm your subscription"))
    link = search(r"(http://\S+/confirm/\S+)", j.body(confirm, PAT, "Confirm")[1])
    assert "Confirm my subscription" in stranger.get(link).body
    stranger.post(link)
    j.expect((PAT, "Welcome"))
    j.new_thread()
    j.expect(*j.copies_to(SAM, PAT))

    # Out 2: the mail command.
    j.command("unsubscribe")
    j.expect((PAT, "You have left"))
    j.new_thread()
    j.expect(*j.copies_to(SAM))

    # In by the administrator.
    j.cli("subscribe", PAT, "--list", j.list)
    j.new_thread()
    j.expect(*j.copies_to(SAM, PAT))

    # Out 3: "Leave list" on the web dashboard.
    assert f"has left {j.list}" in j.dashboard("leave", "every post")
    j.expect((PAT, "You have left"))
    j.new_thread()
    j.expect(*j.copies_to(SAM))

    # In, signed in, from the list page: at once.
    j.web.post(f"/lists/{j.list}/subscribe", {"kind": "list"}, on_page=f"/lists/{j.list}/")
    t10 = j.new_thread()
    got = j.expect(*j.copies_to(SAM, PAT))

    # Out 4: the unsubscribe page's button (a plain form POST, no one-click field).
    link = list_unsubscribe_url(got, PAT, t10)
    assert "Stop all mail from the list" in j.web.get(link).body
    j.web.post(link)
    j.expect((PAT, "You have left"))
    j.new_thread()
    j.expect(*j.copies_to(SAM))

    # In by mail command again, confirmed by the link this time.
    j.command("subscribe")
    confirm = j.expect((PAT, "Confirm your subscription"))
    stranger.post(search(r"(http://\S+/confirm/\S+)", j.body(confirm, PAT, "Confirm")[1]))
    j.expect((PAT, "Welcome"))
    t12 = j.new_thread()
    j.expect(*j.copies_to(SAM, PAT))

    # Out 5: the administrator's command.
    assert f"has left {j.list}" in j.cli("unsubscribe", PAT, "--list", j.list)
    j.new_thread()
    j.expect(*j.copies_to(SAM))

    # In by the administrator; out of one thread by an "unsubscribe" reply (a member mutes it).
    j.cli("subscribe", PAT, "--list", j.list)
    j.reply(t12)
    j.expect(*j.copies_to(SAM, ANN, PAT))
    j.thread_command(t12, "unsubscribe")
    j.expect((PAT, "Done"))
    j.reply(t12)
    j.expect(*j.copies_to(SAM, ANN))
    j.new_thread()
    j.expect(*j.copies_to(SAM, PAT))

    # Over the whole life: never two copies of a post to anyone.
    pairs = [
        (r.rcpt_tos[0], str(r.message["Message-ID"]))
        for r in j.sink.received
        if r.message["List-Id"]
    ]
    assert len(pairs) == len(set(pairs)), "a post reached someone twice"
    status = j.cli("status")
    assert "0 failed for good" in status, status


_journey_env = journey_env  # for the journeys on a stack of their own


@pytest.fixture
def separate_stack(
    tmp_path: Path, own_sink: SmtpSink, postgres_db: str, redis_db_url: str
) -> Iterator[Stack]:
    """Gateway, worker, beat and web as separate processes on PostgreSQL and Redis."""
    yield from run_separately(
        make_stack(
            tmp_path,
            _journey_env(
                tmp_path,
                own_sink,
                LISTGATE_DATABASE_URL=postgres_db,
                LISTGATE_BROKER_URL=redis_db_url,
            ),
        )
    )


@pytest.mark.long(52)
def test_a_life_with_the_list_on_the_embedded_default(up_stack: Stack, sink: SmtpSink) -> None:
    life_with_a_list(Journey(up_stack, sink))  # on the shared `listgate up`


@pytest.mark.long(52)
def test_a_life_with_the_list_on_postgresql_and_redis(
    separate_stack: Stack, own_sink: SmtpSink
) -> None:
    life_with_a_list(Journey(separate_stack, own_sink))


def test_a_view_of_a_shared_sink_holds_only_the_mail_since_it_began(own_sink: SmtpSink) -> None:
    """What a test on a shared stack counts: the mail after its start, and none of it twice."""

    def send(rcpt: str) -> None:
        with smtplib.SMTP("127.0.0.1", own_sink.port, timeout=30) as smtp:
            smtp.sendmail(ANN, [rcpt], f"From: {ANN}\r\nTo: {rcpt}\r\nSubject: s\r\n\r\nHi.\r\n")

    send(PAT)  # an earlier test's copy
    view = SinkView(own_sink, recorded_before=1)
    assert view.received == [] and view.to(PAT) == []
    send(PAT)
    send(SAM)
    assert [r.rcpt_tos for r in view.received] == [[PAT], [SAM]]
    assert len(view.to(PAT)) == 1 and len(own_sink.to(PAT)) == 2
    view.script("451 4.3.0 try again later")  # the relay is shared: its answers too
    with pytest.raises(smtplib.SMTPDataError):
        send(SAM)
    assert len(view.received) == 2
