"""Issue 13's journeys on real processes: `listgate up` (gateway, archiver, worker, beat, web), mail
in over SMTP, out at an aiosmtpd sink, DNS from a stub server on loopback, signatures checked with
dkimpy.

1. An owner creates and edits a list, moderates by mail (approve and reject by reply), removes
   and purges a message.
2. A subscriber on the weekly digest answers one entry of it, and the answer threads under it.
3. Every delivered copy of a DKIM-signed post verifies (plain, MIME, 8-bit, folded headers), each
   copy carries a valid ARC set, and mail listgate writes itself is signed for the list domain.
"""

from __future__ import annotations

import re
import smtplib
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.message import Message as EmailMsg
from urllib.parse import unquote

import dkim
import pytest
from celery import Celery
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from listgate.config import Settings
from listgate.db import make_engine, session_factory, transaction, writer
from listgate.models import AuditEntry, Message, RawMessage, Subscription
from tests.support.config import search, wait_until
from tests.support.mailauth import Key, StubDns, dnsfunc, make_key
from tests.support.sink import Received, SmtpSink, enclosed, payload
from tests.support.stack import Stack, base_env, get, get_json, make_stack, run_up

pytestmark = pytest.mark.integration

DOMAIN = "lists.test"
OWNER, MOD, ANN, SUB1, SUB2 = (
    "owner@example.org",
    "mod@example.org",
    "ann@example.org",
    "s1@example.net",
    "s2@example.net",
)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Key]:
    tmp = tmp_path_factory.mktemp("keys")
    return {
        "author": make_key(tmp, "a2026", "example.org"),
        "strict": make_key(tmp, "s1", "strict.example"),
        "list": make_key(tmp, "listgate", DOMAIN),
        "arc": make_key(tmp, "arc2026", DOMAIN),
    }


@pytest.fixture(scope="module")
def records(keys: dict[str, Key]) -> dict[str, str]:
    return {
        **{k.name: k.record for k in keys.values()},
        "_dmarc.strict.example": "v=DMARC1; p=reject",
    }


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory,
    msink: SmtpSink,
    keys: dict[str, Key],
    records: dict[str, str],
) -> Iterator[Stack]:
    """`listgate up` with DKIM and ARC keys, asking the stub DNS server."""
    tmp = tmp_path_factory.mktemp("journeys")
    dns = StubDns(records).start()
    env = base_env(
        tmp,
        msink,
        LISTGATE_DKIM_KEY=str(keys["list"].path),
        LISTGATE_ARC_KEY=str(keys["arc"].path),
        LISTGATE_ARC_SELECTOR="arc2026",
        LISTGATE_DNS_SERVER=dns.address,
        LISTGATE_DNS_TIMEOUT="2",
        LISTGATE_BASE_URL="https://lists.test",
        # The same people write several times a minute here (a digest setting, then a reply
        # held with a hint); the one-reply-per-window rule has journeys of its own.
        LISTGATE_AUTO_REPLY_WINDOW="0",
    )
    try:
        yield from run_up(make_stack(tmp, env))
    finally:
        dns.stop()


def db(stack: Stack) -> sessionmaker[Session]:
    """A session factory on the stack's database."""
    return session_factory(writer(make_engine(Settings.from_env(stack.env))))


def smtp_send(stack: Stack, sender: str, to: str, raw: bytes) -> None:
    """Hand one mail to the gateway over SMTP; it must say 250."""
    with smtplib.SMTP("127.0.0.1", stack.smtp_port, timeout=30) as smtp:
        options = ["BODY=8BITMIME"] if not raw.isascii() else []
        assert smtp.sendmail(sender, [to], raw, mail_options=options) == {}


def arrived(
    sink: SmtpSink,
    stack: Stack,
    address: str,
    what: str,
    match: Callable[[Received], bool] = lambda r: True,
    count: int = 1,
) -> list[Received]:
    """Wait until `count` mails matching `match` reached address; fail with the logs otherwise."""

    def found() -> list[Received]:
        stack.check_alive()
        got = [r for r in sink.to(address) if match(r)]
        return got if len(got) >= count else []

    try:
        return wait_until(found, timeout=60, what=what)
    except AssertionError:
        pytest.fail(
            f"{what}: not at {address}\n{[r.message['Subject'] for r in sink.to(address)]}\n"
            f"{stack.log_tail()}",
            pytrace=False,
        )


