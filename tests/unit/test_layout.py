"""The source tree's layering, checked from the code's own imports, so it cannot decay silently:
no import circles among vrlab's modules, one meaning per public class name, no private name
reached across modules, no ``assert`` guarding run-time state (``python -O`` drops them), and
no very long module without a stated reason. Reads the files with ``ast``; imports nothing of
vrlab."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PKG = SRC / "vrlab"
#: a module longer than this must say in its docstring why it is one piece
LONG_MODULE = 450
ONE_PIECE = "One piece:"


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _resolve(module: str, is_package: bool, level: int, name: str | None) -> str:
    """The absolute module a relative import names."""
    if level == 0:
        return name or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def _imports(module: str, path: Path, known: set[str]) -> set[str]:
    """Every vrlab module this one imports, at the top or inside a function (a circle closed
    by a function-local import is still a circle), with the packages each import runs."""
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, path.name == "__init__.py", node.level, node.module)
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base
                       for a in node.names]
        for t in targets:
            parts = t.split(".")
            for i in range(1, len(parts) + 1):
                prefix = ".".join(parts[:i])
                if prefix in known and prefix != module:
                    found.add(prefix)
    return found


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods)
    return {m: _imports(m, p, known) for m, p in mods.items()}


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_walker_sees_the_imports() -> None:
    """The graph is not empty by accident: known edges are there."""
    g = _graph()
    assert len(g) > 40
    assert "vrlab.plan.model" in g["vrlab.plan.wiring"]
    assert "vrlab.errors" in g["vrlab.net"]
    assert "vrlab.engines.ebpf.engine" in g["vrlab.testbed"]
    # a package counts as imported by any import of its submodules
    assert "vrlab.plan" in g["vrlab.ledger"]


def test_the_circle_finder_finds_circles() -> None:
    g = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert _circles(g) == [["a", "b", "c"]]
    assert _circles({"a": {"b"}, "b": set()}) == []


def test_no_import_circles() -> None:
    circles = _circles(_graph())
    assert circles == [], "import circles among vrlab modules: " + "; ".join(
        " <-> ".join(c) for c in circles)


def test_package_faces_import_nothing() -> None:
    """A package's ``__init__`` holds only its docstring: importing one submodule (the ledger
    imports ``vrlab.plan.naming``) must not pull in the package's builders."""
    for path in PKG.rglob("__init__.py"):
        if path.parent == PKG:
            continue  # vrlab itself carries its version
        tree = ast.parse(path.read_text())
        code = [n for n in tree.body
                if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))]
        assert code == [], f"{path.relative_to(SRC)} should hold only a docstring"


def _public_classes() -> dict[str, list[str]]:
    where: dict[str, list[str]] = defaultdict(list)
    for mod, path in _modules().items():
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                where[node.name].append(mod)
    return where


def test_one_meaning_per_public_class_name() -> None:
    where = _public_classes()
    assert "EbpfEngine" in where and "UserspaceEngine" in where
    twice = {name: mods for name, mods in where.items() if len(mods) > 1}
    assert twice == {}, f"public classes defined in several modules: {twice}"


def test_no_private_names_across_modules() -> None:
    """What another module uses is public: ``from x import _y`` and ``x._y`` are refused."""
    mods = _modules()
    bad = []
    for mod, path in mods.items():
        tree = ast.parse(path.read_text())
        imported_modules = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("vrlab"):
                for a in node.names:
                    full = f"{node.module}.{a.name}"
                    if full in mods:
                        imported_modules.add(a.asname or a.name)
                    elif a.name.startswith("_") and not a.name.startswith("__"):
                        bad.append(f"{mod}: from {node.module} import {a.name}")
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in imported_modules and node.attr.startswith("_")
                    and not node.attr.startswith("__")):
                bad.append(f"{mod}: {node.value.id}.{node.attr}")
    assert bad == []


def test_no_assert_in_the_package() -> None:
    """An ``assert`` vanishes under ``python -O``: run-time checks raise real errors."""
    found = [f"{p.relative_to(SRC)}:{n.lineno}" for p in PKG.rglob("*.py")
             for n in ast.walk(ast.parse(p.read_text())) if isinstance(n, ast.Assert)]
    assert found == []


@pytest.mark.parametrize("path", sorted(PKG.rglob("*.py")), ids=lambda p: str(p.relative_to(PKG)))
def test_long_modules_say_why(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    if lines <= LONG_MODULE:
        return
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    assert ONE_PIECE in doc, (f"{path.relative_to(SRC)} has {lines} lines: split it, or say "
                              f"in its docstring why it is one piece ('{ONE_PIECE} ...')")
