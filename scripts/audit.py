"""`make audit`: pip-audit the lock files against the first advisory source that answers.

Exit 0: every locked package was checked and none has a known vulnerability.
Exit 1: vulnerabilities were found (listed).
Exit 2: NOTHING WAS AUDITED: no advisory source could be reached, or the one reached knew none
of the packages (a registry mirror without the vulnerability data answers "not found" for all).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SOURCES = (("pypi", "PyPI's vulnerability data"), ("osv", "the OSV database"))


def audit(source: str, locks: list[str]) -> tuple[str, dict | None]:
    """Run pip-audit once; (why it failed, or "") and its JSON report."""
    args = [sys.executable, "-m", "pip_audit", "--vulnerability-service", source, "--disable-pip", "--require-hashes",
            "--progress-spinner", "off", "--format", "json", "--timeout", "20"]
    for lock in locks:
        args += ["-r", lock]
    done = subprocess.run(args, capture_output=True, text=True, timeout=900)
    try:
        report = json.loads(done.stdout)
    except ValueError:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return f"cannot be reached ({last[:200]})", None
    deps = report.get("dependencies", [])
    if deps and all("skip_reason" in d for d in deps):
        return "answered, but knew none of the locked packages", None
    return "", report


def main(locks: list[str]) -> int:
    """Audit against each source in turn until one works; the exit status."""
    for lock in locks:
        if not Path(lock).is_file():
            print(f"make audit: {lock} is missing (make lock writes it)", file=sys.stderr)
            return 2
    failures = []
    for source, name in SOURCES:
        why, report = audit(source, locks)
        if report is None:
            failures.append(f"{name} {why}")
            continue
        deps = report["dependencies"]
        vulnerable = [d for d in deps if d.get("vulns")]
        skipped = [d["name"] for d in deps if "skip_reason" in d]
        print(f"make audit: {len(deps) - len(skipped)} locked packages checked against {name}"
              + (f"; not checked: {', '.join(skipped)}" if skipped else ""))
        for dep in vulnerable:
            for vuln in dep["vulns"]:
                fixed = ", ".join(vuln.get("fix_versions", [])) or "no fixed release yet"
                print(f"  {dep['name']} {dep['version']}: {vuln['id']} (fixed in {fixed})")
        print("make audit: no known vulnerability" if not vulnerable else
              f"make audit: {len(vulnerable)} vulnerable package(s): raise their ranges in pyproject.toml, then make lock")
        return 1 if vulnerable else 0
    print("make audit: NOTHING WAS AUDITED: no advisory source could be used:", file=sys.stderr)
    for failure in failures:
        print(f"  {failure}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
