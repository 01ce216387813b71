"""Layers point down only, and no two modules import each other (read from the source's AST, not by grep).

    data  <-  measurement / drivers / economics / verbatims  <-  initiatives  <-  studies  <-  cli

Neutral modules (runtime, compile_cache, diagnostics, protocol, reports, results, yamlio, the package root) may be
imported by every layer and import none of the layers. measurement, drivers, economics and verbatims do not import
each other.
Every import counts, including those inside functions (a function-level import still ties the layers together
and is how a cycle hides); imports under ``if TYPE_CHECKING:`` count for the layers but not for cycles (Python
never runs them).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "cxresearch"

#: rank of each layer; an import must go to a lower rank, or to the same layer (inside one area), or to neutral
LAYER_RANK = {
    "data": 0,
    "measurement": 1,
    "drivers": 1,
    "economics": 1,
    "verbatims": 1,
    "initiatives": 2,
    "studies": 3,
    "cli": 4,
}
NEUTRAL = {"", "runtime", "diagnostics", "protocol", "reports", "results", "yamlio", "compile_cache"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts}


def resolve(name: str) -> str | None:
    """The cxresearch module an import refers to (longest known prefix), or None outside the package."""
    if name != "cxresearch" and not name.startswith("cxresearch."):
        return None
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in MODULES:
            return candidate
        parts.pop()
    return None


def _type_checking_only(tree: ast.AST) -> set[int]:
    """ids of the import nodes inside ``if TYPE_CHECKING:`` blocks (never executed)."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else test.attr if isinstance(test, ast.Attribute) else ""
            if name == "TYPE_CHECKING":
                skipped |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return skipped


def imports_of(module: str, runtime_only: bool = False) -> set[str]:
    """Every cxresearch module ``module`` imports, at any depth of its code (``runtime_only``: leaving out
    the imports under ``if TYPE_CHECKING:``, which type checkers read but Python never executes)."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(), filename=str(path))
    skipped = _type_checking_only(tree) if runtime_only else set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            # `from cxresearch.data import spec` imports the submodule cxresearch.data.spec
            targets = [
                f"{base}.{alias.name}" if resolve(f"{base}.{alias.name}") == f"{base}.{alias.name}" else base
                for alias in node.names
            ]
        else:
            continue
        for target in targets:
            resolved = resolve(target)
            if resolved and resolved != module:
                found.add(resolved)
    return found


GRAPH = {module: imports_of(module) for module in MODULES}
RUNTIME_GRAPH = {module: imports_of(module, runtime_only=True) for module in MODULES}


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def allowed(source: str, target: str) -> bool:
    src, dst = layer(source), layer(target)
    if dst in NEUTRAL:
        return True
    if src in NEUTRAL:
        return False  # neutral modules stay below every layer
    if src == dst:
        return True
    return LAYER_RANK[dst] < LAYER_RANK[src]


def test_every_module_belongs_to_a_known_layer():
    unknown = sorted({layer(m) for m in MODULES} - set(LAYER_RANK) - NEUTRAL)
    assert unknown == [], f"add these top-level modules to LAYER_RANK or NEUTRAL in {__file__}: {unknown}"


def test_imports_only_point_down():
    upward = sorted(
        f"{src} imports {dst}" for src, targets in GRAPH.items() for dst in targets if not allowed(src, dst)
    )
    assert upward == [], (
        "imports against the layers (data <- measurement/drivers/economics <- initiatives <- "
        "studies <- cli; neutral modules import no layer):\n" + "\n".join(upward)
    )


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start)
            if found:
                return found
    return None


def test_no_import_cycles():
    cycle = find_cycle(RUNTIME_GRAPH)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_checker_catches_an_upward_import_and_a_cycle():
    """The rules above are not vacuous: a drivers -> studies import and a two-module cycle are caught."""
    assert not allowed("cxresearch.drivers.fit", "cxresearch.studies.runner")
    assert not allowed("cxresearch.drivers.fit", "cxresearch.economics.clv")
    assert not allowed("cxresearch.runtime", "cxresearch.data.spec")
    assert allowed("cxresearch.initiatives.fitted", "cxresearch.drivers.fit")
    assert find_cycle({"a.x": {"a.y"}, "a.y": {"a.x"}}) == ["a.x", "a.y", "a.x"]
    assert find_cycle({"a.x": {"a.y"}, "a.y": set()}) is None


@pytest.mark.parametrize("module", ["cxresearch.drivers.store", "cxresearch.studies.runner"])
def test_the_graph_sees_imports(module):
    """The AST walk finds real imports (guards against a parser that silently sees nothing)."""
    assert GRAPH[module], f"no cxresearch imports found in {module}"
