"""The import graph of the package and of the lab beside it (``experiments/``) has no circle: no
module reaches itself through the imports it makes, at module level or inside functions (a
function-local import only defers a circle). The package never imports the lab."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: the installed library and the lab
PACKAGES = ("dualgate_solo", "experiments")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module of :data:`PACKAGES` -> the modules of :data:`PACKAGES` it imports (``from a.b import
    c`` counts ``a.b.c`` when that is a module, else ``a.b``), including the packages Python runs
    first: importing ``a.b.c`` runs ``a/b/__init__.py`` unless the importer is inside ``a.b``
    already (its own parents always run before it), so a package ``__init__`` that imports a
    module which imports back into that package is a circle, even if no import names it."""
    modules = {module_name(p): p for package in PACKAGES for p in (ROOT / package).rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                targets = [
                    f"{node.module}.{a.name}"
                    if f"{node.module}.{a.name}" in modules
                    else node.module
                    for a in node.names
                ]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            targets += [parent for t in targets for parent in _parents(t)]
            own = {name, *_parents(name)}
            graph[name] |= {t for t in targets if t in modules and t not in own}
    return graph


def _parents(module: str) -> list[str]:
    """``a.b`` and ``a`` for ``a.b.c``."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_checker_finds_a_circle_through_a_package_init(tmp_path, monkeypatch) -> None:
    """``pkg/__init__`` imports ``other.mod``, which imports ``pkg.util``: importing ``other.mod``
    first fails at run time, so the graph must hold the circle."""
    for path, text in {
        "pkg/__init__.py": "from other.mod import X\n",
        "pkg/util.py": "Y = 1\n",
        "other/__init__.py": "",
        "other/mod.py": "from pkg.util import Y\nX = Y\n",
    }.items():
        (tmp_path / path).parent.mkdir(exist_ok=True)
        (tmp_path / path).write_text(text)
    monkeypatch.setattr(__import__(__name__), "ROOT", tmp_path)
    monkeypatch.setattr(__import__(__name__), "PACKAGES", ("pkg", "other"))
    assert circles(import_graph()) == [["other.mod", "pkg"]]


def test_the_checker_finds_a_circle() -> None:
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_package_has_no_import_circle() -> None:
    graph = import_graph()
    assert "dualgate_solo.state_guard" in graph["dualgate_solo.gated.resnet"]
    assert circles(graph) == []


def test_the_library_does_not_import_the_lab() -> None:
    graph = import_graph()
    assert "experiments.runner.protocols" in graph["experiments.runner.grid"]
    lab_imports = {
        module: sorted(t for t in targets if t.startswith("experiments"))
        for module, targets in graph.items()
        if module.startswith("dualgate_solo")
    }
    assert {module: lab for module, lab in lab_imports.items() if lab} == {}


def test_every_module_imports() -> None:
    """A name moved between modules breaks its importers at once (not only in the integration
    run that reaches them); modules whose optional dependency is absent are left out."""
    import importlib

    failures = {}
    for name in sorted(import_graph()):
        if name.endswith("__main__") or ".cpu_shim" in name:
            continue  # the CLI entry runs on import; the shim is a sitecustomize for subprocesses
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as error:
            if (error.name or "").startswith(PACKAGES):
                failures[name] = repr(error)
        except ImportError as error:
            failures[name] = repr(error)
    assert failures == {}
