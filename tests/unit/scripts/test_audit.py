"""`make audit` (scripts/audit.py) against a stand-in
pip-audit: it never calls "not audited" clean.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

# A stand-in `python -m pip_audit`: each source answers as ANSWERS[source] says.
STANDIN = """
import json, os, sys
source = sys.argv[sys.argv.index("--vulnerability-service") + 1]
answer = json.loads(os.environ["ANSWERS"])[source]
if answer == "unreachable":
    sys.stderr.write("requests.exceptions.ConnectionError: Max retries exceeded\\n")
    sys.exit(1)
if answer == "broken":
    sys.stderr.write("ERROR:pip_audit._cli:package packaging has duplicate requirements\\n")
    sys.exit(1)
print(json.dumps({"dependencies": answer}))
"""
SKIPPED = [
    {"name": "flask", "skip_reason": "Dependency not found"},
    {"name": "click", "skip_reason": "Dependency not found"},
]
CLEAN = [
    {"name": "flask", "version": "3.1.3", "vulns": []},
    {"name": "click", "version": "8.5.1", "vulns": []},
]
VULNERABLE = [
    {
        "name": "flask",
        "version": "3.1.3",
        "vulns": [{"id": "GHSA-test", "fix_versions": ["3.1.4"]}],
    },
    {"name": "click", "version": "8.5.1", "vulns": []},
]


def audit(tmp_path: Path, answers: dict[str, object]) -> subprocess.CompletedProcess[str]:
    """Run scripts/audit.py on a lock with the stand-in answering."""
    (tmp_path / "pip_audit").mkdir(exist_ok=True)
    (tmp_path / "pip_audit" / "__init__.py").write_text("")
    (tmp_path / "pip_audit" / "__main__.py").write_text(STANDIN)
    lock = tmp_path / "run.txt"
    lock.write_text("flask==3.1.3 \\\n    --hash=sha256:00\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "ANSWERS": json.dumps(answers)}
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "audit.py"), str(lock)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,  # the tests read the exit status
    )


def test_no_reachable_source_says_nothing_was_audited_and_fails(tmp_path: Path) -> None:
    done = audit(tmp_path, {"pypi": SKIPPED, "osv": "unreachable"})
    assert done.returncode == 2
    assert "NOTHING WAS AUDITED" in done.stderr
    assert "knew none of the locked packages" in done.stderr and "cannot be reached" in done.stderr


def test_the_first_usable_source_audits(tmp_path: Path) -> None:
    done = audit(tmp_path, {"pypi": "unreachable", "osv": CLEAN})
    assert done.returncode == 0, done.stderr
    assert (
        "2 locked packages checked against the OSV database" in done.stdout
        and "no known vulnerability" in done.stdout
    )


def test_a_vulnerable_package_is_named_with_its_fix_and_fails(tmp_path: Path) -> None:
    done = audit(tmp_path, {"pypi": VULNERABLE, "osv": CLEAN})
    assert done.returncode == 1
    assert "flask 3.1.3: GHSA-test (fixed in 3.1.4)" in done.stdout


def test_a_pip_audit_failure_is_not_called_unreachable_nor_clean(tmp_path: Path) -> None:
    done = audit(tmp_path, {"pypi": "broken", "osv": "unreachable"})
    assert done.returncode == 2
    assert "could not check" in done.stderr and "duplicate requirements" in done.stderr
