"""Passed / failed / skipped test counts per test directory, and their time, from a JUnit XML
report (``pytest --junitxml``); ``.ci/run`` prints them after the test run.

    python scripts/test_counts.py report.xml
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from pathlib import Path


def counts(report: Path) -> dict[str, Counter]:
    """Test directory (``tests``, ``tests/integration``) -> counts of ``passed``, ``failed``,
    ``skipped`` and the summed ``seconds``."""
    table: dict[str, Counter] = defaultdict(Counter)
    for case in ET.parse(report).iter("testcase"):
        module = case.get("classname", "").split(".")
        directory = "/".join(module[:-1]) or "."
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error"):
                outcome = "failed"
            elif child.tag == "skipped":
                outcome = "skipped"
        table[directory][outcome] += 1
        table[directory]["seconds"] += float(case.get("time", 0))
    return dict(table)


def main(argv: list[str]) -> int:
    print(f"{'directory':24} {'passed':>7} {'failed':>7} {'skipped':>8} {'seconds':>8}")
    for directory, c in sorted(counts(Path(argv[0])).items()):
        print(
            f"{directory:24} {c['passed']:7d} {c['failed']:7d} {c['skipped']:8d} "
            f"{c['seconds']:8.0f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
