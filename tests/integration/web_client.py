"""A browser-like HTTP client for tests against a
running web archive: cookies, forms, CSRF tokens.
"""

from __future__ import annotations

import html
import http.cookiejar
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Page:
    """One answer: status, final URL (after redirects) and body."""

    status: int
    url: str
    body: str

    def forms(self, action_part: str) -> list[str]:
        """The actions of the page's POST forms whose action contains action_part."""
        return [
            html.unescape(a)
            for a in re.findall(r'<form method="post" action="([^"]+)"', self.body)
            if action_part in html.unescape(a)
        ]


class WebClient:
    """Keeps the session cookie, follows redirects,
    sends the CSRF token of the page a form is on.
    """

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def get(self, path: str) -> Page:
        """GET a path (or a full URL on this site)."""
        return self._open(urllib.request.Request(self._url(path)))

    def post(
        self, path: str, data: dict[str, str] | None = None, on_page: str | None = None
    ) -> Page:
        """POST a form; with on_page, the form's page
        is loaded first and its CSRF token sent along.
        """
        fields = dict(data or {})
        if on_page is not None:
            found = _TOKEN.search(self.get(on_page).body)
            assert found, f"no CSRF token on {on_page}"
            fields["csrf_token"] = found.group(1)
        body = urllib.parse.urlencode(fields).encode()
        return self._open(urllib.request.Request(self._url(path), data=body, method="POST"))

    def _url(self, path: str) -> str:
        return path if path.startswith("http") else self.base + path

    def _open(self, req: urllib.request.Request) -> Page:
        try:
            with self.opener.open(req, timeout=30) as resp:
                return Page(resp.status, resp.geturl(), resp.read().decode("utf-8", "replace"))
        except urllib.error.HTTPError as exc:
            return Page(exc.code, req.full_url, exc.read().decode("utf-8", "replace"))
