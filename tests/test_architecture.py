"""Who may import whom (docs/architecture.md), checked on the source: no import cycle, the
layers of the house, click only in the command-line modules, SAM only in LP-SAM, the store
written only by ``maskgen.store``; and every module imports on its own, in any order."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ROOTS = ("maskgen", "pretrain", "evaluate")


def _name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_name(p): p for root in ROOTS for p in sorted((REPO / root).rglob("*.py"))}


def _resolve(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str) -> list[tuple[str, bool]]:
    """(imported name, at module level) for every import statement of ``module``; names of
    the project are resolved to their module (``from pkg import sub`` -> ``pkg.sub``)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []

    def visit(node, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = top and not isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            if isinstance(child, ast.Import):
                found.extend((a.name, inner) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    pkg = package
                    for _ in range(child.level - 1):
                        pkg = pkg.rpartition(".")[0]
                    base = f"{pkg}.{base}" if base else pkg
                for alias in child.names:
                    sub = f"{base}.{alias.name}"
                    found.append((sub if sub in MODULES else base, inner))
            visit(child, inner)

    visit(ast.parse(path.read_text(encoding="utf-8")), True)
    return found


GRAPH = {m: _imports(m) for m in MODULES}


def _project_edges(module_level_only: bool) -> dict[str, set[str]]:
    edges = defaultdict(set)
    for m, found in GRAPH.items():
        for name, top in found:
            target = _resolve(name)
            if target and target != m and (top or not module_level_only):
                edges[m].add(target)
    return edges


def test_no_import_cycle():
    """Module-level imports (also those only for type checking) form no cycle."""
    edges = _project_edges(module_level_only=True)
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def connect(v):  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while not component or component[-1] != v:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1:
                cycles.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(MODULES)))
    for v in MODULES:
        if v not in index:
            connect(v)
    assert cycles == []


def _under(name: str, *prefixes: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


# module prefix -> what it may import of the project (lazily or not); the longest prefix rules
ALLOWED = {
    "maskgen.common": ("maskgen.common", "maskgen"),
    "maskgen.datasets": ("maskgen.datasets", "maskgen.common"),
    "maskgen.store": ("maskgen.store", "maskgen.common", "maskgen.datasets.letterbox"),
    "maskgen.store.format": ("maskgen.store.format", "maskgen.common"),
    "maskgen.store.reader": ("maskgen.store.format", "maskgen.common"),
    "maskgen.store.writer": ("maskgen.store.format", "maskgen.common"),
    "maskgen.phantom": ("maskgen.phantom", "maskgen.common", "maskgen.datasets"),
    "maskgen.lpsam": ("maskgen.lpsam", "maskgen.common", "maskgen.datasets", "maskgen.store"),
    "maskgen.generate": ("maskgen.generate", "maskgen.common", "maskgen.datasets", "maskgen.store",
                         "maskgen.lpsam", "maskgen.phantom.quality"),
    # the oracle's masks are the phantom's ground truth: the one producer of masks that reads it
    "maskgen.generate.oracle": ("maskgen.generate", "maskgen.common", "maskgen.datasets", "maskgen.store",
                                "maskgen.phantom"),
    "maskgen.generate.scoring": ("maskgen.generate", "maskgen.common", "maskgen.datasets", "maskgen.store",
                                 "maskgen.phantom.quality", "pretrain.masks"),
    "maskgen.cli": ("maskgen",),
    "pretrain": ("pretrain", "maskgen.common", "maskgen.store", "maskgen.datasets"),
    # the probe scores evaluate's classification tasks: their definitions have one owner
    "pretrain.probe": ("pretrain", "maskgen.common", "maskgen.store", "maskgen.datasets", "evaluate.tasks"),
    "pretrain.cli": ("pretrain", "maskgen.common", "maskgen.store", "maskgen.datasets", "maskgen.cli.options"),
    "evaluate": ("evaluate", "pretrain", "maskgen.common", "maskgen.store", "maskgen.datasets"),
    "evaluate.cli": ("evaluate", "pretrain", "maskgen.common", "maskgen.store", "maskgen.datasets",
                     "maskgen.cli.options"),
}


def test_layers():
    """Each package imports only what its layer may (docs/architecture.md); function-level
    (lazy) imports count too."""
    edges = _project_edges(module_level_only=False)
    wrong = []
    for m in MODULES:
        rule = max((p for p in ALLOWED if _under(m, p)), key=len, default=None)
        if rule is None:
            continue
        wrong += [f"{m} -> {t}" for t in sorted(edges[m]) if not _under(t, *ALLOWED[rule])]
    assert wrong == []


def _external(module: str) -> set[str]:
    return {name.split(".")[0] for name, _ in GRAPH[module] if _resolve(name) is None}


def test_click_only_in_command_line_modules():
    users = sorted(m for m in MODULES if "click" in _external(m))
    assert users and all(_under(m, "maskgen.cli", "pretrain.cli", "evaluate.cli") for m in users), users


def test_segment_anything_only_in_lpsam():
    users = sorted(m for m in MODULES if "segment_anything" in _external(m))
    assert users and all(_under(m, "maskgen.lpsam") for m in users), users


def test_only_the_store_package_opens_zarr():
    """Creating or opening the store's Zarr group happens in ``maskgen.store`` only (writes in
    ``maskgen.store.writer``)."""
    opening = {m for m, p in MODULES.items() if "zarr.open" in p.read_text() or "create_array" in p.read_text()}
    assert opening and all(_under(m, "maskgen.store") for m in opening), sorted(opening)
    writing = {m for m in opening if "create_array" in MODULES[m].read_text()
               or 'mode="r+"' in MODULES[m].read_text() or 'mode="w"' in MODULES[m].read_text()}
    assert writing == {"maskgen.store.writer"}


@pytest.mark.parametrize("order", ["sorted", "reversed"])
def test_every_module_imports_on_its_own_in_any_order(order):
    """Importing every module one after the other, in either order, in a fresh interpreter:
    no module depends on another having been imported first."""
    names = sorted(MODULES)
    if order == "reversed":
        names.reverse()
    code = ("import importlib, sys\nbad = []\nfor m in sys.argv[1:]:\n    try:\n        importlib.import_module(m)\n"
            "    except Exception as err:\n        bad.append(f'{m}: {type(err).__name__}: {err}')\nprint('\\n'.join(bad))")
    result = subprocess.run([sys.executable, "-c", code, *names], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == ""
