"""The floors hold: imports go down (base → sim → surrogate → active_learning → the API), never up, and no two
modules import each other at import time (no cycle); an import inside a function says why it is there."""

import ast
import io
import tokenize
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


# Being reworked elsewhere (issue 24's cluster work): their function-local imports get their reasons there.
def local_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """The import statements inside function bodies (at any depth below a def)."""
    found = []

    def walk(node, in_function: bool):
        for child in ast.iter_child_nodes(node):
            if in_function and isinstance(child, (ast.Import, ast.ImportFrom)):
                found.append(child)
            walk(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)))

    walk(tree, False)
    return found


def unexplained_imports(path: Path) -> list[str]:
    """Function-local imports of `path` without a reason: a comment on the import, or on the line above it (a
    comment line, or one closing a `try:`, `if ...:` or `with ...:`; for a block of consecutive imports, on an
    import of the block above it or on the line above the block), unless the module docstring says
    "Imports on use:" (one reason for the whole module)."""
    text = path.read_text()
    tree = ast.parse(text)
    if "Imports on use:" in (ast.get_docstring(tree) or ""):
        return []
    code: dict[int, list] = {}  # line -> its code tokens (no comments, no line ends)
    commented = set()
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type == tokenize.COMMENT:
            commented.add(tok.start[0])
        elif tok.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT):
            code.setdefault(tok.start[0], []).append(tok.string)
    # above a block: a comment line, or a comment closing a statement header (`try:  # why`)
    above_ok = {n for n in commented if n not in code or code[n][-1] == ":"}
    found = local_imports(tree)
    import_lines = {n for node in found for n in range(node.lineno, node.end_lineno + 1)}
    lines = text.splitlines()
    out = []
    for node in found:
        line = node.lineno - 1
        while line in import_lines and line not in commented:  # up through its block's uncommented imports
            line -= 1
        if not (commented & set(range(node.lineno, node.end_lineno + 1)) or line in import_lines or line in above_ok):
            out.append(f"{path.relative_to(ROOT)}:{node.lineno}: {lines[node.lineno - 1].strip()}")
    return out


def test_function_local_imports_say_why():
    """An import inside a function defers a heavy or optional dependency (torch, mlflow, scipy, openmm, ...) so
    that a light entry point stays light (`porelab --help`, `from porelab import load_design`); one that defers
    nothing belongs at the top of its module. Either way the reason is written down."""
    paths = [ROOT / "__init__.py", *modules().values()]
    missing = [m for p in paths for m in unexplained_imports(p)]
    assert not missing, "function-local imports without a reason (a comment, or move them to the top):\n" + \
        "\n".join(missing)
