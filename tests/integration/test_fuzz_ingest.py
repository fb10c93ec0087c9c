"""Fuzz the ingest path (shape check -> parse -> thread -> store) with generated and mutated mail.

Seeds are the real broken mail of the shared corpora. Each message is refused with a clear 5xx
(the gateway's shape limits) or ingested without an exception; every stored message keeps its raw
bytes, byte-identical. A few hundred examples in `make test`, 10,000 under `make soak`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from listgate import lists
from listgate.db import make_engine, session_factory, transaction, writer
from listgate.ingest import DROPPED, DUPLICATE, HELD_FOR_MODERATION, STORED, VARIANT, ingest
from listgate.mail.parser import parse
from listgate.mail.shape import shape_problem
from listgate.models import Message, MessageVariant
from listgate.schema import upgrade
from tests.support.config import DATA, make_settings
from tests.support.corpora import available
from tests.support.reliability import record, size

pytestmark = [pytest.mark.soak]
EXAMPLES = size(200, 10_000)
NASTY_HEADERS = [
    b"Message-ID: <>",
    b"Message-ID: <a@b> <c@d>",
    b"Message-ID: " + b"<" * 500,
    b"Message-ID: <fuzz@x>",
    b"In-Reply-To: <fuzz@x>",
    b"References: " + b" ".join(b"<r%d@x>" % i for i in range(2000)),
    b"References: <loop@x> <loop@x>",
    b"Message-ID: <loop@x>",
    b'Content-Type: multipart/mixed; boundary=""',
    b"Content-Type: multipart/mixed",
    b"Content-Type: text/plain; charset=x-unknown-7",
    b"Content-Type: text/plain; charset=utf-7",
    b"Content-Transfer-Encoding: base64",
    b"Content-Transfer-Encoding: quoted-printable",
    b"Content-Transfer-Encoding: x-uuencode",
    b"Date: Mon, 99 Foo 99999 99:99:99 +9999",
    b"Date: 0",
    b'From: "unterminated <a@b',
    b"From: <>",
    b"From: a@b, c@d, e@f",
    b"From: =?utf-8?b?////?= <x@y>",
    b"Subject: =?utf-8?q?" + b"=E2=82" * 300 + b"?=",
    b"Subject: " + b"\xff\xfe" * 100,
    b"Subject: Re: Re: Fwd: [dev] AW: x",
    b'Content-Disposition: attachment; filename="../../etc/passwd"',
    b"Content-Disposition: attachment; filename*=utf-8''%2e%2e%2f%00x",
    b"Auto-Submitted: no",
    b"MIME-Version: 1.0",
    b"X-Nul: a\x00b",
    b"Received: from x\r\n\tby y",
    b"\tcontinuation without a header",
    b"Header-Without-Colon",
    b": empty-name",
    # found by atheris: a NUL in a charset name made codecs raise ValueError out of parse()
    b"Subject: =?ut\x00f-8?q?caf=C3=A9?=",
    b'Content-Type: text/plain; charset="utf\x00-8"',
]
INSERTS = [
    b"\r\n",
    b"\n",
    b"\r",
    b"\x00",
    b"\xff",
    b"\r\n\r\n",
    b"--",
    b"=?",
    b"?=",
    b"=\r\n",
    b"\r\n.\r\n",
    b"\r\n--b\r\n",
    b"boundary=b",
    b"<",
    b">",
    b"\t",
    b"\xe2\x82",
    b"=C3",
]


def _seed_files() -> list[Path]:
    files = sorted((DATA / "mail").glob("*.eml")) + sorted((DATA / "bounces").glob("*.txt"))
    for parts, pattern, most in (
        (("hyperkitty-testdata",), "*.txt", None),
        (("mailman-eml", "eml"), "*.eml", None),
        (("bounces", "data"), "*.txt", 40),
    ):
        folder = available(*parts)  # the shared corpora add more seeds when they are there
        files += sorted(folder.glob(pattern))[:most] if folder else []
    return [f for f in files if f.name != "SOURCE.txt"]


@pytest.fixture(scope="module")
def seeds() -> list[bytes]:
    """Real mail to mutate, with SMTP line ends."""
    found = [re.sub(rb"\r?\n", b"\r\n", f.read_bytes()) for f in _seed_files()]
    return found or [
        b"From: a@example.org\r\nSubject: seed\r\nMessage-ID: <seed@x>\r\n\r\nbody\r\n"
    ]


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sessionmaker[Session]]:
    """One migrated SQLite archive with an open list 'dev' and a members-only list 'closed'."""
    settings = make_settings(tmp_path_factory.mktemp("fuzz-ingest"))
    engine = make_engine(settings)
    upgrade(engine)
    db = session_factory(writer(engine))
    with transaction(db) as s:
        lists.create(s, "dev")
        lists.create(s, "closed", policy="members")
    yield db
    engine.dispose()


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    """A real message with a few byte-level and header-level changes."""
    raw = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(0, 6))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "header", "dup"]))
        pos = draw(st.integers(0, max(len(raw) - 1, 0)))
        if op == "flip" and raw:
            raw[pos] = draw(st.integers(0, 255))
        elif op == "insert":
            raw[pos:pos] = draw(st.sampled_from(INSERTS) | st.binary(max_size=40))
        elif op == "delete":
            del raw[pos : pos + draw(st.integers(1, 200))]
        elif op == "truncate":
            del raw[pos:]
        elif op == "header":
            raw[0:0] = draw(st.sampled_from(NASTY_HEADERS)) + b"\r\n"
        elif op == "dup":
            raw += raw[: draw(st.integers(0, 2000))]
    return bytes(raw)


def generated() -> st.SearchStrategy[bytes]:
    """A message built from nasty headers, random header text and a (possibly multipart) body."""
    text = st.text(st.characters(exclude_categories=["Cs"]), max_size=80)
    header = st.one_of(
        st.sampled_from(NASTY_HEADERS),
        st.tuples(
            st.sampled_from(
                [
                    "Subject",
                    "From",
                    "To",
                    "Cc",
                    "References",
                    "In-Reply-To",
                    "Message-ID",
                    "Date",
                    "Content-Type",
                    "X-Any",
                ]
            ),
            text,
        ).map(lambda t: f"{t[0]}: {t[1]}".encode("utf-8", "surrogatepass")),
    )
    body = st.one_of(
        st.binary(max_size=2000),
        text.map(lambda s: s.encode()),
        st.just(
            b"--b\r\nContent-Type: text/plain\r\n\r\npart\r\n--b\r\n"
            b"Content-Type: application/octet-stream\r\nContent-Disposition: attachment; "
            b'filename="..\\\\..\\\\x.exe"\r\nContent-Transfer-Encoding: base64\r\n\r\nAAEC!!\r\n'
        ),
    )
    return st.tuples(st.lists(header, max_size=12), body).map(
        lambda t: b"\r\n".join(t[0]) + b"\r\n\r\n" + t[1]
    )


def _check_one(db: sessionmaker[Session], raw: bytes, list_name: str, origin: str) -> str:
    """Refuse (clear 5xx) or ingest raw; returns what happened. Any exception fails the test."""
    problem = shape_problem(raw, 1000, 100_000, 50)
    if problem is not None:
        assert re.match(r"^5\d\d 5\.\d\.\d \S", problem[1]), problem
        return "refused"
    parsed = parse(raw)
    with transaction(db) as session:
        result = ingest(
            session,
            parsed,
            lists.require(session, list_name),
            domain="lists.test",
            origin=origin,
            envelope_from="fuzz@example.org",
        )
    assert result.status in (STORED, HELD_FOR_MODERATION, DUPLICATE, VARIANT, DROPPED, "command"), (
        result
    )
    if result.status in (STORED, HELD_FOR_MODERATION):
        with db() as session:
            assert session.get_one(Message, result.message_pk).raw.data == raw, (
                "stored bytes differ"
            )
    if result.status == VARIANT:  # other bytes with an archived Message-ID: kept beside it, intact
        with db() as session:
            kept = session.scalars(
                select(MessageVariant).where(MessageVariant.message_pk == result.message_pk)
            ).all()
            assert raw in [v.raw.data for v in kept], "variant bytes differ"
    return result.status


def test_fuzzed_mail_is_stored_intact_or_refused_clearly(
    archive: sessionmaker[Session], seeds: list[bytes]
) -> None:
    outcomes: dict[str, int] = {}

    @hsettings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
    )
    @given(
        raw=st.one_of(mutated(seeds), generated()),
        list_name=st.sampled_from(["dev", "closed"]),
        origin=st.sampled_from(["smtp", "import"]),
    )
    def run(raw: bytes, list_name: str, origin: str) -> None:
        status = _check_one(archive, raw, list_name, origin)
        outcomes[status] = outcomes.get(status, 0) + 1

    run()
    # the fuzz reaches storage, not just refusals
    assert outcomes.get(STORED, 0) > EXAMPLES // 10, outcomes
    with archive() as session:
        rows = session.scalars(select(Message)).all()
        assert all(m.raw is not None and len(m.raw.data) == m.raw.size for m in rows)
    record(
        "ingest fuzz (hypothesis: mutated corpus + generated)",
        sum(outcomes.values()),
        0,
        0,
        None,
        ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())),
    )
