"""Threading on PostgreSQL: the order-independence
property, and a loop and a variant through real rows.
"""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings

from listgate.config import Settings
from listgate.db import make_engine, session_factory, writer
from tests.support import forests

_example = itertools.count(1)


@hsettings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=forests.cases())
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
