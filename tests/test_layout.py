"""The house's layout: which package may import which, no import cycles inside the service, a service/ folder
grouped by concept, and tools that do not lean on the test suite."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("model", "media", "training", "service", "testkit")
MAY_NOT_IMPORT = {  # package -> the project's packages it must never import
    "model": {"media", "training", "service", "testkit", "tests"},
    "media": {"training", "service", "testkit", "tests"},
    "training": {"service", "testkit", "tests"},
    "service": {"training", "testkit", "tests"},
    "testkit": {"tests"},
    "benchmarks": {"tests"},
    "scripts": {"tests"},
}
MAX_SERVICE_ENTRIES = 12


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside functions (absolute names)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


def files(folder: str) -> list[Path]:
    return sorted(p for p in (ROOT / folder).rglob("*.py") if ".venv" not in p.parts)


@pytest.mark.parametrize("folder", sorted(MAY_NOT_IMPORT))
def test_dependencies_point_one_way(folder):
    bad = [(module_name(p), m) for p in files(folder) for m in imports(p)
           if m.split(".")[0] in MAY_NOT_IMPORT[folder]]
    assert bad == []


def test_the_service_has_no_import_cycle():
    modules = {module_name(p): p for p in files("service")}
    graph = {}
    for name, path in modules.items():
        graph[name] = {m for m in imports(path) if m in modules and m != name and not name.startswith(m + ".")}
    state: dict[str, int] = {}  # 1 = on the path, 2 = done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                raise AssertionError(" -> ".join([*path[path.index(nxt):], nxt]) if nxt in path else nxt)
            if nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def test_the_service_is_grouped_by_concept():
    entries = [p.name for p in (ROOT / "service").iterdir()
               if p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").is_file())]
    assert len(entries) <= MAX_SERVICE_ENTRIES, sorted(entries)
    for package in (p for p in (ROOT / "service").iterdir() if (p / "__init__.py").is_file()):
        doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text()))
        assert doc and len(doc.splitlines()) == 1, f"{package.name}: a one-line docstring says what it holds"
