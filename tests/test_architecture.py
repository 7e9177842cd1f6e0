"""The house plan holds: no import cycle in src/, no string dispatch, docs inside the repository.

The layers themselves are import-linter's contract (pyproject.toml, run by `make test`); these
tests check what a layered contract cannot see: cycles inside one room, dynamic imports, and
citations of documents a user who clones the project cannot read.
"""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "crampstats"


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph() -> dict[str, set[str]]:
    """Module -> the crampstats modules it imports (top level and inside functions alike)."""
    modules = {_module_name(p): p for p in SRC.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                    base = f"{base}.{node.module}" if node.module else base
                # `from pkg import sub` imports the submodule when one has that name
                targets = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in modules]
                targets = targets or [base]
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_cycle_finder_finds_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


def test_no_import_cycle_in_src():
    graph = _import_graph()
    assert "crampstats.catalogue.planning" in graph["crampstats.catalogue"]
    assert _cycles(graph) == []


def test_every_package_has_a_public_face():
    for init in SRC.rglob("__init__.py"):
        tree = ast.parse(init.read_text(encoding="utf-8"))
        doc = ast.get_docstring(tree)
        assert doc and doc.strip(), f"{init} has no one-line purpose"
        if init.parent != SRC:
            names = [
                t.id
                for n in tree.body
                for t in (n.targets if isinstance(n, ast.Assign) else [getattr(n, "target", None)])
                if isinstance(t, ast.Name)
            ]
            assert "__all__" in names, f"{init} defines no __all__"


def test_no_string_dispatch_in_src():
    offenders = [
        str(p.relative_to(ROOT))
        for p in SRC.rglob("*.py")
        if re.search(r"\bimport_module\b|__import__\(", p.read_text(encoding="utf-8"))
    ]
    assert offenders == []


def test_no_private_name_imported_across_modules():
    offenders = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("crampstats"):
                private = [a.name for a in node.names if re.match(r"_[^_]", a.name)]
                if private:
                    offenders.append(f"{path.relative_to(ROOT)}: {node.module} {private}")
    assert offenders == []


def test_the_project_cites_only_documents_it_holds():
    tracked = subprocess.run(
        ["git", "ls-files", "src", "workflow", "config", "docs", "README.md", "benchmarks"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    if not tracked:
        pytest.skip("not a git checkout")
    cited: set[str] = set()
    for name in tracked:
        path = ROOT / name
        if not path.is_file():
            continue
        body = path.read_text(encoding="utf-8", errors="replace")
        assert "../shared" not in body, f"{name} cites ../shared"
        cited.update(re.findall(r"\bdocs/[A-Za-z0-9_.-]+\.md\b", body))
    missing = sorted(c for c in cited if not (ROOT / c).is_file())
    assert missing == []
