"""Cache keys that include the code that made the artifact.

Every cached artifact (a trained model in ``train.fit``'s cache, a finished job in
``sweeps.run``'s store) is keyed by its inputs *and* by ``code_hash(module)``: a
hash of the source of the module that produces it and of every ``nnlens`` module
that module imports, transitively (read from the ``import`` statements with
``ast``, lazy imports inside functions included). So a change to ``train.py``,
``models.py`` or ``utils.py`` makes every cached model miss and retrain, while a
change to ``report/figures.py`` (which training does not import) keeps the models.

Why this choice: a hand-kept version number is forgotten; hashing the whole
package throws every cache away for a change to a figure's colour; the import
closure is what Python itself would execute to produce the artifact, so it is
exactly the code that can change it, found without anybody keeping a list.
What it cannot see: code reached by other means than an import of an ``nnlens``
module (data files, a function passed in as an argument from elsewhere,
third-party packages). Third-party versions are the caller's to add to its key
(``train.cache_key`` adds torch's); data is keyed by content (``Dataset.fingerprint``).

The hash is of the code that *runs*: a module already imported in this process
is hashed as it was when first seen here (editing its file does not change the
code a running kernel executes, so it must not change the key either: results of
the old code would be stored under the new code's key); a module not imported yet
is hashed as it is on disk now, since that is what an import will load. A long
``make reproduce`` therefore keys every job of a study alike even if a file is
edited meanwhile, and the next run (a new process) sees the edit.
``importlib.reload`` is not tracked.
"""
from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util
import os
import sys
from pathlib import Path

PACKAGE = "nnlens"
ROOT = Path(__file__).resolve().parent     # the package folder, lib/nnlens


def _origin(module: str) -> Path | None:
    """The source file of ``module`` (None for attributes, built-ins or unknown names).

    ``nnlens`` modules are found by path under the package folder, without importing
    anything; another module (a test's job function) through ``sys.modules`` or its spec.
    """
    parts = module.split(".")
    if parts[0] == PACKAGE:
        base = ROOT.joinpath(*parts[1:])
        for cand in (base.with_suffix(".py") if len(parts) > 1 else None, base / "__init__.py"):
            if cand is not None and cand.is_file():
                return cand
        return None
    mod = sys.modules.get(module)
    origin = getattr(mod, "__file__", None)
    if origin is None:
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            return None
        origin = spec.origin if spec is not None else None
    return Path(origin) if origin and origin.endswith(".py") else None


def _resolve(node: ast.AST, module: str, is_pkg: bool) -> list[str]:
    """Absolute names of the modules an import statement of ``module`` may load."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    if node.level:
        parts = module.split(".")
        base = parts if is_pkg else parts[:-1]
        base = base[:len(base) - (node.level - 1)] if node.level > 1 else base
        prefix = ".".join(base + ([node.module] if node.module else []))
    else:
        prefix = node.module or ""
    # ``from pkg import name``: name may be a submodule or an attribute; keep both candidates
    return [prefix] + [f"{prefix}.{a.name}" for a in node.names if a.name != "*"]


_RUNNING: dict[str, tuple[str, tuple[str, ...]]] = {}   # file of an imported module -> its first-seen info


@functools.lru_cache(maxsize=None)
def _file_info(path: str, mtime_ns: int, size: int, module: str) -> tuple[str, tuple[str, ...]]:
    """(sha256 of the source, nnlens modules it imports) of one file, memoized on its stat."""
    src = Path(path).read_bytes()
    is_pkg = Path(path).name == "__init__.py"
    names = set()
    for node in ast.walk(ast.parse(src)):
        names.update(_resolve(node, module, is_pkg))
    deps = tuple(sorted(n for n in names if n == PACKAGE or n.startswith(PACKAGE + ".")))
    return hashlib.sha256(src).hexdigest(), deps


def closure(module: str) -> dict[str, str]:
    """``{module: sha256 of its source}`` for ``module`` and every nnlens module it imports, transitively.

    ``module`` itself may live outside the package (a test's job function); only its
    ``nnlens`` imports are followed. Parent packages' ``__init__`` files are included,
    since importing a submodule runs them.
    """
    out: dict[str, str] = {}
    todo = [module]
    while todo:
        name = todo.pop()
        if name in out:
            continue
        parts = name.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)) if parts[0] == PACKAGE)
        path = _origin(name)
        if path is None:
            out[name] = ""          # an attribute picked up as a candidate name, or not a source module
            continue
        st = os.stat(path)
        info = _file_info(str(path), st.st_mtime_ns, st.st_size, name)
        loaded = getattr(sys.modules.get(name), "__file__", None)
        if loaded and Path(loaded).resolve() == path.resolve():
            info = _RUNNING.setdefault(str(path), info)   # imported: the code as first seen in this process
        digest, deps = info
        out[name] = digest
        todo.extend(deps)
    return {k: v for k, v in out.items() if v}


def code_hash(module: str) -> str:
    """One hash of the source of ``module`` and of its nnlens import closure (``closure``)."""
    doc = "\n".join(f"{k} {v}" for k, v in sorted(closure(module).items()))
    return hashlib.sha256(doc.encode()).hexdigest()[:16]