def send_task(stack: Stack, name: str) -> None:
    """Ask the running worker to run a task now (as beat would at its hour)."""
    app = Celery(broker=Settings.from_env(stack.env).broker_url)
    try:
        app.send_task(name)
    finally:
        app.close()


def subject_has(words: str) -> Callable[[Received], bool]:
    return lambda r: words in str(r.message["Subject"])


def post(sender: str, to: str, subject: str, msgid: str, body: str, **headers: str) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"], msg["Message-ID"] = sender, to, subject, f"<{msgid}>"
    msg["Date"] = "Wed, 25 Nov 2026 10:00:00 +0000"
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body)
    return bytes(msg)


def text_of(message: EmailMsg) -> str:
    """The first text/plain part, decoded."""
    for part in message.walk():
        if part.get_content_type() == "text/plain" and not part.get_filename():
            return payload(part).decode("utf-8", "replace")
    return ""


def copies_of(sink: SmtpSink, address: str, msgid: str) -> list[Received]:
    return [r for r in sink.to(address) if r.message["Message-ID"] == f"<{msgid}>"]


# --- 1. the owner ---------------------------------------------------------------------------


@pytest.mark.long(25)
def test_an_owner_creates_edits_moderates_by_mail_removes_and_purges(
    stack: Stack, msink: SmtpSink
) -> None:
    assert "created club@lists.test" in stack.listgate(
        "lists", "create", "club", "--owners", OWNER, "--moderators", MOD
    )
    edited = stack.listgate("lists", "edit", "club", "--policy", "moderated", "--title", "The Club")
    assert "policy: 'open' -> 'moderated'" in edited and "title: 'club' -> 'The Club'" in edited
    assert stack.listgate("moderators", "show", "club").split() == [MOD]
    for address in (SUB1, SUB2):
        stack.listgate("subscribe", address, "--list", "club")

    # A post is held: its author is told, the moderator gets one mail with the post and the reason.
    smtp_send(
        stack,
        ANN,
        "club@lists.test",
        post(
            ANN,
            "club@lists.test",
            "Garden party",
            "party@example.org",
            "Shall we meet on Saturday in the garden?",
        ),
    )
    (held,) = arrived(msink, stack, MOD, "the moderators' mail", subject_has("awaits moderation"))
    arrived(msink, stack, ANN, "the author's held notice", subject_has("awaits moderation"))
    note = held.message
    attached = [p for p in note.walk() if p.get_content_type() == "message/rfc822"]
    assert attached and enclosed(attached[0])["Message-ID"] == "<party@example.org>"
    assert "every post to this list is moderated" in text_of(note)
    # moderation mail is signed for the list domain
    assert dkim.verify(held.data, dnsfunc=dnsfunc_from(stack))
    approve = search(r"club\+approve-[a-z0-9.]+@lists\.test", text_of(note), 0)
    reject_to = note["Reply-To"]
    assert re.fullmatch(r"club\+reject-[a-z0-9.]+@lists\.test", reject_to)

    # Approve by mail: the subscribers get the post, once each.
    smtp_send(stack, MOD, approve, post(MOD, approve, "approve", "ok-1@example.org", "approve"))
    for address in (SUB1, SUB2):
        arrived(
            msink,
            stack,
            address,
            "the approved post",
            lambda r: r.message["Message-ID"] == "<party@example.org>",
        )

    # A second post is rejected by replying "reject: REASON" to the moderators' mail.
    smtp_send(
        stack,
        ANN,
        "club@lists.test",
        post(ANN, "club@lists.test", "Buy cheap watches", "spam@example.org", "Watches!"),
    )
    second = arrived(
        msink, stack, MOD, "the second moderators' mail", subject_has("Buy cheap watches")
    )[0].message
    reply = post(
        MOD,
        second["Reply-To"],
        f"Re: {second['Subject']}",
        "rej-1@example.org",
        "reject: advertising is off topic here\n\nOn Wed, Mod wrote:\n> A post to club is held",
    )
    smtp_send(stack, MOD, second["Reply-To"], reply)
    refusal = arrived(msink, stack, ANN, "the rejection", subject_has("was not accepted"))[0]
    assert "advertising is off topic here" in text_of(refusal.message)

    # The approve address works once: a second use is answered, and nothing is sent again.
    smtp_send(stack, MOD, approve, post(MOD, approve, "approve", "ok-2@example.org", "approve"))
    answer = arrived(
        msink,
        stack,
        MOD,
        "the answer to a reused address",
        subject_has("Your approve request to club was not carried out"),
    )[0]
    assert "already dealt with" in text_of(answer.message)
    for address in (SUB1, SUB2):
        assert len(copies_of(msink, address, "party@example.org")) == 1
        assert copies_of(msink, address, "spam@example.org") == []

    # A moderator's reply (moderators post without being held), then the root is taken down.
    smtp_send(
        stack,
        MOD,
        "club@lists.test",
        post(
            MOD,
            "club@lists.test",
            "Re: Garden party",
            "party-re@example.org",
            "Saturday at three, bring chairs.",
            In_Reply_To="<party@example.org>",
            References="<party@example.org>",
        ),
    )
    arrived(
        msink,
        stack,
        SUB1,
        "the moderator's reply",
        lambda r: r.message["Message-ID"] == "<party-re@example.org>",
    )
    thread_id = get_json(stack.web_port, "/api/messages/party-re@example.org")["thread_id"]
    out = stack.listgate("messages", "remove", "party@example.org", "--reason", "posted by mistake")
    assert "removed <party@example.org> on club" in out
    status, page = get(stack.web_port, f"/threads/{thread_id}")
    assert status == 200 and "removed by the moderators on" in page and "posted by mistake" in page
    assert "Saturday in the garden" not in page and "bring chairs" in page
    thread = get_json(stack.web_port, f"/api/threads/{thread_id}")
    assert [(m["message_id"], m.get("removed", False)) for m in thread["messages"]] == [
        ("party@example.org", True),
        ("party-re@example.org", False),
    ]

    # Purge (a legal takedown): the bytes are gone from the database, search finds nothing.
    out = stack.listgate(
        "messages", "remove", "party-re@example.org", "--reason", "court order", "--purge"
    )
    assert "raw mail, attachments and text deleted" in out
    assert get(stack.web_port, "/api/messages/party-re@example.org")[0] == 404
    assert "bring chairs" not in get(stack.web_port, "/search?q=chairs")[1]
    with db(stack)() as session:
        msg = session.scalars(
            select(Message).where(Message.message_id == "party-re@example.org")
        ).one()
        assert session.get_one(RawMessage, msg.raw_id).data == b""
        log = [
            (e.actor, e.action) for e in session.scalars(select(AuditEntry).order_by(AuditEntry.id))
        ]
    assert [a for _, a in log] == [
        "edit",
        "edit",
        "approve message",
        "reject message",
        "remove message",
        "purge message",
    ]
    assert log[2][0] == f"mail:{MOD}" and log[0][0].startswith("cli:")


