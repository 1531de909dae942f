"""scripts/test_counts.py: per-directory outcome counts of a JUnit report."""

from __future__ import annotations

from pathlib import Path

from script_loader import load_script

ROOT = Path(__file__).resolve().parents[1]


def test_counts_per_directory(tmp_path):
    module = load_script("test_counts")
    report = tmp_path / "junit.xml"
    report.write_text(
        "<testsuites><testsuite>"
        '<testcase classname="tests.test_a" name="t1" time="1.5"/>'
        '<testcase classname="tests.test_a" name="t2" time="0.5"><failure/></testcase>'
        '<testcase classname="tests.integration.test_b" name="t3" time="2"><skipped/></testcase>'
        '<testcase classname="tests.integration.test_b" name="t4" time="3"/>'
        "</testsuite></testsuites>"
    )
    table = module.counts(report)
    assert table["tests"] == {"passed": 1, "failed": 1, "seconds": 2.0}
    assert table["tests/integration"] == {"passed": 1, "skipped": 1, "seconds": 5.0}
