"""The reliability table (docs/reliability.md) from the figures of a soak run.

Usage: `python -m tests.faults.report FIGURES.jsonl docs/reliability.md [ATHERIS-SUMMARY]`
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

HEAD = """# Reliability and security: figures

Written by `make soak` from its last run ({when}, {mode}); do not edit by hand.
Each row is a test in tests/faults/ or tests/integration/test_fuzz_*.py / test_security_*.py that
breaks something for real (SIGKILL, a stopped Redis or PostgreSQL, a full disk, a flood, hostile
input) and then counts what a sender or a reader would notice. Lost and duplicated must be 0.
`make test` runs the short version of each; the security tests (no open relay, tokens, CSRF,
private lists, header injection, downloads) are pass/fail and listed at the end.

| fault or attack | messages / attempts | held | lost | duplicated | recovery (s) | notes |
| --- | ---: | ---: | ---: | ---: | ---: | --- |
"""

SECURITY = """
## Security checks (pass/fail, every run)

- Worker SIGKILL in the middle of a 2,000-recipient fan-out, then restarted: no recipient loses a
  copy, and a second copy only for a wave whose dots went out before its COMMIT returned (SMTP has
  no atomic hand-over; the row above counts them, and it must be 0 here)
  (tests/integration/test_worker_delivery.py, on the embedded broker and on Redis; same size in make
  test, which allows one wave per worker process).
- Relay 4xx then 250: delivered once after a backoff retry; relay 5xx: a bounce recorded, never
  retried (tests/integration/test_worker_delivery.py).
- A relay refusing the message (size, long lines, content filter) suspends nobody: a failed post
  shown to moderators; lines over 998 bytes go out re-encoded and arrive; the gateway takes no more
  than the relay's SIZE (tests/integration/test_worker_refusals.py, test_gateway_relay_size.py).
- No spelling of `next` leaves the site after sign-in, in real Chromium; a saved session cookie is
  dead after sign-out; /metrics without a token only on a loopback listener
  (tests/unit/webarchive/test_redirects.py, test_sessions.py,
  tests/integration/test_browser_redirects.py, test_metrics_access.py).
- No open relay: tests/integration/test_security_relay.py (every foreign spelling refused at RCPT).
- Tokens, CSRF, cookies, private lists, header injection, downloads:
  tests/integration/test_security_web.py.
- SMTP envelope: tests/integration/test_security_envelope.py (an 8-bit MAIL FROM needs SMTPUTF8, at
  most 100 recipients per transaction, each recipient counts against the rate, a private list
  answers RCPT like a missing one, non-ASCII look-alikes of list names are refused).
- Coverage-guided fuzzing of parse + ingest: tests/fuzz/atheris_ingest.py ({atheris}).

## Found by these tests and fixed

- atheris: a NUL byte in a charset name (Content-Type or an RFC 2047 word) raised ValueError out of
  `listgate.mail.parser.parse` — the gateway would have answered 451 to that mail forever.
- slowloris: the SMTP timeout was aiosmtpd's fixed 300 s and closed silently; now
  LISTGATE_SMTP_TIMEOUT, answered with 421 4.4.2.
- header injection: subscribing on the web with CR/LF in the address gave a 500 (not a clear
  message).
- read-only database (issue 17.3): connections opened while the SQLite files, or a PostgreSQL
  database, were read-only stayed in the pool; after a 3 s period 29 of 40 later posts still
  got 451.
- DATA of empty lines without the final dot (17.5): aiosmtpd's bytearray per line grew the gateway
  by 365 MB for 8 MB sent (45x); 12 such connections (72 MB) by 2.9 GB.
- a header folded over 300k lines (17.4) was accepted, and the fan-out parsed it (quadratically)
  while holding SQLite's write lock; a 3,000-deep multipart with `boundary*0=` passed the MIME depth
  check; a bare CR after a folded Subject made the parser lose the Message-ID.
- the envelope (17.6, 17.7, 17.11): an 8-bit MAIL FROM was accepted and then got 451 forever;
  161,500 RCPTs were accepted in one transaction; RCPT told outsiders which private lists exist;
  U+212A KELVIN SIGN folded onto "k" and reached a list.
- bad input in the dialogue (tests/integration/test_gateway_bad_input.py): a DATA with no header
  field (nothing before the final dot, blank lines, text from the first line) got 250 and was
  archived as an empty post; now `554 5.6.0`, counted as `no-header` (and `listgate import`
  refuses it alike). A MAIL FROM or RCPT TO path the email package's parser crashes on (`"`, `a@`,
  `<a@[`, found by hypothesis over path arguments) got `500 Error: (IndexError) ...`, and a RCPT
  reply echoing bytes that are not UTF-8 `500 Error: (UnicodeEncodeError) ...`; now
  `553 5.1.3 Error: malformed address`, and such bytes are shown as `\\xNN`.

## Not covered here

- Dependency audit (pip-audit) is not run: it needs the vulnerability database online.
"""


def render(rows: list[dict], atheris: str) -> str:
    """The Markdown page for these figures."""
    mode = "soak" if any(r.get("soak") for r in rows) else "short"
    out = HEAD.format(when=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), mode=mode)
    for r in rows:
        rec = "" if r.get("recovery_s") is None else f"{r['recovery_s']:.1f}"
        held = "" if r.get("held") is None else r["held"]
        out += (
            f"| {r['scenario']} | {r['attempts']} | {held} | {r['lost']} | {r['duplicated']} "
            f"| {rec} | {r.get('note', '')} |\n"
        )
    return out + SECURITY.format(atheris=atheris)


def main(argv: list[str]) -> int:
    """Read the JSON lines the tests wrote and write the page."""
    if len(argv) < 2:
        sys.stderr.write(
            "usage: python -m tests.faults.report FIGURES.jsonl OUT.md [ATHERIS-SUMMARY]\n"
        )
        return 2
    source = Path(argv[0])
    rows = (
        [json.loads(line) for line in source.read_text().splitlines() if line.strip()]
        if source.exists()
        else []
    )
    rows = list({r["scenario"]: r for r in rows}.values())  # a re-run scenario: its last figures
    Path(argv[1]).parent.mkdir(parents=True, exist_ok=True)
    Path(argv[1]).write_text(render(rows, argv[2] if len(argv) > 2 else "not run"))
    bad = [
        r
        for r in rows
        if r["lost"] or r["duplicated"] or r.get("held", r["attempts"]) != r["attempts"]
    ]
    return 1 if bad or not rows else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
