"""DKIM on generated mail and ARC sets on copies, checked with dkimpy against stub DNS answers."""

from __future__ import annotations

import re
from pathlib import Path

import dkim
import pytest

from listgate.mail.split import split
from tests.support.config import make_settings
from tests.support.mailauth import Key, StubDns, dnsfunc, make_key
from worker.headers import ListInfo, build_copy
from worker.resolver import Resolver
from worker.signing import Signer

INFO = ListInfo("dev", "Developers", "lists.test", "https://lists.test")
POST = (
    b"From: Ann <ann@example.org>\r\nTo: dev@lists.test\r\n"
    b"Subject: A rather long subject that a mail client\r\n"
    b" folds over two lines\r\nDate: Wed, 25 Nov 2026 10:00:00 +0000\r\n"
    b"Message-ID: <p1@example.org>\r\n"
    b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n\r\n" + "Grüße aus Köln.\r\n\r\n-- \r\nAnn\r\n".encode()
)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Key]:
    tmp = tmp_path_factory.mktemp("keys")
    return {
        "author": make_key(tmp, "a2026", "example.org"),
        "list": make_key(tmp, "listgate", "lists.test"),
        "arc": make_key(tmp, "arc", "lists.test"),
    }


class StubResolver(Resolver):
    """The real Resolver's interface, answering from a dict."""

    def __init__(self, records: dict[str, str]) -> None:
        super().__init__()
        self.records = records

    def _query(self, name: str) -> tuple[list[str], float]:
        return ([self.records[name]] if name in self.records else []), 60.0


def records(keys: dict[str, Key]) -> dict[str, str]:
    return {k.name: k.record for k in keys.values()}


def signer(tmp_path: Path, keys: dict[str, Key]) -> Signer:
    settings = make_settings(
        tmp_path,
        LISTGATE_DKIM_KEY=str(keys["list"].path),
        LISTGATE_ARC_KEY=str(keys["arc"].path),
        LISTGATE_ARC_SELECTOR="arc",
    )
    return Signer(settings, StubResolver(records(keys)))


def test_generated_mail_is_signed_for_the_list_domain(tmp_path: Path, keys: dict[str, Key]) -> None:
    notice = (
        b"From: dev list <dev+help@lists.test>\r\nTo: x@example.org\r\nSubject: Welcome\r\n\r\n"
        b"Hello\r\n"
    )
    signed = signer(tmp_path, keys).sign(notice)
    assert signed.endswith(notice)
    assert dkim.verify(signed, dnsfunc=dnsfunc(records(keys)))
    assert b"d=lists.test" in signed and b"s=listgate" in signed
    # the check can fail
    assert not dkim.verify(signed.replace(b"Hello", b"Hallo"), dnsfunc=dnsfunc(records(keys)))


def test_without_keys_nothing_is_added(tmp_path: Path) -> None:
    plain = Signer(make_settings(tmp_path), StubResolver({}))
    assert plain.sign(POST) == POST and plain.seal(POST) == POST


def test_a_copy_keeps_the_authors_signature_and_gets_a_valid_arc_set(
    tmp_path: Path, keys: dict[str, Key]
) -> None:
    signed = (
        dkim.sign(
            POST,
            b"a2026",
            b"example.org",
            keys["author"].private,
            canonicalize=(b"simple", b"simple"),
            include_headers=[b"from", b"to", b"subject", b"date", b"message-id", b"reply-to"],
        )
        + POST
    )
    copy = build_copy(
        signed, INFO, "p1@example.org", "https://lists.test/unsubscribe/T", reply_to="list"
    )
    sealed = signer(tmp_path, keys).seal(copy)
    assert b"Reply-To" not in split(sealed)[0]  # h= names reply-to: none added
    assert dkim.verify(sealed, dnsfunc=dnsfunc(records(keys)))
    cv, _, reason = dkim.arc_verify(sealed, dnsfunc=dnsfunc(records(keys)))
    assert cv == dkim.CV_Pass, reason
    assert b"dkim=pass header.d=example.org" in sealed
    # Each recipient's unsubscribe link is cut in after sealing: the seal must not cover it.
    other = sealed.replace(b"/unsubscribe/T", b"/unsubscribe/SOMEONE-ELSE")
    assert dkim.arc_verify(other, dnsfunc=dnsfunc(records(keys)))[0] == dkim.CV_Pass
    assert (
        dkim.arc_verify(sealed.replace("Köln".encode(), b"Bonn"), dnsfunc=dnsfunc(records(keys)))[0]
        == dkim.CV_Fail
    )


def test_dmarc_rewrite_breaks_the_authors_signature_but_the_arc_chain_holds(
    tmp_path: Path, keys: dict[str, Key]
) -> None:
    signed = dkim.sign(POST, b"a2026", b"example.org", keys["author"].private) + POST
    copy = build_copy(
        signed,
        INFO,
        "p1@example.org",
        "u",
        dmarc=True,
        author_name="Ann",
        author_addr="ann@example.org",
    )
    sealed = signer(tmp_path, keys).seal(copy, signed)
    assert not dkim.verify(sealed, dnsfunc=dnsfunc(records(keys)))  # From was rewritten
    assert dkim.arc_verify(sealed, dnsfunc=dnsfunc(records(keys)))[0] == dkim.CV_Pass
    unfolded = re.sub(rb"\r\n[ \t]+", b" ", sealed)
    assert (
        b"ARC-Authentication-Results: i=1; lists.test; dkim=pass header.d=example.org" in unfolded
    )


def test_the_resolver_asks_the_server_once_and_answers_from_its_cache(keys: dict[str, Key]) -> None:
    server = StubDns({"_dmarc.strict.example": "v=DMARC1; p=reject"}).start()
    try:
        resolver = Resolver(server.address, timeout=2.0, size=2)
        assert resolver.txt("_dmarc.strict.example") == ["v=DMARC1; p=reject"]
        assert resolver.txt("_DMARC.strict.example.") == ["v=DMARC1; p=reject"]
        assert resolver.txt("_dmarc.nowhere.example") == []
        assert server.queries == ["_dmarc.strict.example", "_dmarc.nowhere.example"]
        (
            resolver.txt("a.example"),
            resolver.txt("b.example"),
        )  # the cache holds two names: the first is evicted
        resolver.txt("_dmarc.strict.example")
        assert server.queries.count("_dmarc.strict.example") == 2
    finally:
        server.stop()


def test_a_resolver_that_does_not_answer_times_out_to_no_record() -> None:
    import socket
    import time

    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    try:
        resolver = Resolver(f"127.0.0.1:{silent.getsockname()[1]}", timeout=0.5)
        began = time.monotonic()
        assert resolver.txt("_dmarc.slow.example") == []
        assert time.monotonic() - began < 3
    finally:
        silent.close()
