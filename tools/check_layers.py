"""Check pigeon's import graph: no cycle, and no module importing a higher stage.

Every ``import`` statement of ``src/pigeon`` counts, wherever it stands (module level, inside a function), and so do
the modules a package names for ``pigeon._lazy``: a lazy import still makes the lower module depend on the higher
one. Type-only imports (under ``if TYPE_CHECKING:``) count for the layers but not for cycles, since they never run. The stages are the
layers of ARCHITECTURE.md, lowest first; a module may import its own layer and the layers below it.

    python tools/check_layers.py            # prints the violations, exits 1 if there is any
    python tools/check_layers.py --graph    # also prints every stage's imports
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

#: Layers from the bottom up (ARCHITECTURE.md, "Layers"): the cross-cutting modules under every stage, then the
#: stages in the order of the data flow, except where a stage is a library of a later one: geography and geocells
#: work on coordinates and serve the manifest stage's spatial splits; the backbone registry and the refiner are
#: parts the geolocator holds; pretraining trains a backbone with the geolocator's auxiliary tasks. The root
#: package only holds the version and resolves its public names lazily by name.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("foundation", ("pigeon", "pigeon._config", "pigeon._compat", "pigeon._lazy", "pigeon.errors")),
    ("cross-cutting", ("pigeon._io", "pigeon._device", "pigeon._progress", "pigeon.geo", "pigeon.validation",
                       "pigeon.images", "pigeon.presets")),
    ("engine", ("pigeon.engine",)),
    ("geography", ("pigeon.geography",)),
    ("maps", ("pigeon.plotting",)),
    ("cells", ("pigeon.cells",)),
    ("data", ("pigeon.data",)),
    ("backbones", ("pigeon.backbones",)),
    ("embed", ("pigeon.embed",)),
    ("refine", ("pigeon.refine",)),
    ("model", ("pigeon.model",)),
    ("pretrain", ("pigeon.pretrain",)),
    ("evaluate", ("pigeon.evaluate",)),
    ("applications", ("pigeon.demo", "pigeon.serve")),
    ("cli", ("pigeon.cli", "pigeon.__main__")),
)


def module_name(path: Path, src: Path = SRC) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(src: Path = SRC) -> dict[str, Path]:
    """Every module of the ``pigeon`` package under ``src``: dotted name -> file."""
    return {module_name(p, src): p for p in sorted((src / "pigeon").rglob("*.py"))}


def imports(name: str, path: Path, known: set[str], typing: bool = True) -> set[str]:
    """The pigeon modules that ``name`` imports (``from a import b`` counts ``a.b`` when it is a module); with
    ``typing=False`` without the type-only imports (under ``if TYPE_CHECKING:``), which never run."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    type_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If) and _is_type_checking(block.test)
                 for stmt in block.body for n in ast.walk(stmt)}
    found: set[str] = set()
    for node in ast.walk(tree):
        if not typing and id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("exports_of", "lazy_exports") \
                and node.args and isinstance(node.args[-1], ast.Dict):  # a package's lazily imported modules
            keys = [k.value for k in node.args[-1].keys if isinstance(k, ast.Constant) and isinstance(k.value, str)]
            targets = [k if k.startswith("pigeon") else f"{package}.{k}" for k in keys]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # "import pigeon.x.y" of a name inside a module
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    # importing pigeon.x.y first runs the __init__ of each package above it that the importer is not inside
    own = _ancestors(name)
    return {a for t in found for a in (t, *_ancestors(t)) if a not in own and a != name and a in known}


def _is_type_checking(test: ast.expr) -> bool:
    return getattr(test, "id", None) == "TYPE_CHECKING" or getattr(test, "attr", None) == "TYPE_CHECKING"


def _ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def layer_of(name: str) -> int:
    """Index in :data:`LAYERS` of the most specific entry that holds ``name``."""
    best, best_len = None, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            inside = name.startswith(prefix + ".") and prefix != "pigeon"  # the root holds only itself
            if (name == prefix or inside) and len(prefix) > best_len:
                best, best_len = i, len(prefix)
    if best is None:
        raise KeyError(f"{name} is in no layer; add it to LAYERS in tools/check_layers.py and ARCHITECTURE.md")
    return best


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

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
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def cycle_path(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """One closed path through a strongly connected component, for the message."""
    members, start = set(component), component[0]
    path, seen, node = [start], {start}, start
    while True:
        nxt = sorted(w for w in graph[node] if w in members)
        back = [w for w in nxt if w == start]
        if back and len(path) > 1:
            return path + [start]
        fresh = [w for w in nxt if w not in seen]
        if not fresh:
            return path + [nxt[0]]
        node = fresh[0]
        path.append(node)
        seen.add(node)


def check(src: Path = SRC) -> tuple[dict[str, set[str]], list[str]]:
    """The import graph of ``src/pigeon`` and one line per violation (empty: the layering holds)."""
    files = modules(src)
    known = set(files)
    graph = {name: imports(name, path, known) for name, path in files.items()}
    runtime = {name: imports(name, path, known, typing=False) for name, path in files.items()}
    problems = []
    for name in sorted(graph):
        own = layer_of(name)
        for target in sorted(graph[name]):
            if layer_of(target) > own:
                problems.append(f"upward import: {name} ({LAYERS[own][0]}) imports {target} "
                                f"({LAYERS[layer_of(target)][0]})")
    for component in cycles(runtime):  # a type-only import never runs: it counts for the layers, not for cycles
        problems.append("import cycle: " + " -> ".join(cycle_path(runtime, component)))
    return graph, problems


def stage_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """Which layers each layer imports."""
    out: dict[str, set[str]] = defaultdict(set)
    for name, targets in graph.items():
        for target in targets:
            if layer_of(target) != layer_of(name):
                out[LAYERS[layer_of(name)][0]].add(LAYERS[layer_of(target)][0])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, default=SRC, help="folder holding the pigeon package")
    parser.add_argument("--graph", action="store_true", help="also print which layers each layer imports")
    args = parser.parse_args(argv)
    graph, problems = check(args.src)
    if args.graph:
        for layer, _ in LAYERS:
            print(f"{layer}: {', '.join(sorted(stage_graph(graph).get(layer, ()), key=_rank)) or '-'}")
    for line in problems:
        print(line)
    print(f"{len(graph)} modules, {sum(map(len, graph.values()))} imports: "
          + (f"{len(problems)} problem(s)" if problems else "no cycle, no upward import"))
    return 1 if problems else 0


def _rank(layer: str) -> int:
    return [n for n, _ in LAYERS].index(layer)


if __name__ == "__main__":
    sys.exit(main())
