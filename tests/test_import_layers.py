"""Imports run downhill only, and never in circles.

Every module under lipjax/, data_builders/, configs/ and experiments/ is parsed with `ast` (none
is imported, so this stays fast and needs no optional dependency); each import, function-level
ones included, must go to the same layer or a lower one, and the packages must import each other
without cycles. Imports by string (`importlib.import_module(name)`) are not seen.
"""

from __future__ import annotations

import ast
import collections
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
ROOTS = ("lipjax", "data_builders", "configs", "experiments")

# Low to high: a module may import its own layer and the layers before it. Names are package
# prefixes; the longest one that matches a module decides its layer.
LAYERS: tuple[tuple[str, ...], ...] = (
        ("lipjax", "lipjax.schema", "lipjax.languages"),  # leaf: numpy and the stdlib
        ("lipjax.units", "lipjax.synth", "lipjax.preprocess"),
        ("data_builders",),
        ("lipjax.data",),
        ("lipjax.models", "lipjax.losses", "lipjax.metrics", "lipjax.decoding"),
        ("lipjax.tasks", "lipjax.io"),  # io: pretrained checkpoints into the models' parameters
        ("lipjax.train",),
        ("configs",),  # read by the trainer from a path; they may name anything below
        ("experiments",),
)

# Known uphill imports, as (importing file, imported module), in files whose owners are changing
# them now. The list only shrinks: an entry that no longer occurs fails the test, so delete it.
KNOWN: dict[tuple[str, str], str] = {}


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, pathlib.Path]:
    """Every library module. A package's `__main__.py` is a program that nothing imports (the
    top of the stack whatever its folder), so its imports are not checked."""
    return {_module_name(p): p for root in ROOTS for p in sorted((REPO / root).rglob("*.py"))
            if p.name != "__main__.py"}


def _imports(path: pathlib.Path, name: str, known: set[str]) -> list[tuple[int, str]]:
    """(line, module) of every project import in the file; `from a import b` names `a.b` when
    that is a module, else `a`."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([node.module] if node.module else []))
            subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in known]
            found += [(node.lineno, m) for m in subs]
            if len(subs) < len(node.names):
                found.append((node.lineno, base))
    return [(line, m) for line, m in found if m.split(".")[0] in ROOTS]


def _layer(module: str) -> int:
    best, layer = -1, None
    for i, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, layer = len(prefix), i
    assert layer is not None, f"{module}: in no layer of LAYERS; add its package there."
    return layer


def _package(module: str) -> str:
    """The unit whose cycles count: `lipjax.units`, `data_builders.lrs3`, `experiments.demo`."""
    return ".".join(module.split(".")[:2])


@pytest.fixture(scope="module")
def edges() -> list[tuple[str, int, str, str]]:
    """(importing file, line, importing module, imported module) for every project import."""
    modules = _modules()
    known = set(modules)
    return [(str(path.relative_to(REPO)), line, name, imported)
            for name, path in modules.items()
            for line, imported in _imports(path, name, known)]


def test_no_import_runs_uphill(edges):
    uphill = [(f, line, m, i) for f, line, m, i in edges if _layer(i) > _layer(m)]
    new = [f"{f}:{line} imports {i} (layer {_layer(m)} -> {_layer(i)})"
           for f, line, m, i in uphill if (f, i) not in KNOWN]
    assert not new, ("Lower layers import higher ones (layers low to high: "
                     f"{[p for layer in LAYERS for p in layer]}):\n" + "\n".join(new))
    gone = set(KNOWN) - {(f, i) for f, _, _, i in uphill}
    assert not gone, f"KNOWN lists imports that no longer run uphill; delete them: {sorted(gone)}"


def test_no_cycles_between_packages(edges):
    graph: dict[str, dict[str, str]] = collections.defaultdict(dict)
    for f, line, m, i in edges:
        a, b = _package(m), _package(i)
        if a != b and (f, i) not in KNOWN:
            graph[a].setdefault(b, f"{f}:{line} imports {i}")
    cycles = [c for c in _strongly_connected(graph) if len(c) > 1]
    report = [" <-> ".join(sorted(c)) + ", e.g.:\n  " + "\n  ".join(_one_cycle(graph, c))
              for c in cycles]
    assert not cycles, "Import cycles between packages:\n" + "\n".join(report)


def _one_cycle(graph: dict[str, dict[str, str]], component: list[str]) -> list[str]:
    """The imports along one shortest cycle through the component's first package."""
    start, members = sorted(component)[0], set(component)
    previous: dict[str, str] = {}
    queue = collections.deque([start])
    while queue:
        a = queue.popleft()
        for b in sorted(graph[a]):
            if b in members and b not in previous:
                previous[b] = a
                queue.append(b)
        if start in previous:
            break
    hops, b = [], start
    while True:
        a = previous[b]
        hops.append(graph[a][b])
        b = a
        if b == start:
            return hops[::-1]


def _strongly_connected(graph: dict[str, dict[str, str]]) -> list[list[str]]:
    """Tarjan's strongly connected components."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
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
            components.append(component)

    for v in list(graph):
        if v not in index:
            visit(v)
    return components


def test_schema_is_a_leaf():
    """`lipjax.schema` is what low layers import for constants: it must stay free of TFDS/JAX."""
    tree = ast.parse((REPO / "lipjax" / "schema.py").read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert imported <= {"__future__", "dataclasses", "numpy"}, imported
