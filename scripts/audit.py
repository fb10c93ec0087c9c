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


UNREACHABLE = (
    "ConnectionError",
    "Max retries",
    "NameResolution",
    "timed out",
    "ProxyError",
    "SSLError",
)


def audit(source: str, lock: str) -> tuple[str, dict | None]:
    """Run pip-audit on one lock (locks may pin different versions).

    Returns (why it failed, or "") and its report.
    """
    args = [
        sys.executable,
        "-m",
        "pip_audit",
        "--vulnerability-service",
        source,
        "--disable-pip",
        "--require-hashes",
        "--progress-spinner",
        "off",
        "--format",
        "json",
        "--timeout",
        "20",
        "-r",
        lock,
    ]
    done = subprocess.run(args, capture_output=True, text=True, timeout=900, check=False)
    try:
        report = json.loads(done.stdout)
    except ValueError:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1][:200]
        if any(word in done.stderr for word in UNREACHABLE):
            return f"cannot be reached ({last})", None
        return f"could not check {lock} (pip-audit: {last})", None
    deps = report.get("dependencies", [])
    if deps and all("skip_reason" in d for d in deps):
        return "answered, but knew none of the locked packages", None
    return "", report


def main(locks: list[str]) -> int:
    """Audit every lock against the first source that works for all of them; the exit status."""
    for lock in locks:
        if not Path(lock).is_file():
            print(f"make audit: {lock} is missing (make lock writes it)", file=sys.stderr)
            return 2
    failures = []
    for source, name in SOURCES:
        results = [audit(source, lock) for lock in locks]
        why = next((w for w, _ in results if w), "")
        if why:
            failures.append(f"{name} {why}")
            continue
        # type: ignore[index]
        return report(
            name, {(d["name"], d.get("version")): d for _, r in results for d in r["dependencies"]}
        )
    print("make audit: NOTHING WAS AUDITED: no advisory source could be used:", file=sys.stderr)
    for failure in failures:
        print(f"  {failure}", file=sys.stderr)
    return 2


def report(name: str, deps: dict) -> int:  # type: ignore[type-arg]
    """Print what was checked and what is vulnerable; 1 when something is."""
    vulnerable = [d for d in deps.values() if d.get("vulns")]
    skipped = sorted({d["name"] for d in deps.values() if "skip_reason" in d})
    print(
        f"make audit: {len(deps) - len(skipped)} locked packages checked against {name}"
        + (f"; not checked: {', '.join(skipped)}" if skipped else "")
    )
    for dep in vulnerable:
        for vuln in dep["vulns"]:
            fixed = ", ".join(vuln.get("fix_versions", [])) or "no fixed release yet"
            print(f"  {dep['name']} {dep['version']}: {vuln['id']} (fixed in {fixed})")
    print(
        "make audit: no known vulnerability"
        if not vulnerable
        else f"make audit: {len(vulnerable)} vulnerable package(s): "
        "raise their ranges in pyproject.toml, then make lock"
    )
    return 1 if vulnerable else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