def test_a_reject_reason_by_mail_over_the_limit_is_answered_and_the_post_stays_held(
    stack: Stack, msink: SmtpSink
) -> None:
    """The web's reason limit holds by mail: a longer "reject: REASON" is refused with a reply
    saying so (the post stays held, its author hears nothing), a reason at the limit is sent whole.
    """
    stack.listgate("lists", "create", "board", "--policy", "moderated", "--moderators", MOD)
    smtp_send(
        stack,
        ANN,
        "board@lists.test",
        post(ANN, "board@lists.test", "Minutes of the board", "minutes@example.org", "Minutes."),
    )
    note = arrived(msink, stack, MOD, "the moderators' mail", subject_has("Minutes of the board"))[
        0
    ].message
    too_long = "n" * 1997 + "ü€😀ß"  # 2,001 characters, on one line of the reply
    for n, reason in enumerate((too_long, too_long[:-1])):
        reply = post(
            MOD,
            note["Reply-To"],
            f"Re: {note['Subject']}",
            f"rej-board-{n}@example.org",
            f"reject: {reason}\n\nOn Wed, Mod wrote:\n> A post to board is held",
        )
        smtp_send(stack, MOD, note["Reply-To"], reply)
        if n == 0:
            answer = arrived(
                msink,
                stack,
                MOD,
                "the answer to a reason too long",
                lambda r: "too long" in text_of(r.message),
            )[0]
            said = " ".join(text_of(answer.message).split())
            assert "the reason is too long: at most 2,000 characters (this one has 2,001)" in said
            assert "reason: reason:" not in said.lower()  # "Reason: reason: too long…" before
            assert answer.message["Subject"] == "Your reject request to board was not carried out"
            assert "still held" in said
            with db(stack)() as session:
                held = session.scalars(
                    select(Message.status).where(Message.message_id == "minutes@example.org")
                ).one()
            assert held == "held"
    refusal = arrived(msink, stack, ANN, "the rejection", subject_has("board was not accepted"))
    assert too_long[:-1] in text_of(refusal[0].message)
    assert len([r for r in msink.to(ANN) if "board was not accepted" in r.message["Subject"]]) == 1
    assert len([r for r in msink.to(MOD) if "too long" in text_of(r.message)]) == 1


