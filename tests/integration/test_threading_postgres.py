"""Threading on PostgreSQL: the order-independence
property, and a loop and a variant through real rows; a variant's second copy a duplicate.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from listgate import lists
from listgate.config import Settings
from listgate.db import make_engine, session_factory, transaction, writer
from listgate.ingest import DUPLICATE, VARIANT
from listgate.models import MessageVariant
from tests.support import forests
from tests.support.factories import make_mail, post
from tests.support.searches import TIMEOUT, settings_for

_example = itertools.count(1)


@pytest.mark.timeout(TIMEOUT)  # room for hypothesis to shrink a failure (up to 5 min)
@settings_for(examples=15)
@given(case=forests.cases())
@pytest.mark.long(44)
def test_the_forest_does_not_depend_on_arrival_order_on_postgresql(
    pg_settings: Settings, case: forests.Case
) -> None:
    """The same property as on SQLite (tests/unit/listgate/test_threads.py),
    on PostgreSQL's collation and types.
    """
    engine = make_engine(pg_settings)
    try:
        forests.check(session_factory(writer(engine)), case, f"pg{next(_example)}")
    finally:
        engine.dispose()


def test_other_bytes_under_a_taken_message_id_are_a_variant_once_on_postgresql(
    pg_db: sessionmaker[Session],
) -> None:
    """The second copy of a variant is a duplicate, as on SQLite: psycopg tells an INSERT's row
    count only when asked, and "don't know" (-1) read as "added" made it a variant again."""
    with transaction(pg_db) as session:
        lists.create(session, "dev")
    first = post(pg_db, make_mail("Plan", msgid="plan@x.test"))
    other = make_mail("Plan", msgid="plan@x.test", body="The same post, with a footer.\n")
    assert post(pg_db, other).status == VARIANT
    again = post(pg_db, other)
    assert (again.status, again.message_pk) == (DUPLICATE, first.message_pk)
    with pg_db() as session:
        assert session.scalar(select(func.count()).select_from(MessageVariant)) == 1
