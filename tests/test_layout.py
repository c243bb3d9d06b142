"""The code's layout: no module of nasflow/ or stages/ imports (directly or through others, at the top or inside a
function, or by name through importlib) a module that imports it back."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("nasflow", "stages")


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def _imports(path: Path, name: str, known: set[str]) -> set[str]:
    """The project modules `path` imports: `import a.b`, `from a import b` (b a module or a name of a), `from . import`,
    and importlib.import_module("a.b")."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "import_module" and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            targets = [node.args[0].value]
        for t in targets:
            while t and t not in known:  # `import a.b.c` of a name inside a module: the module
                t = t.rpartition(".")[0]
            if t and t != name and t.split(".")[0] in PACKAGES:
                out.add(t)
    return out


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    # a package's __init__ is imported on the way to any of its modules: not an edge of the layout
    return {m: {t for t in _imports(p, m, known) if not any(o.startswith(t + ".") for o in known)}
            for m, p in modules.items()}


def test_no_import_cycle():
    graph = _graph()
    assert len(graph) > 80 and "stages.params" in graph["stages.training"]
    assert _cycles(graph) == []


def test_the_cycle_check_finds_a_cycle():
    # the check above is only as good as its graph: the three cycles the layout once had are found when put back
    graph = _graph()
    graph["nasflow.estimators.registry"].add("nasflow.estimators.builtin")
    graph["nasflow.estimators.builtin"].add("nasflow.estimators.registry")
    graph["stages.params"].add("stages.estimation")
    graph["stages.estimation"].add("stages.training")
    found = _cycles(graph)
    assert ["nasflow.estimators.builtin", "nasflow.estimators.registry"] in found
    assert any({"stages.params", "stages.estimation", "stages.training"} <= set(c) for c in found)


def test_the_old_import_paths_still_work():
    from nasflow.analysis import report
    from nasflow.estimators import registry
    from stages import common

    assert callable(common.load_params) and callable(common.main_guard) and callable(common.claim)
    assert common.ROOT == ROOT and callable(report.write_workbook) and callable(report._figure)
    assert registry.Estimate(1.0, 0.0).status == "ok" and "synflow" in registry.available()
