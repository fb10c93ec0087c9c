"""Chromium with a real Celery worker and SMTP sink: the sign-in link comes by mail, and a
reply written on the web reaches the list's subscribers and appears in the thread."""

from __future__ import annotations

import email
from pathlib import Path

import pytest

from listgate import lists
from listgate.config import Settings
from listgate.db import make_engine, session_factory, transaction, writer
from listgate.schema import upgrade
from tests.support.browser import chromium, serving, shot
from tests.support.config import free_port, search, wait_until
from tests.support.factories import make_mail, post
from tests.support.processes import WorkerProcess
from tests.support.sink import SmtpSink, payload

pytestmark = [pytest.mark.integration, pytest.mark.browser]


def _text(data: bytes) -> str:
    msg = email.message_from_bytes(data)
    part = next(p for p in msg.walk() if p.get_content_type() == "text/plain")
    return payload(part).decode(part.get_content_charset() or "utf-8")


def test_sign_in_by_mailed_link_and_reply_reaches_subscribers(
    tmp_path: Path, sink: SmtpSink, chromium_path: str
) -> None:
    port = free_port()
    env = {
        "LISTGATE_DATA_DIR": str(tmp_path / "var"),
        "LISTGATE_DOMAIN": "lists.test",
        "LISTGATE_WEB_LISTEN": f"127.0.0.1:{port}",
        "LISTGATE_SMTP_LISTEN": f"127.0.0.1:{free_port()}",
        "LISTGATE_SECRET_KEY": "browser-mail-secret-0123456789",
        "LISTGATE_OUTBOUND": sink.url,
    }
    settings = Settings.from_env(env)
    engine = make_engine(settings)
    upgrade(engine)
    factory = session_factory(writer(engine))
    with transaction(factory) as session:
        mlist = lists.create(session, "dev", title="Developers")
        lists.subscribe(session, mlist, "subscriber@example.org")
    root = post(
        factory, make_mail("Release plan", msgid="plan@example.org", body="Ship on Friday?\n")
    )
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    from webarchive import create_app

    try:
        with serving(create_app(settings), port) as url, chromium(chromium_path) as browser:
            page = browser.new_page()
            page.goto(f"{url}/threads/{root.thread_id}")
            page.click("text=Sign in")
            page.fill("#address", "writer@example.org")
            page.click("text=Mail me a sign-in link")
            mail = wait_until(lambda: sink.to("writer@example.org"), 30, "the sign-in mail")[-1]
            link = search(r"https?://\S+/signin/\S+", _text(mail.data), 0)
            page.goto(link)
            page.click("main button:has-text('Sign in')")
            page.wait_for_selector("text=You are signed in as writer@example.org")
            assert page.url.endswith(f"/threads/{root.thread_id}")

            page.click("text=Reply here")
            page.fill("#body", "Friday works for me.\n")
            page.click("button:has-text('Send')")
            page.wait_for_selector("text=Friday works for me.")
            shot(page, "11-reply-by-web-with-worker")
            delivered = wait_until(
                lambda: sink.to("subscriber@example.org"), 30, "the reply's copy"
            )[-1].message
            assert delivered["In-Reply-To"] == "<plan@example.org>"
            assert "writer@example.org" in delivered["From"] or "writer" in delivered["From"]
            assert delivered["List-Id"]
            assert "Friday works for me." in _text(delivered.as_bytes())
            page.close()
    finally:
        worker.stop()
        engine.dispose()
