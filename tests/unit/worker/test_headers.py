"""The copy a subscriber gets: headers on top, original bytes intact, VERP tokens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.utils import getaddresses

from listgate.mail.split import split
from listgate.tokens import read_verp_token, verp_token
from worker.headers import ListInfo, addresses_in, build_copy, verp_address

INFO = ListInfo("dev", "Developers", "lists.test", "https://lists.test")
RAW = (
    b"DKIM-Signature: v=1; a=rsa-sha256; d=example.org; h=from:subject; b=abc\r\n"
    b"From: Ann Author <ann@example.org>\r\nTo: dev@lists.test\r\nCc: Bob <BOB@example.org>\r\n"
    b"Subject: Hi\r\nMessage-ID: <a b@example.org>\r\n\r\nBody\r\n.\r\nFrom: not a header\r\n"
)


def test_copy_is_headers_then_the_exact_original() -> None:
    copy = build_copy(RAW, INFO, "a b@example.org", "https://lists.test/unsubscribe/T")
    assert copy.endswith(RAW)
    msg = message_from_bytes(copy)
    assert msg["List-Id"] == '"Developers" <dev.lists.test>'
    assert msg["Archived-At"] == "<https://lists.test/m/a%20b%40example.org>"
    assert msg["Reply-To"] is None  # the default policy: nothing added, replies go to the author
    assert "<https://lists.test/unsubscribe/T>" in msg["List-Unsubscribe"]
    assert msg["X-Listgate-Loop"] == "lists.test"


def test_lf_only_original_gets_lf_headers() -> None:
    raw = RAW.replace(b"\r\n", b"\n")
    copy = build_copy(raw, INFO, "x@y", "https://lists.test/unsubscribe/T")
    assert copy.endswith(raw) and b"\r\n" not in copy.replace(b",\r\n <", b"")


def test_authors_own_reply_to_is_kept_and_not_doubled() -> None:
    raw = RAW.replace(b"Subject: Hi\r\n", b"Subject: Hi\r\nReply-To: elsewhere@example.org\r\n")
    msg = message_from_bytes(build_copy(raw, INFO, "x@y", "u", reply_to="list"))
    assert msg.get_all("Reply-To") == ["elsewhere@example.org"]


def test_reply_to_follows_the_list_policy() -> None:
    for policy, expected in (
        ("none", None),
        ("list", "dev@lists.test"),
        ("author", "ann@example.org"),
    ):
        msg = message_from_bytes(
            build_copy(RAW, INFO, "x@y", "u", reply_to=policy, author_addr="ann@example.org")
        )
        assert msg["Reply-To"] == expected, policy


def test_no_reply_to_where_the_authors_signature_covers_it() -> None:
    # h= names reply-to although the mail has none: a
    # Reply-To added on top would break the signature.
    raw = RAW.replace(b"h=from:subject;", b"h=from:subject:\r\n\treply-to;")
    for policy in ("list", "author"):
        msg = message_from_bytes(
            build_copy(raw, INFO, "x@y", "u", reply_to=policy, author_addr="ann@example.org")
        )
        assert msg["Reply-To"] is None, policy


def test_dmarc_rewrites_from_only_and_keeps_body() -> None:
    copy = build_copy(
        RAW, INFO, "x@y", "u", dmarc=True, author_name="Ann Author", author_addr="ann@example.org"
    )
    msg = message_from_bytes(copy)
    assert getaddresses(msg.get_all("From", [])) == [
        ("Ann Author via Developers", "dev@lists.test")
    ]
    assert split(copy)[1] == split(RAW)[1]
    assert b"DKIM-Signature: v=1" in copy and b"Message-ID: <a b@example.org>" in copy


def test_dmarc_reply_to_follows_the_list_policy_and_always_reaches_the_author() -> None:
    # From is the list's address now: without the author
    # in Reply-To, "reply" would reach only the list.
    # h= naming reply-to changes nothing here: rewriting
    # From already broke that signature (ARC vouches).
    ann, dev = ("Ann Author", "ann@example.org"), ("", "dev@lists.test")
    for raw in (RAW, RAW.replace(b"h=from:subject;", b"h=from:subject:reply-to;")):
        for policy, expected in (("none", [ann]), ("list", [ann, dev]), ("author", [ann])):
            copy = build_copy(
                raw,
                INFO,
                "x@y",
                "u",
                dmarc=True,
                author_name="Ann Author",
                author_addr="ann@example.org",
                reply_to=policy,
            )
            assert getaddresses(message_from_bytes(copy).get_all("Reply-To", [])) == expected, (
                policy
            )


def test_dmarc_keeps_the_authors_own_reply_to() -> None:
    raw = RAW.replace(b"Subject: Hi\r\n", b"Subject: Hi\r\nReply-To: other@example.org\r\n")
    for policy in ("none", "list", "author"):
        copy = build_copy(
            raw,
            INFO,
            "x@y",
            "u",
            dmarc=True,
            author_name="Ann Author",
            author_addr="ann@example.org",
            reply_to=policy,
        )
        assert message_from_bytes(copy).get_all("Reply-To") == ["other@example.org"], policy


def test_verp_token_round_trip_and_forgery() -> None:
    token = verp_token("secret", "d", 123456)
    assert read_verp_token("secret", token) == ("d", 123456)
    assert read_verp_token("other", token) is None
    assert read_verp_token("secret", token[:-1] + ("0" if token[-1] != "0" else "1")) is None
    address = verp_address(INFO, token)
    local = address.split("@")[0]
    assert len(local) < 64 and local == local.lower()


def test_a_verp_token_names_the_row_it_was_made_for_not_a_later_one_given_its_id() -> None:
    made = datetime(2026, 11, 30, 10, 0, 0, 123456, tzinfo=UTC)
    token = verp_token("secret", "d", 7, made)
    assert read_verp_token("secret", token, lambda kind, ident: made) == ("d", 7)
    naive = made.replace(tzinfo=None)  # as SQLite stores it
    assert read_verp_token("secret", token, lambda kind, ident: naive) == ("d", 7)
    later = made + timedelta(microseconds=1)  # the row 7 now is another one
    assert read_verp_token("secret", token, lambda kind, ident: later) is None
    assert read_verp_token("secret", token, lambda kind, ident: None) is None  # row 7 is gone
    assert read_verp_token("secret", token) is None
    assert read_verp_token("other", token, lambda kind, ident: made) is None


def test_addresses_in_to_and_cc_are_lower_cased() -> None:
    assert addresses_in(RAW, "To", "Cc") == {"dev@lists.test", "bob@example.org"}


def test_verp_local_part_under_64_for_the_longest_list_name_and_largest_id() -> None:
    from listgate.addresses import MAX_LIST_NAME, parse_recipient, valid_list_name

    name = "l" * MAX_LIST_NAME
    assert valid_list_name(name) and not valid_list_name(name + "x")
    info = ListInfo(name, "Long", "lists.test", "https://lists.test")
    for kind in "dgs":
        token = verp_token("secret", kind, 2**31 - 1)  # the largest id an Integer column holds
        address = verp_address(info, token)
        assert len(address.split("@")[0]) < 64
        recipient = parse_recipient(address, "lists.test")
        assert (
            recipient is not None and recipient.list_name == name and recipient.command == "bounce"
        )
        assert read_verp_token("secret", recipient.arg) == (kind, 2**31 - 1)
