"""Real bounces from many MTAs: permanent failures vs. delay warnings, and who failed."""

from __future__ import annotations

import pytest

from tests.conftest import DATA as TEST_DATA
from tests.corpora import corpus
from worker.bounces import DELAYED, PERMANENT, TRANSIENT, parse_bounce

DATA = TEST_DATA / "bounces"  # the ones named below; the whole collection is in the corpora
# Delay warnings (DSN Action: delayed, or "will keep trying" notices): these must never count.
WARNINGS = ["dsn_05", "dsn_06", "dsn_07", "dsn_08", "dsn_17", "simple_03", "simple_21", "simple_28",
            "simple_35", "simple_40"]
FAILED = {
    "dsn_10": "anne.person@dom.ain", "dsn_11": "joem@example.com", "dsn_14": "userx@example.com.dk",
    "dsn_18": "email@replaced.net", "postfix_01": "xxxxx@local.ie", "postfix_03": "ttttt@ggggg.com",
    "exim_01": "userx@its.example.nl", "qmail_01": "userx@example.de", "qmail_06": "ntl@xxx.com",
    "yahoo_11": "bad_user@aol.com", "smtp32_06": "absolute_garbage_addr@example.net",
    "simple_01": "bbbsss@example.com", "simple_27": "userx@example.net.py", "newmailru_01": "zzzzz@newmail.ru",
}


@pytest.mark.parametrize("name", WARNINGS)
def test_delay_warnings_are_delayed(name: str) -> None:
    assert parse_bounce((DATA / f"{name}.txt").read_bytes()).kind == DELAYED


@pytest.mark.parametrize("name,address", sorted(FAILED.items()))
def test_failures_are_permanent_and_name_the_recipient(name: str, address: str) -> None:
    report = parse_bounce((DATA / f"{name}.txt").read_bytes())
    assert report.kind in (PERMANENT, TRANSIENT)
    assert address in [a.lower() for a in report.recipients]


def test_whole_corpus_parses_without_error_and_mostly_classifies() -> None:
    files = sorted(corpus("bounces", "data").glob("*.txt"))
    assert len(files) >= 100
    kinds = [parse_bounce(f.read_bytes()).kind for f in files]
    assert kinds.count(PERMANENT) + kinds.count(TRANSIENT) >= 90
    assert kinds.count(DELAYED) >= len(WARNINGS)
