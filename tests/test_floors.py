"""The floors hold: imports go down (base → sim → surrogate → active_learning → the API), never up, and no two
modules import each other at import time (no cycle)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FLOORS = {"base": 0, "sim": 1, "surrogate": 2, "active_learning": 3, "api": 4, "__init__": 4}


def modules() -> dict[str, Path]:
    """porelab's modules by dotted name (porelab.sim.design, ...)."""
    out = {"porelab.api": ROOT / "api.py"}
    for floor in ("base", "sim", "surrogate", "active_learning"):
        for p in (ROOT / floor).rglob("*.py"):
            parts = p.relative_to(ROOT).with_suffix("").parts
            name = ".".join(("porelab", *parts))
            out[name.removesuffix(".__init__")] = p
    return out


def _nodes(body: list, deep: bool):
    """The statements of `body` (and, deep, of every nested block), leaving out `if TYPE_CHECKING:` blocks
    (annotations only, never imported at run time)."""
    for node in body:
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            continue
        yield node
        if deep:
            for field in ("body", "orelse", "finalbody", "handlers"):
                yield from _nodes(getattr(node, field, []), deep)


def imports(path: Path, top_level_only: bool) -> set[str]:
    """The porelab modules `path` imports (at import time only, when top_level_only; else also those imported
    inside functions)."""
    nodes = _nodes(ast.parse(path.read_text()).body, not top_level_only)
    found = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("porelab"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("porelab")}
    return found


def floor(module: str) -> int:
    parts = module.split(".")
    return FLOORS[parts[1]] if len(parts) > 1 else 0  # `porelab` itself: its version (the API loads lazily)


def test_imports_go_down_the_floors():
    up = [f"{name} (floor {floor(name)}) imports {m} (floor {floor(m)})"
          for name, path in modules().items() for m in imports(path, False) if floor(m) > floor(name)]
    assert not up, up


def test_no_import_cycle():
    """Counting the imports inside functions too: a cycle hidden in a function is still a cycle."""
    mods = modules()
    graph = {n: {m for m in imports(p, False) if m in mods and m != n} for n, p in mods.items()}
    state, cycles = {}, []

    def visit(n, stack):
        state[n] = 1
        for m in graph[n]:
            if state.get(m) == 1:
                cycles.append(" -> ".join([*stack[stack.index(m):], m]))
            elif m not in state:
                visit(m, [*stack, m])
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n, [n])
    assert not cycles, cycles
