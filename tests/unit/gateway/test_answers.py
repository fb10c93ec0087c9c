"""What the spool keeps of an answered message, and the row the look-ups append before the answer
(PostgreSQL): the same whenever every recipient accepts the message, never otherwise."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.answers import SPOOLED, Answer, Arrival, Outcome, accepted_by_all
from listgate.admission import DUPLICATE, REFUSED, IngestResult

STATUSES = [*SPOOLED, REFUSED, DUPLICATE, None]  # None: no such list
ARRIVAL = Arrival(b"From: a@example.org\r\n\r\nhi\r\n", "a@example.org", ())


@given(st.lists(st.sampled_from(STATUSES), min_size=1, max_size=4))
def test_the_row_appended_early_is_the_answers_row_exactly_when_every_recipient_accepts(
    statuses: list[str | None],
) -> None:
    addresses = tuple(f"list{n}@lists.test" for n in range(len(statuses)))
    arrival = Arrival(ARRIVAL.raw, ARRIVAL.mail_from, addresses)
    outcomes = tuple(
        Outcome(a, None if s is None else IngestResult(s, a.split("@")[0]))
        for a, s in zip(addresses, statuses, strict=True)
    )
    answer = Answer(None, "m@x", outcomes)
    every_one_accepts = all(s in SPOOLED for s in statuses)
    assert (answer.spooled(arrival) == accepted_by_all(arrival, "m@x")) == every_one_accepts