# --- 2. the weekly digest -------------------------------------------------------------------


def test_a_weekly_digest_reader_answers_one_entry_and_the_answer_threads_under_it(
    stack: Stack, msink: SmtpSink
) -> None:
    reader, town = "reader@example.net", "town@lists.test"
    stack.listgate("lists", "create", "town", "--title", "Town")
    stack.listgate("subscribe", reader, "--list", "town")
    smtp_send(
        stack,
        reader,
        "town+digest-weekly@lists.test",
        post(
            reader,
            "town+digest-weekly@lists.test",
            "digest weekly",
            "dw@example.net",
            "weekly please",
        ),
    )
    arrived(
        msink,
        stack,
        reader,
        "the digest setting's answer",
        subject_has("Done: your mail from town"),
    )
    posts = [
        (
            "bridge@example.org",
            "Bridge repairs",
            "The bridge closes on Monday for repairs.\n"
            "Detour signs will point the way through the park.",
        ),
        (
            "market@example.org",
            "Market day",
            "The market moves to the church square this week.\n"
            "Stalls open at seven in the morning, close at noon.",
        ),
    ]
    for msgid, subject, body in posts:
        smtp_send(stack, ANN, town, post(ANN, town, subject, msgid, body))
    sessions = db(stack)

    def archived() -> bool:
        with sessions() as session:
            return (
                len(
                    session.scalars(
                        select(Message).where(Message.message_id.in_([p[0] for p in posts]))
                    ).all()
                )
                == 2
            )

    wait_until(archived, what="both posts archived")
    # The posts belong to last week, and the reader chose weekly long before it ended.
    today = datetime.now(UTC).date()
    last_wednesday = datetime.combine(
        today - timedelta(days=today.weekday() + 5), datetime.min.time(), tzinfo=UTC
    )
    with transaction(sessions) as session:
        session.execute(
            update(Message)
            .where(Message.message_id.in_([p[0] for p in posts]))
            .values(received_at=last_wednesday + timedelta(hours=10))
        )
        session.execute(
            update(Subscription)
            .where(Subscription.address == reader)
            .values(confirmed_at=last_wednesday - timedelta(days=30))
        )
    # a digest reader gets no single posts
    assert copies_of(msink, reader, "bridge@example.org") == []

    send_task(stack, "listgate.send_digests")
    (got,) = arrived(msink, stack, reader, "the weekly digest", subject_has("Town digest, week of"))
    digest = got.message
    assert digest.get_content_type() == "multipart/digest"
    assert digest["List-Post"] == f"<mailto:{town}>" and "town.lists.test" in digest["List-Id"]
    assert "https://lists.test/unsubscribe/" in digest["List-Unsubscribe"]
    assert digest["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert dkim.verify(got.data, dnsfunc=dnsfunc_from(stack))
    toc = text_of(digest)
    assert (
        "https://lists.test/m/bridge%40example.org" in toc
        and "https://lists.test/m/market%40example.org" in toc
    )
    links = re.findall(r"Reply: (mailto:\S+)", toc)
    assert len(links) == 2 and "In-Reply-To=%3Cbridge%40example.org%3E" in links[0]

    # A reply to the whole digest, quoting the market entry: threaded under that entry.
    quoted = "\n".join("> " + line for line in posts[1][2].splitlines())
    smtp_send(
        stack,
        reader,
        town,
        post(
            reader,
            town,
            f"Re: {digest['Subject']}",
            "apples@example.net",
            f"I can bring apples.\n\n{quoted}\n",
            In_Reply_To=digest["Message-ID"],
            References=digest["Message-ID"],
        ),
    )
    answer = wait_until(
        lambda: (
            get(stack.web_port, "/api/messages/apples@example.net")[0] == 200
            and get_json(stack.web_port, "/api/messages/apples@example.net")
        ),
        what="the answer archived",
    )
    market = get_json(stack.web_port, "/api/messages/market@example.org")
    assert (
        answer["parent_message_id"] == "market@example.org"
        and answer["thread_id"] == market["thread_id"]
    )
    assert answer["subject"] == "Re: Market day"

    # The reply link of the bridge entry, used as a mail client would: threaded under it.
    link = links[0]
    fields = dict(part.split("=", 1) for part in link.split("?", 1)[1].split("&"))
    smtp_send(
        stack,
        reader,
        town,
        post(
            reader,
            town,
            unquote(fields["subject"]),
            "detour@example.net",
            "Which park?",
            In_Reply_To=unquote(fields["In-Reply-To"]),
            References=unquote(fields["References"]),
        ),
    )
    detour = wait_until(
        lambda: (
            get(stack.web_port, "/api/messages/detour@example.net")[0] == 200
            and get_json(stack.web_port, "/api/messages/detour@example.net")
        ),
        what="the link's answer",
    )
    assert (
        detour["parent_message_id"] == "bridge@example.org"
        and detour["subject"] == "Re: Bridge repairs"
    )

    # A reply naming no entry is held with a hint: never a "Re: Town digest" thread.
    smtp_send(
        stack,
        reader,
        town,
        post(
            reader,
            town,
            f"Re: {digest['Subject']}",
            "vague@example.net",
            "Nice!\n",
            In_Reply_To=digest["Message-ID"],
        ),
    )
    hint = arrived(
        msink, stack, reader, "the hint", subject_has("reply to the town digest is held")
    )[0]
    assert "reply link" in text_of(hint.message)
    threads = get_json(stack.web_port, "/api/lists/town/threads")["threads"]
    assert sorted(t["subject"] for t in threads) == ["Bridge repairs", "Market day"]

    # The weekly digest went out once, whatever the beat or a second run does.
    send_task(stack, "listgate.send_digests")
    time.sleep(3)
    assert len([r for r in msink.to(reader) if "digest, week of" in str(r.message["Subject"])]) == 1


# --- 3. DKIM, ARC, DMARC --------------------------------------------------------------------


def dnsfunc_from(stack: Stack) -> Callable[..., bytes | None]:
    return dnsfunc(stack.records)


@pytest.fixture(autouse=True)
def _records_on_stack(stack: Stack, records: dict[str, str]) -> None:
    stack.records = records


def signed_posts(key: Key, to: str) -> dict[str, bytes]:
    """Four posts as mail clients write them, each DKIM-signed by the author's domain."""
    plain = post(ANN, to, "Plain text", "plain@example.org", "Just some text.\nAnd a second line.")
    mime = EmailMessage()
    mime["From"], mime["To"], mime["Subject"], mime["Message-ID"] = (
        ANN,
        to,
        "With attachment",
        "<mime@example.org>",
    )
    mime["Date"] = "Wed, 25 Nov 2026 10:00:00 +0000"
    mime.set_content("See the attached notes.")
    mime.add_alternative("<p>See the attached <b>notes</b>.</p>", subtype="html")
    mime.add_attachment(
        b"\x00\x01binary notes\xff" * 50,
        maintype="application",
        subtype="octet-stream",
        filename="notes.bin",
    )
    eight = (
        "From: Ann <ann@example.org>\r\nTo: " + to + "\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n"
        "Date: Wed, 25 Nov 2026 10:00:00 +0000\r\nMessage-ID: <eight@example.org>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        "Grüße aus Köln, ça va très bien.\r\n"
    ).encode()
    folded = (
        b"From: Ann Author\r\n <ann@example.org>\r\nTo: "
        + to.encode()
        + b",\r\n\tnobody@example.org\r\n"
        b"Subject: A subject long enough that the client folded it\r\n  onto a second line\r\n"
        b"Date: Wed, 25 Nov 2026 10:00:00 +0000\r\nMessage-ID: <folded@example.org>\r\n"
        b"Content-Type: text/plain;\r\n charset=us-ascii\r\n\r\nFolded headers.\r\n"
    )
    raws = {
        "plain@example.org": plain,
        "mime@example.org": bytes(mime),
        "eight@example.org": eight,
        "folded@example.org": folded,
    }
    canon = {
        "plain@example.org": (b"relaxed", b"relaxed"),
        "mime@example.org": (b"simple", b"simple"),
        "eight@example.org": (b"relaxed", b"simple"),
        "folded@example.org": (b"simple", b"relaxed"),
    }
    signed_reply_to = {
        "plain@example.org",
        "folded@example.org",
    }  # h= names Reply-To although absent
    out = {}
    for msgid, given in raws.items():
        raw = given.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        headers = [b"from", b"to", b"subject", b"date", b"message-id", b"content-type"]
        headers += [b"reply-to"] if msgid in signed_reply_to else []
        out[msgid] = (
            dkim.sign(
                raw,
                key.selector.encode(),
                key.domain.encode(),
                key.private,
                canonicalize=canon[msgid],
                include_headers=headers,
            )
            + raw
        )
    return out


def test_every_copy_of_a_signed_post_verifies_and_carries_a_valid_arc_set(
    stack: Stack, msink: SmtpSink, keys: dict[str, Key]
) -> None:
    people = ["d1@example.net", "d2@example.net", "d3@example.com"]
    stack.listgate("lists", "create", "signed", "--title", "Signed")
    stack.listgate("lists", "edit", "signed", "--reply-to", "list")
    for address in people:
        stack.listgate("subscribe", address, "--list", "signed")
    sent = signed_posts(keys["author"], "signed@lists.test")
    for raw in sent.values():
        assert dkim.verify(raw, dnsfunc=dnsfunc_from(stack))  # signed as sent
        smtp_send(stack, ANN, "signed@lists.test", raw)
    for address in people:
        for msgid in sent:

            def is_it(r: Received, m: str = msgid) -> bool:
                return bool(r.message["Message-ID"] == f"<{m}>")

            arrived(msink, stack, address, f"{msgid}", is_it)
    for address in people:
        for msgid in sent:
            (copy,) = copies_of(msink, address, msgid)
            assert copy.data.endswith(sent[msgid]), (
                f"{msgid} to {address}: the original bytes changed"
            )
            assert dkim.verify(copy.data, dnsfunc=dnsfunc_from(stack)), (
                f"{msgid} to {address}: DKIM fails"
            )
            cv, _, why = dkim.arc_verify(copy.data, dnsfunc=dnsfunc_from(stack))
            assert cv == dkim.CV_Pass, f"{msgid} to {address}: ARC {cv!r} {why}"
            covered = msgid in ("plain@example.org", "folded@example.org")
            assert copy.message["Reply-To"] == (None if covered else "signed@lists.test"), msgid
            assert "dkim=pass" in re.sub(
                r"\s+", " ", str(copy.message["ARC-Authentication-Results"])
            )


def test_a_strict_dmarc_authors_post_is_rewritten_and_the_arc_chain_vouches_for_it(
    stack: Stack, msink: SmtpSink, keys: dict[str, Key]
) -> None:
    stack.listgate("lists", "create", "strict")
    stack.listgate("subscribe", "d4@example.net", "--list", "strict")
    raw = post(
        "Sam <sam@strict.example>",
        "strict@lists.test",
        "From a strict domain",
        "sam@strict.example",
        "Hi.",
    )
    raw = raw.replace(b"\n", b"\r\n") if b"\r\n" not in raw else raw
    key = keys["strict"]
    raw = dkim.sign(raw, key.selector.encode(), key.domain.encode(), key.private) + raw
    smtp_send(stack, "sam@strict.example", "strict@lists.test", raw)
    (copy,) = arrived(
        msink,
        stack,
        "d4@example.net",
        "the rewritten copy",
        lambda r: r.message["Message-ID"] == "<sam@strict.example>",
    )
    assert "strict@lists.test" in copy.message["From"] and "Sam via" in copy.message["From"]
    # dkimpy's default h= covers Reply-To; the rewritten From broke that signature anyway, so the
    # author is added for replies (the list's policy is "none": the author only), and the ARC seal
    # covers it.
    assert copy.message["Reply-To"] == "Sam <sam@strict.example>"
    # the rewrite breaks the author's signature...
    assert not dkim.verify(copy.data, dnsfunc=dnsfunc_from(stack))
    cv, _, why = dkim.arc_verify(copy.data, dnsfunc=dnsfunc_from(stack))
    # ...and the ARC chain tells receivers it was good when it reached the list
    assert cv == dkim.CV_Pass, why
    aar = re.sub(r"\s+", " ", str(copy.message["ARC-Authentication-Results"]))
    assert "dkim=pass header.d=strict.example" in aar


def test_help_mail_and_other_generated_mail_is_signed_for_the_list_domain(
    stack: Stack, msink: SmtpSink
) -> None:
    stack.listgate("lists", "create", "helped")
    smtp_send(
        stack,
        "asker@example.net",
        "helped+help@lists.test",
        post("asker@example.net", "helped+help@lists.test", "help", "help-1@example.net", "help"),
    )
    (got,) = arrived(
        msink, stack, "asker@example.net", "the help mail", subject_has("Help for helped")
    )
    assert b"d=lists.test" in got.data and b"s=listgate" in got.data
    assert dkim.verify(got.data, dnsfunc=dnsfunc_from(stack))
