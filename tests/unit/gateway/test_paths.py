"""MAIL/RCPT paths: our quick reading of the plain shape answers exactly as aiosmtpd's parser."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiosmtpd.smtp import SMTP
from hypothesis import example, given
from hypothesis import strategies as st

from gateway.paths import plain_path


class _Hooks:
    """aiosmtpd needs a handler object; these tests only read paths."""


def _parser() -> SMTP:
    async def built() -> SMTP:
        return SMTP(_Hooks())

    return asyncio.run(built())


AIOSMTPD = _parser()
# Characters that matter to the grammar, a few ordinary ones, and some it must not take for spaces.
TRICKY = 'aZ09.@<>()[]"\\ \t,:;!#%+=_`{|}~-é\x0b\u00a0\r\n'
ATOM = st.text("abcXYZ019!#$%&'*+/=?^_`{|}~-", min_size=1, max_size=5)
PART = st.one_of(ATOM, st.lists(st.one_of(ATOM, st.just("")), min_size=1, max_size=4).map(".".join))
REST = st.one_of(
    st.just(""), st.text(TRICKY, max_size=6), st.text(TRICKY, max_size=3).map(" {}".format)
)


def _outcome(read: Callable[[str], tuple[str | None, str | None]], arg: str) -> object:
    """What read gives, or the exception it raises (the email package raises on some shapes)."""
    try:
        return read(arg)
    except Exception as exc:  # noqa: BLE001 - compared, not swallowed
        return type(exc)


def _ours(arg: str) -> tuple[str | None, str | None]:
    plain = plain_path(arg)
    return plain if plain is not None else AIOSMTPD._getaddr(arg)


@given(local=PART, domain=PART, rest=REST)
@example(local="a", domain="b", rest=" (comment) SIZE=1")
@example(local="a", domain="b", rest="\tSIZE=1")
@example(local="a", domain="b.", rest="")
@example(local=".a", domain="b", rest="")
def test_an_angle_path_reads_as_aiosmtpd_reads_it(local: str, domain: str, rest: str) -> None:
    arg = f"<{local}@{domain}>{rest}"
    assert _outcome(_ours, arg) == _outcome(AIOSMTPD._getaddr, arg)


@given(st.text(TRICKY, max_size=24))
def test_any_argument_reads_as_aiosmtpd_reads_it(arg: str) -> None:
    assert _outcome(_ours, arg) == _outcome(AIOSMTPD._getaddr, arg)


def test_the_plain_shape_is_read_without_the_parser() -> None:
    assert plain_path("<poster@example.org> SIZE=4215 BODY=8BITMIME") == (
        "poster@example.org",
        "SIZE=4215 BODY=8BITMIME",
    )
    assert plain_path("<dev+subscribe@lists.test>") == ("dev+subscribe@lists.test", "")
    for other in ('<"a b"@x>', "<>", "<@relay:a@b>", "<jörg@example.org>", "a@b", "<a@[1.2.3.4]>"):
        assert plain_path(other) is None, other
