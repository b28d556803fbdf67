"""The package's three wings, checked on its import graph: imports point down only, and no cycles.

core (everything outside the wings) < ``report`` < ``studies`` < ``workbook``. A module may import
its own wing or any wing below it; nothing in the library imports ``workbook``. Every import
counts, at module level or inside a function (a deferred import is still a dependency).
Also: no module over 400 lines, no function over 60 (STYLE.md: a reader holds a file in their head).
"""
import ast
from pathlib import Path

import pytest

from nnlens import paths

LIB = paths.ROOT / "lib" / "nnlens"
RANK = {"core": 0, "report": 1, "studies": 2, "workbook": 3}
MAX_FILE_LINES, MAX_FUNCTION_LINES = 400, 60


def module_name(path: Path, root: Path = LIB) -> str:
    rel = path.relative_to(root.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def imports(path: Path, root: Path = LIB) -> set[str]:
    """The nnlens modules ``path`` imports (absolute names), wherever the import statement is."""
    me = module_name(path, root)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == root.name}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.split(".")[0] != root.name:
                continue
            out.add(mod)
            out |= {f"{mod}.{a.name}" for a in node.names}   # `from . import x` imports module x
    return out


def graph(root: Path = LIB) -> dict[str, set[str]]:
    files = {module_name(p, root): p for p in root.rglob("*.py")}
    return {m: {i for i in imports(p, root) if i in files and i != m} for m, p in files.items()}


def wing(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in RANK else "core"


def upward(g: dict[str, set[str]]) -> list[tuple[str, str]]:
    return sorted((a, b) for a, deps in g.items() for b in deps if RANK[wing(b)] > RANK[wing(a)])


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle found by a depth-first search (a package importing its own submodules is not one)."""
    found, state = [], {}

    def visit(m, stack):
        state[m] = 1
        for d in sorted(g.get(m, ())):
            if d.startswith(m + "."):             # a package's facade importing its submodules
                continue
            if state.get(d) == 1:
                found.append(stack[stack.index(d):] + [d])
            elif d not in state:
                visit(d, stack + [d])
        state[m] = 2

    for m in sorted(g):
        if m not in state:
            visit(m, [m])
    # a submodule importing its parent package's name is the facade pattern's other half: not a cycle
    return [c for c in found if not all(b.startswith(a + ".") or a.startswith(b + ".") for a, b in zip(c, c[1:]))]


def test_imports_point_down_and_nothing_imports_the_workbook():
    g = graph()
    assert upward(g) == []
    assert not [a for a, deps in g.items() if wing(a) != "workbook" for b in deps if wing(b) == "workbook"]


def test_no_import_cycles():
    assert cycles(graph()) == []


def test_the_checks_catch_an_upward_import_and_a_cycle(tmp_path):
    root = tmp_path / "nnlens"
    for f, text in {"__init__.py": "", "a.py": "from . import b\n", "b.py": "def f():\n    from . import a\n",
                    "report/__init__.py": "", "report/x.py": "from ..studies import y\n",
                    "studies/__init__.py": "", "studies/y.py": "from .. import a\n"}.items():
        (root / f).parent.mkdir(parents=True, exist_ok=True)
        (root / f).write_text(text)
    g = graph(root)
    assert ("nnlens.report.x", "nnlens.studies.y") in upward(g)
    assert ["nnlens.a", "nnlens.b", "nnlens.a"] in cycles(g)


def _functions(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            start = node.decorator_list[0].lineno if node.decorator_list else node.lineno
            yield node.name, node.end_lineno - start + 1


@pytest.mark.parametrize("path", sorted(LIB.rglob("*.py")), ids=lambda p: str(p.relative_to(LIB)))
def test_files_and_functions_stay_readable(path):
    assert len(path.read_text().splitlines()) <= MAX_FILE_LINES
    long = [(name, n) for name, n in _functions(path) if n > MAX_FUNCTION_LINES]
    assert long == []
