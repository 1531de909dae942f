"""Every published number under ``results/`` says which code made it: a commit and a dirty flag.

A number-bearing JSON file records ``{"commit": <sha>, "dirty": <bool>}`` itself (anywhere in
it, usually as ``"source"`` or a stage record's ``"code"``). Raw outputs of other tools, which
keep their own format (solo-learn's ``args.json`` / ``*.args.json``, ``main_knn.py``'s
``*-results.json``), carry one themselves or are listed in their folder's ``sources.json`` with
their SHA-256 and the stamp of the record that wrote them. Every other file (CSV, figure, log,
table) needs a stamped record in its folder or a folder above it inside ``results/``.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import pytest

from experiments.sources import RAW_OUTPUTS, SOURCES_FILE, file_sha256, find_stamp, write_sources

RESULTS = Path(__file__).resolve().parents[1] / "results"


def _has_number(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return True
    if isinstance(value, dict):
        return any(_has_number(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_number(v) for v in value)
    return False


@cache
def _stamped(path: Path) -> bool:
    try:
        return find_stamp(json.loads(path.read_text())) is not None
    except (UnicodeDecodeError, json.JSONDecodeError):
        return False


def _listed_in_sources(path: Path) -> bool:
    """``path`` is in its folder's ``sources.json`` with its current SHA-256 and the stamp of the
    record named as its writer."""
    sources = path.parent / SOURCES_FILE
    if not sources.is_file():
        return False
    entry = json.loads(sources.read_text())["files"].get(path.name)
    if entry is None or entry["sha256"] != file_sha256(path):
        return False
    record = path.parent / entry["written_by"]
    stamp = find_stamp(json.loads(record.read_text())) if record.is_file() else None
    return stamp is not None and entry["source"] == {k: stamp[k] for k in ("commit", "dirty")}


def _stamped_nearby(path: Path, root: Path) -> bool:
    """A stamped JSON file in ``path``'s folder or a folder above it inside ``root``."""
    for folder in path.parents:
        if any(_stamped(p) for p in folder.glob("*.json") if p != path):
            return True
        if folder == root:
            return False
    return False


def unstamped(root: Path = RESULTS) -> list[str]:
    """The files under ``root`` whose numbers have no commit and dirty flag."""
    _stamped.cache_clear()
    missing = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if path.name == "README.md":
            continue  # prose about the folders; its numbers are checked by test_docs_numbers
        if path.name.endswith(RAW_OUTPUTS):
            ok = _stamped(path) or _listed_in_sources(path)
        elif path.suffix == ".json":
            data = json.loads(path.read_text())
            ok = not _has_number(data) or find_stamp(data) is not None
        else:
            ok = _stamped_nearby(path, root)
        if not ok:
            missing.append(str(path.relative_to(root)))
    return missing


def test_every_published_number_records_commit_and_dirty_flag() -> None:
    assert unstamped() == []


def test_the_check_finds_an_unstamped_file(tmp_path) -> None:
    run = tmp_path / "results" / "bench"
    run.mkdir(parents=True)
    (run / "latency.json").write_text(json.dumps({"median_ms": 3.2}))
    (run / "latency.csv").write_text("median_ms\n3.2\n")
    (run / "args.json").write_text(json.dumps({"batch": 64}))
    assert unstamped(tmp_path / "results") == [
        "bench/args.json",
        "bench/latency.csv",
        "bench/latency.json",
    ]
    (run / "latency.json").write_text(
        json.dumps({"median_ms": 3.2, "source": {"commit": "abc", "dirty": False}})
    )
    assert unstamped(tmp_path / "results") == ["bench/args.json"]  # a stamp beside it is no link
    write_sources(run, {"args.json": "latency.json"})
    assert unstamped(tmp_path / "results") == []
    (run / "args.json").write_text(json.dumps({"batch": 32}))  # edited after it was listed
    assert unstamped(tmp_path / "results") == ["bench/args.json"]
    write_sources(run, {"args.json": "latency.json"})
    (run / "latency.json").write_text(
        json.dumps({"median_ms": 3.2, "source": {"commit": "def", "dirty": False}})
    )  # the writer's record was replaced by another run's
    assert unstamped(tmp_path / "results") == ["bench/args.json"]


def test_sources_refuse_a_writer_without_stamp(tmp_path) -> None:
    (tmp_path / "args.json").write_text("{}")
    (tmp_path / "pretrain.json").write_text(json.dumps({"result": {"x": 1}}))
    with pytest.raises(ValueError, match="pretrain.json records no commit and dirty flag"):
        write_sources(tmp_path, {"args.json": "pretrain.json"})
    assert not (tmp_path / SOURCES_FILE).exists()


@pytest.mark.parametrize("dirty", [None, "no"])
def test_a_dirty_flag_must_be_a_boolean(tmp_path, dirty) -> None:
    (tmp_path / "r.json").write_text(
        json.dumps({"x": 1, "source": {"commit": "a", "dirty": dirty}})
    )
    assert unstamped(tmp_path) == ["r.json"]
