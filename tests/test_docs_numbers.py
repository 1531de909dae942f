"""README.md and docs/*.md quote results/ only through markers that scripts/render_docs.py fills
from the cited files; a table cell or number edited by hand (or a results file that changed
without re-rendering) fails here."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest
from script_loader import load_script

ROOT = Path(__file__).resolve().parents[1]


render_docs = load_script("render_docs")


def test_docs_tables_and_numbers_match_their_files() -> None:
    assert render_docs.differences() == []


def test_every_page_quotes_results_through_markers() -> None:
    pages = render_docs.pages()
    assert ROOT / "README.md" in pages and len(pages) > 1
    assert (
        "<!-- results: headline results/grid_cpu/table_mean.csv -->"
        in (ROOT / "README.md").read_text()
    )


@pytest.fixture
def copy(tmp_path) -> Path:
    """README.md, docs/ and the results/ files the pages cite, in ``tmp_path``."""
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    shutil.copytree(ROOT / "results", tmp_path / "results")
    return tmp_path


def test_an_edited_table_cell_fails(copy) -> None:
    readme = copy / "README.md"
    text = readme.read_text()
    row = next(line for line in text.splitlines() if line.startswith("| `vicreg` | paper"))
    cells = row.split(" | ")
    cells[6] = "99.99"  # the linear top-1 cell
    readme.write_text(text.replace(row, " | ".join(cells)))
    found = render_docs.differences(copy)
    assert len(found) == 1 and found[0].startswith("README.md:") and "headline" in found[0]


def test_an_edited_inline_number_fails(copy) -> None:
    page = copy / "docs" / "results.md"
    text = page.read_text()
    marker = text.index("<!-- v: ")
    start = text.index("-->", marker) + 3
    end = text.index("<!-- /v -->", start)
    page.write_text(text[:start] + "12.34" + text[end:])
    found = render_docs.differences(copy)
    assert len(found) == 1 and found[0].startswith("docs/results.md:")


def test_a_changed_results_file_fails(copy) -> None:
    path = copy / "results" / "grid_cpu" / "table_mean.csv"
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    row = next(
        r for r in rows if (r["method"], r["variant"], r["branch"]) == ("vicreg", "paper", "dense")
    )
    row["linear_top1"] = str(float(row["linear_top1"]) + 1)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    assert any("table_mean.csv" in d for d in render_docs.differences(copy))


def test_render_rewrites_a_stale_block(copy) -> None:
    readme = copy / "README.md"
    text = readme.read_text()
    start = text.index("<!-- results: headline")
    end = text.index("<!-- /results -->", start)
    head = text.index("\n", start) + 1
    readme.write_text(text[:head] + "stale\n" + text[end:])
    assert render_docs.differences(copy)
    readme.write_text(render_docs.render(readme.read_text(), copy))
    assert render_docs.differences(copy) == []
    assert readme.read_text() == text


def test_a_number_that_rounds_to_zero_reads_without_a_sign() -> None:
    assert render_docs.fmt("-0.00001", "%.2f") == "0.00"
    assert render_docs.fmt("-0.04", ".1f") == "0.0"
    assert render_docs.fmt("-0.05", ".2f") == "-0.05"
    assert render_docs.fmt("-3", "+.1f") == "-3.0" and render_docs.fmt("0", "+.1f") == "+0.0"
