"""Header names listgate writes on the mail it sends and checks on the mail it receives.

Apart from listgate/ingest.py, so the worker stamps them without importing ingest.
"""

from __future__ import annotations

LOOP_HEADER = "X-Listgate-Loop"  # on all mail listgate sends (its domain); coming back: a loop
