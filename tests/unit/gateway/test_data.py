"""DATA reading: one buffer, dot-unstuffing, the per-message limits and the shared memory budget."""

from __future__ import annotations

import asyncio

from gateway.data import CHUNK, FREE_BYTES, DataBudget, Incoming

MB = 1024 * 1024


def _read(
    data: bytes,
    budget: DataBudget,
    client: str = "192.0.2.1",
    max_size: int = MB,
    max_line: int = 1000,
) -> Incoming:
    async def run() -> Incoming:
        reader = asyncio.StreamReader(limit=max_line + 3)
        reader.feed_data(data)
        reader.feed_eof()
        incoming = Incoming(budget, client, max_size, max_line)
        await incoming.read(reader)
        return incoming

    return asyncio.run(run())


def test_lines_are_dot_unstuffed_into_one_message() -> None:
    incoming = _read(b"Subject: x\r\n\r\n..leading dot\r\nplain\r\n.\r\n", DataBudget(8 * MB, MB))
    assert incoming.problem == ""
    assert incoming.content() == b"Subject: x\r\n\r\n.leading dot\r\nplain\r\n"


def test_a_message_over_the_size_limit_is_dropped_and_read_to_its_end() -> None:
    budget = DataBudget(8 * MB, MB)
    incoming = _read(
        b"x" * 900 + b"\r\n" + (b"y" * 900 + b"\r\n") * 2000 + b".\r\nNOOP\r\n", budget, max_size=MB
    )
    assert incoming.problem == "too-big"
    assert budget.held == 0


def test_a_line_over_the_limit_is_refused_even_past_the_readers_buffer() -> None:
    incoming = _read(
        b"ok\r\n" + b"z" * 5000 + b"\r\nafter\r\n.\r\n", DataBudget(8 * MB, MB), max_line=1000
    )
    assert incoming.problem == "line-too-long"


def test_small_messages_never_draw_on_the_budget() -> None:
    budget = DataBudget(MB, MB)
    budget.take("192.0.2.9", budget.total)  # someone else holds everything
    incoming = _read(b"a" * 100 + b"\r\n" * (FREE_BYTES // 2 - 200) + b".\r\n", budget)
    assert incoming.problem == "" and len(incoming.content()) < FREE_BYTES


def test_past_the_budget_the_message_is_refused_and_what_it_held_is_given_back() -> None:
    budget = DataBudget(2 * MB, MB)  # one client: max(2 MB / 4, 1 MB + CHUNK)
    incoming = _read(b"\r\n" * (4 * MB), budget, max_size=8 * MB)
    assert incoming.problem == "over-budget"
    assert budget.held == 0


def test_one_client_address_holds_at_most_its_share() -> None:
    budget = DataBudget(64 * MB, MB)
    assert budget.per_client == 16 * MB
    assert budget.take("a", 16 * MB) and not budget.take("a", CHUNK)
    assert budget.take("b", CHUNK)  # another address still has room
    budget.give_back("a", 16 * MB)
    assert budget.take("a", CHUNK)


def test_release_gives_back_what_a_finished_message_held() -> None:
    budget = DataBudget(8 * MB, MB)
    incoming = _read(b"b" * 500 + b"\r\n" * 200_000 + b".\r\n", budget)
    assert incoming.problem == "" and budget.held > 0
    incoming.release()
    assert budget.held == 0


def test_a_line_longer_than_a_chunk_is_fully_accounted() -> None:
    budget = DataBudget(64 * MB, 4 * MB)
    incoming = _read(b"L" * (3 * CHUNK) + b"\r\n.\r\n", budget, max_size=4 * MB, max_line=4 * CHUNK)
    assert incoming.problem == ""
    assert budget.held >= len(incoming.content()) - FREE_BYTES


def test_a_line_still_being_received_is_held_within_the_budget() -> None:
    """One line of 3 MB arriving without its end (max_line 4 MB): what the message holds is in
    the budget meanwhile, not outside it; past max_line it is dropped and nothing is held."""
    budget = DataBudget(64 * MB, 8 * MB)

    async def run() -> tuple[int, int, str]:
        reader = asyncio.StreamReader(limit=16 * 1024)
        incoming = Incoming(budget, "192.0.2.1", 8 * MB, 4 * MB)
        reading = asyncio.ensure_future(incoming.read(reader))
        for _ in range(48):
            reader.feed_data(b"x" * (64 * 1024))
            await asyncio.sleep(0)
        held_mid_line = budget.held
        for _ in range(32):  # 5 MB: past max_line, the line is dropped as it comes
            reader.feed_data(b"x" * (64 * 1024))
            await asyncio.sleep(0)
        held_past_it = budget.held
        reader.feed_data(b"\r\n.\r\n")
        await reading
        return held_mid_line, held_past_it, incoming.problem

    held_mid_line, held_past_it, problem = asyncio.run(run())
    assert held_mid_line >= 3 * MB - FREE_BYTES - CHUNK
    assert held_past_it == 0 and problem == "line-too-long"
