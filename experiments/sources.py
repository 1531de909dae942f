"""``sources.json``: which code made the published files that cannot say it themselves.

A results file records a stamp, ``{"commit": <sha>, "dirty": <bool>}``
(:func:`dualgate_solo.provenance.source_record`). Files that keep another tool's format
(solo-learn's ``args.json``, ``main_knn.py``'s ``*-results.json``, Lightning's metrics) cannot
hold one; :func:`write_sources` ties each of them, by SHA-256, to the stamped record written with
it, so a later edit of the file shows too.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

#: name endings of the JSON files that keep a tool's own format (solo-learn's ``args.json`` and
#: ``linear-<branch>.args.json``, ``main_knn.py``'s ``*-results.json``): no stamp fits in them
RAW_OUTPUTS = ("args.json", "-results.json")
#: per folder: ``{"files": {name: {"sha256", "written_by", "source"}}}``, see :func:`write_sources`
SOURCES_FILE = "sources.json"


def find_stamp(value: object) -> dict | None:
    """The first ``{"commit": str, "dirty": bool}`` mapping inside a parsed JSON ``value``."""
    if isinstance(value, dict):
        if isinstance(value.get("commit"), str) and isinstance(value.get("dirty"), bool):
            return value
        children = list(value.values())
    elif isinstance(value, list):
        children = value
    else:
        return None
    for child in children:
        found = find_stamp(child)
        if found is not None:
            return found
    return None


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of the bytes of ``path``."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def write_sources(folder: Path, written_by: Mapping[str, str]) -> Path:
    """Write ``folder/sources.json``: each file of ``written_by`` with its SHA-256 and the stamp
    of the record written with it.

    Args:
        folder: the folder holding the files.
        written_by: ``{file: record}``, both relative to ``folder``; ``record`` is a JSON file
            that holds a stamp (:func:`find_stamp`).

    Returns:
        The path written, ``{"files": {file: {"sha256", "written_by", "source": {"commit",
        "dirty"}}}}``.

    Raises:
        ValueError: a record holds no stamp.
    """
    folder = Path(folder)
    files = {}
    for name, record in sorted(written_by.items()):
        stamp = find_stamp(json.loads((folder / record).read_text()))
        if stamp is None:
            raise ValueError(f"{folder / record} records no commit and dirty flag")
        files[name] = {
            "sha256": file_sha256(folder / name),
            "written_by": record,
            "source": {"commit": stamp["commit"], "dirty": stamp["dirty"]},
        }
    path = folder / SOURCES_FILE
    path.write_text(json.dumps({"files": files}, indent=2) + "\n")
    return path
