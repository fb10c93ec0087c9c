"""`listgate up`'s summary and port check, without starting anything."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from listgate import launch
from tests.support.config import free_port, make_settings


def test_the_summary_says_lmtp_when_it_listens_for_lmtp(tmp_path: Path) -> None:
    smtp = "\n".join(launch.summary(make_settings(tmp_path), with_demo=False))
    lmtp = "\n".join(launch.summary(make_settings(tmp_path, LISTGATE_LMTP="true"), with_demo=False))
    assert "\n  SMTP     127.0.0.1:" in smtp and "LMTP" not in smtp
    assert "\n  LMTP     127.0.0.1:" in lmtp and "SMTP " not in lmtp


def test_a_relay_that_does_not_answer_is_named_with_the_sink_to_run(tmp_path: Path) -> None:
    port = free_port()
    text = "\n".join(
        launch.summary(
            make_settings(tmp_path, LISTGATE_OUTBOUND=f"smtp://127.0.0.1:{port}"), with_demo=False
        )
    )
    assert f"relay smtp://127.0.0.1:{port} -- nothing answers there now" in text
    assert f"sink --listen 127.0.0.1:{port}" in text


def test_the_summary_of_the_embedded_default_says_where_to_look(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    text = "\n".join(launch.summary(settings, with_demo=True))
    assert f"Maildir {settings.data_dir / 'outbound'}" in text
    assert f"{settings.base_url}/lists/demo/" in text and "listgate status" in text
    assert "reader@example.org" in text and "python3 -c" in text


def test_a_taken_web_port_names_its_variable(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = make_settings(tmp_path, LISTGATE_WEB_LISTEN=f"127.0.0.1:{port}")
        with pytest.raises(
            launch.PortTaken,
            match=f"port {port} on 127.0.0.1 is already in use by another program: stop it, or "
            "set LISTGATE_WEB_LISTEN",
        ):
            launch.check_ports(settings)
    launch.check_ports(settings)  # free again
