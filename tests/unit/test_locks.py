"""The lock files: every package pinned with hashes, in
agreement with pyproject.toml, installed by every path.
"""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
LOCKS = ROOT / "requirements"
PIN = re.compile(r"^([A-Za-z0-9_.-]+)==(\S+) \\$")


def pins(name: str) -> dict[str, str]:
    """package -> version of one lock file (names normalised), checking each has a sha256 hash."""
    found: dict[str, str] = {}
    current = ""
    for line in (LOCKS / name).read_text().splitlines():
        m = PIN.match(line)
        if m:
            current = re.sub(r"[-_.]+", "-", m.group(1)).lower()
            found[current] = m.group(2)
        elif line.strip().startswith("--hash=sha256:"):
            found.setdefault(f"{current}#hashed", "yes")
    unhashed = [p for p in found if "#" not in p and f"{p}#hashed" not in found]
    assert unhashed == [], f"{name}: pinned without a hash: {unhashed}"
    return {k: v for k, v in found.items() if "#" not in k}


def project() -> dict:
    """pyproject.toml."""
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def check(requirements: list[str], locked: dict[str, str], where: str) -> None:
    """Each requirement is pinned in the lock, at a version its range admits."""
    for text in requirements:
        req = Requirement(text)
        name = re.sub(r"[-_.]+", "-", req.name).lower()
        assert name in locked, f"{where}: {req.name} is not in the lock: run `make lock`"
        assert Version(locked[name]) in req.specifier, (
            f"{where}: {name}=={locked[name]} is outside {req}: run `make lock`"
        )


@pytest.mark.parametrize("lock", ["run.txt", "test.txt", "tools.txt"])
def test_every_locked_package_is_pinned_with_hashes_and_names_no_host(lock: str) -> None:
    assert len(pins(lock)) > 10
    text = (LOCKS / lock).read_text()
    assert "://" not in text and "--index-url" not in text and "--find-links" not in text


def test_the_run_lock_matches_pyproject_and_holds_no_test_tool() -> None:
    run = pins("run.txt")
    check(project()["project"]["dependencies"], run, "run.txt")
    check(project()["build-system"]["requires"], run, "run.txt (build-system)")
    assert not {"pytest", "hypothesis", "playwright"} & set(run), (
        "`make run` would install test tools"
    )


def test_the_test_lock_adds_the_test_tools_at_the_run_locks_versions() -> None:
    run, test = pins("run.txt"), pins("test.txt")
    check(
        project()["project"]["dependencies"]
        + project()["project"]["optional-dependencies"]["test"],
        test,
        "test.txt",
    )
    differ = {name: (v, test.get(name)) for name, v in run.items() if test.get(name) != v}
    assert differ == {}, "run.txt and test.txt disagree: run `make lock`"


def test_setuptools_is_past_the_path_traversal_fixes() -> None:
    # CVE-2024-6345 (70.0), CVE-2025-47273 (78.1.1)
    assert Version(pins("run.txt")["setuptools"]) >= Version("78.1.1")
    assert Version(version("setuptools")) >= Version("78.1.1"), (
        "this venv was not installed from the lock: make install"
    )


def test_every_install_path_installs_from_the_locks() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "pip install -qq --require-hashes -r $(RUN_LOCK)" in makefile
    assert "pip install -qq --require-hashes -r $(TEST_LOCK)" in makefile
    assert re.search(r"^run: install-run$", makefile, re.MULTILINE), (
        "`make run` must install only the run lock"
    )
    assert re.search(r"^test: install ", makefile, re.MULTILINE)
    assert "--no-deps --no-build-isolation -e ." in makefile
    assert (
        "pip install --require-hashes -r requirements/run.txt" in (ROOT / "Dockerfile").read_text()
    )
    assert re.search(r"^\s*make test\b", (ROOT / ".ci" / "run").read_text(), re.MULTILINE)
