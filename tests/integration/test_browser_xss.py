"""An XSS corpus rendered in Chromium: script in subjects, names, HTML bodies, filenames,
Message-IDs and search terms. Nothing may execute, with the CSP and without it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pytest

from listgate import lists
from listgate.db import transaction
from tests.support.browser import serving, shot
from tests.support.config import make_settings, migrated
from tests.support.factories import post

if TYPE_CHECKING:  # playwright is imported where a browser starts (tests/support/browser.py)
    from playwright.sync_api import Dialog

pytestmark = [pytest.mark.integration, pytest.mark.browser]

SCRIPT = "<script>window.__xss=(window.__xss||0)+1;alert('xss')</script>"
MIDS = [
    "plain-1@evil.example",
    'q"onmouseover="alert(1)"@evil.example',
    "javascript:alert(1)@evil.example",
]


def _raw(
    subject: str, sender: str, msgid: str, body: bytes, ctype: str = "text/plain; charset=utf-8"
) -> bytes:
    head = (
        f"From: {sender}\r\nTo: dev@lists.test\r\nSubject: {subject}\r\nMessage-ID: <{msgid}>\r\n"
        "Date: Sun, 01 Mar 2026 12:00:00 +0000\r\nMIME-Version: 1.0\r\n"
        f"Content-Type: {ctype}\r\n\r\n"
    )
    return head.encode() + body


def corpus() -> list[bytes]:
    """Hostile mails: each field a place where markup could slip through."""
    html = (
        f"<p>Hello {SCRIPT}<img src=x onerror=alert(2)><svg onload=alert(3)></svg>"
        '<a href="javascript:alert(4)">click</a><iframe src="javascript:alert(5)"></iframe>'
        "<style>body{display:none}</style>"
        '<form action="https://evil.example"><button>go</button></form></p>'
    )
    multipart = (
        b"--b1\r\nContent-Type: text/plain\r\n\r\nSee the file.\r\n"
        b'--b1\r\nContent-Type: text/html\r\nContent-Disposition: attachment; filename="'
        + f'"><img src=x onerror=alert(6)>{SCRIPT}.html'.replace('"', "'").encode()
        + b'"\r\n\r\n'
        + SCRIPT.encode()
        + b"\r\n--b1--\r\n"
    )
    return [
        _raw(
            f"Subject {SCRIPT}",
            f'"{SCRIPT}" <evil@evil.example>',
            MIDS[0],
            f"Body {SCRIPT}\n".encode(),
        ),
        _raw(
            "HTML only",
            '"<svg onload=alert(7)>" <evil2@evil.example>',
            MIDS[1],
            html.encode(),
            "text/html; charset=utf-8",
        ),
        _raw(
            'Re: attachment "><img src=x onerror=alert(8)>',
            "Mallory <m@evil.example>",
            MIDS[2],
            multipart,
            "multipart/mixed; boundary=b1",
        ),
    ]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = make_settings(tmp_path_factory.mktemp("xss"))
    factory = migrated(settings)
    with transaction(factory) as session:
        lists.create(session, "dev")
    for raw in corpus():
        assert post(factory, raw).status == "stored"
    from webarchive import create_app

    with serving(create_app(settings), settings.web_port) as url:
        yield url
    factory.kw["bind"].dispose()


def _pages(url: str) -> list[str]:
    search = quote(SCRIPT + '"><img src=x onerror=alert(9)>')
    return [
        url + p
        for p in (
            "/",
            "/lists/dev/",
            "/threads/1",
            "/threads/1?view=flat",
            "/threads/2",
            "/threads/3",
            *(f"/m/{quote(m, safe='')}" for m in MIDS),
            "/lists/dev/authors/1",
            "/lists/dev/authors/2",
            "/lists/dev/2026/3",
            f"/search?q={search}",
            "/search?q=hello",
            "/search?q=script",
            f"/lists/dev/authors/3?before={search}",
            f"/nothing/{search}",
        )
    ]


DOM_CHECK = """() => {
  const bad = [];
  for (const el of document.querySelectorAll('*')) {
    if (['SCRIPT', 'IFRAME', 'OBJECT', 'EMBED', 'STYLE'].includes(el.tagName)) bad.push(el.tagName);
    for (const a of el.attributes) {
      if (a.name.startsWith('on')) bad.push(el.tagName + ' ' + a.name);
      const url = ['href', 'src', 'action', 'formaction'].includes(a.name);
      if (url && /^\\s*javascript:/i.test(a.value)) bad.push(el.tagName + ' ' + a.name);
    }
  }
  return bad;
}"""


@pytest.mark.parametrize("bypass_csp", [False, True], ids=["with-csp", "escaping-alone"])
def test_nothing_in_the_corpus_executes(site: str, browser: Any, bypass_csp: bool) -> None:
    context = browser.new_context(bypass_csp=bypass_csp)
    context.add_init_script("window.__xss = 0;")
    page = context.new_page()
    dialogs: list[str] = []

    def dismissed(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", dismissed)
    for url in _pages(site):
        page.goto(url)
        assert page.evaluate("window.__xss") == 0, url
        assert page.evaluate(DOM_CHECK) == [], url
    assert dialogs == []
    if not bypass_csp:
        page.goto(site + "/threads/2")
        shot(page, "10-xss-html-body")
    context.close()
