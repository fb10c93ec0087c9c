"""--listen HOST:PORT of the gateway and of the development sink: a port in ASCII digits or a
message naming the option, never another script's digits read as a port nor a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway import sink
from gateway.server import parse_listen
from listgate.config import Settings

NOT_PORTS = ("٢٥٢٥", "२५२५", "２５２５", "²", "65536", "", "25x")


def test_the_gateway_takes_a_port_in_ascii_digits_or_names_the_option(settings: Settings) -> None:
    assert parse_listen("[::1]:2525", settings) == ("::1", 2525)
    assert parse_listen("unix:/run/lg.sock", settings) == Path("/run/lg.sock")
    for port in NOT_PORTS:
        with pytest.raises(ValueError, match=r"^--listen '127\.0\.0\.1:.*': expected HOST:PORT"):
            parse_listen(f"127.0.0.1:{port}", settings)


def test_the_sink_refuses_a_port_it_cannot_read(capsys: pytest.CaptureFixture[str]) -> None:
    for port in NOT_PORTS:
        assert sink.main(["--listen", f"127.0.0.1:{port}"]) == 2
        assert "expected HOST:PORT" in capsys.readouterr().err
