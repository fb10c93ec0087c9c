"""The gateway's size limit from the relay's answer (the
relay itself: tests/integration/test_gateway_relay_size.py).
"""

from __future__ import annotations

from gateway.relaysize import HEADROOM, SizeLimit
from listgate.config import Settings


def limit_after(settings: Settings, *answers: int | None) -> list[int]:
    """The limit after each of the relay's successive answers (None: it could not be asked)."""
    replies = iter(answers)
    size = SizeLimit(
        settings.with_(outbound="smtp://127.0.0.1:1", max_message_size=1_000_000),
        probe=lambda _url: next(replies),
    )
    return [size.check() for _ in answers]


def test_the_limit_is_the_relays_less_headroom_never_above_the_setting(settings: Settings) -> None:
    assert limit_after(settings, 500_000) == [500_000 - HEADROOM]
    assert limit_after(settings, 50_000_000) == [1_000_000]  # the relay takes more than we allow
    assert limit_after(settings, 0) == [1_000_000]  # SIZE 0 or none: the relay states no limit
    # a tiny limit: at least half of it for the post
    assert limit_after(settings, 20_000) == [10_000]


def test_a_relay_that_cannot_be_asked_leaves_the_last_limit(settings: Settings) -> None:
    assert limit_after(settings, None) == [1_000_000]
    assert limit_after(settings, 300_000, None, 400_000) == [300_000 - HEADROOM] * 2 + [
        400_000 - HEADROOM
    ]


def test_a_maildir_outbound_is_never_asked(settings: Settings) -> None:
    asked: list[str] = []

    def probe(url: str) -> int:
        asked.append(url)
        return 1

    size = SizeLimit(settings, probe=probe)
    size.start()
    size.stop()
    assert asked == [] and size.current == settings.max_message_size
