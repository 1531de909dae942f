"""README.md and docs/: every relative link and anchor resolves, and the mkdocs site builds with
warnings as errors (where mkdocs is installed: ``pip install mkdocs==1.6.1``)."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\]\(([^)\s]+)\)")
#: pages other changes add; a link to one is accepted while it does not exist yet
PENDING: set[Path] = set()


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    found, code = set(), False
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            code = not code
        elif not code and line.startswith("#"):
            found.add(_slug(line.lstrip("#")))
    return found


def broken_links(pages: list[Path], root: Path = ROOT) -> list[str]:
    broken = []
    for page in pages:
        for match in LINK.finditer(page.read_text()):
            target = match.group(1)
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            path, _, anchor = target.partition("#")
            resolved = (page.parent / path).resolve() if path else page.resolve()
            if not resolved.exists():
                if resolved not in PENDING:
                    broken.append(f"{page.relative_to(root)}: {target}")
            elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
                broken.append(f"{page.relative_to(root)}: {target} (no such heading)")
    return broken


def test_links_and_anchors_resolve() -> None:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))]
    assert broken_links(pages) == []


def test_a_broken_anchor_is_found(tmp_path) -> None:
    (tmp_path / "design.md").write_text("# Design\n")
    page = tmp_path / "probe.md"
    page.write_text("[x](design.md#no-such-heading) [y](missing.md) [z](design.md#design)\n")
    assert broken_links([page], tmp_path) == [
        "probe.md: design.md#no-such-heading (no such heading)",
        "probe.md: missing.md",
    ]


def test_readme_stays_a_guide() -> None:
    assert len((ROOT / "README.md").read_text().splitlines()) <= 300


@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None, reason="mkdocs is not installed")
def test_docs_site_builds_strict(tmp_path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
