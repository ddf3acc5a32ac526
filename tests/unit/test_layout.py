"""The package's layout stays readable: no module over MAX_LINES lines, and no import cycle
among jupyter_collab's modules (each module can be read, and tested, after the ones it
imports). Imports are read with `ast`, all of them: relative ones, those under
`if TYPE_CHECKING:` and those inside functions, since a cycle hidden in a function or a
type hint is still two modules that cannot be understood one before the other."""

from __future__ import annotations

import ast
from collections import deque
from pathlib import Path

from ..harness import REPO

PACKAGE = "jupyter_collab"
MAX_LINES = 400


def modules(package: Path = REPO / PACKAGE) -> dict[str, Path]:
    """Dotted module name -> file, for every module of `package` (a package is its __init__)."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imported(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The package's modules that module `name` imports, anywhere in it."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the package, one level up per extra dot
                base = package.rsplit(".", node.level - 1)[0]
                origin = f"{base}.{node.module}" if node.module else base
            else:
                origin = node.module or ""
            # `from pkg import sub` imports the module pkg.sub; `from mod import name`, mod.
            targets.update(f"{origin}.{alias.name}" for alias in node.names)
    edges = set()
    for target in targets:
        while target and target not in known:  # the longest prefix that is a module
            target = target.rpartition(".")[0]
        if target and target != name:
            edges.add(target)
    return edges


def import_graph(package: Path = REPO / PACKAGE) -> dict[str, set[str]]:
    known = modules(package)
    return {name: imported(name, path, known) for name, path in known.items()}


def cycles(graph: dict[str, set[str]]) -> list[str]:
    """Each group of modules that import each other (a strongly connected component of
    more than one module), described by its members and one cycle through it."""
    found = []
    seen: set[str] = set()
    for start in sorted(graph):
        if start in seen:
            continue
        group = {name for name in _reachable(graph, start) if start in _reachable(graph, name)}
        seen |= group
        if len(group) > 1:
            example = " -> ".join(_path_back(graph, start, group))
            found.append(f"{', '.join(sorted(group))} (for one: {example})")
    return found


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    found, todo = {start}, [start]
    while todo:
        for target in graph[todo.pop()] - found:
            found.add(target)
            todo.append(target)
    return found


def _path_back(graph: dict[str, set[str]], start: str, group: set[str]) -> list[str]:
    """The shortest import path from `start` back to itself within `group`."""
    previous: dict[str, str] = {}
    queue = deque(sorted(graph[start] & group))
    for name in queue:
        previous[name] = start
    while queue:
        name = queue.popleft()
        if name == start:
            break
        for target in sorted(graph[name] & group):
            if target not in previous:
                previous[target] = name
                queue.append(target)
    path = [start]
    while len(path) == 1 or path[-1] != start:
        path.append(previous[path[-1]])
    return path[::-1]


def test_the_reader_sees_every_kind_of_import(tmp_path: Path):
    files = {
        "__init__.py": "",
        "a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .b import B\n",
        "b.py": "def late():\n    from pkg import c\n",
        "c.py": "import os\nfrom . import a\n",
        "sub/__init__.py": "",
        "sub/d.py": "from ..c import name\nimport pkg.sub\nimport pkg.sub.d\n",
    }
    for name, text in files.items():
        (tmp_path / "pkg" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "pkg" / name).write_text(text)
    graph = import_graph(tmp_path / "pkg")
    assert graph == {
        "pkg": set(),
        "pkg.a": {"pkg.b"},
        "pkg.b": {"pkg.c"},
        "pkg.c": {"pkg.a"},
        "pkg.sub": set(),
        "pkg.sub.d": {"pkg.c", "pkg.sub"},
    }
    assert cycles(graph) == ["pkg.a, pkg.b, pkg.c (for one: pkg.a -> pkg.b -> pkg.c -> pkg.a)"]


def test_no_module_is_over_the_line_limit():
    sizes = {name: len(path.read_text().splitlines()) for name, path in modules().items()}
    over = sorted(f"{name} ({lines} lines)" for name, lines in sizes.items() if lines > MAX_LINES)
    assert not over, f"modules over {MAX_LINES} lines: {', '.join(over)}"


def test_no_import_cycles():
    found = cycles(import_graph())
    assert not found, "modules that import each other:\n" + "\n".join(found)
