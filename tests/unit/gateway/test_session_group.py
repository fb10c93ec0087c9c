"""The archiver reads its session group (/proc/PID/autogroup) before it lowers it: where the kernel
does not group the process by session the file is missing, or present and empty (a process in a
CPU cgroup of its own: a container, a CI runner), and the archiver then keeps to its nice value.
(The CI runner's empty file once made the priority tests fail with an IndexError.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.__main__ import session_group_nice


@pytest.mark.parametrize(
    ("text", "nice"),
    [
        ("/autogroup-42 nice 10\n", 10),
        ("/autogroup-7 nice -5\n", -5),
        ("/autogroup-1 nice 0\n", 0),
        ("", None),  # in a cgroup of its own: the kernel prints nothing
        ("\n", None),
        ("garbled", None),
    ],
)
def test_the_session_group_is_read_or_reported_absent(
    tmp_path: Path, text: str, nice: int | None
) -> None:
    (tmp_path / "42").mkdir()
    (tmp_path / "42" / "autogroup").write_text(text)
    assert session_group_nice(42, proc=tmp_path) == nice


def test_no_autogroup_file_is_no_group(tmp_path: Path) -> None:
    assert session_group_nice(42, proc=tmp_path) is None
