"""Committed notebooks in the exact form JupyterLab saves them, so opening one changes nothing.

``python -m nnlens.workbook.nbfiles normalize [NOTEBOOK ...]`` (``make normalize``; no
arguments: every ``notebooks/NN_*.ipynb``) rewrites each notebook with

- the project's kernelspec (``nnlens``, "Python (nnlens)"), so any Jupyter front end
  starts the project's environment;
- the full ``language_info`` the nnlens kernel reports when JupyterLab connects
  (``ipykernel``'s own ``language_info`` and this interpreter's version): JupyterLab
  writes it into the notebook on opening, and a notebook that lacks it, or has
  another one, is marked modified straight away;
- no outputs and no execution counts (notebooks are committed without outputs) and
  no per-cell execution timings;
- cell ids and the JSON layout nbformat writes (1-space indent, sorted keys, a
  final newline), which is also JupyterLab's.

``python -m nnlens.workbook.nbfiles check`` lists the notebooks that are not normalized (exit 1).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

from .. import _io
from ..studies import profiles

KERNELSPEC = {"display_name": "Python (nnlens)", "language": "python", "name": "nnlens"}


def language_info() -> dict:
    """What the nnlens kernel reports as its language when JupyterLab connects to it.

    Asked of the kernel's own interpreter (the nnlens kernelspec's ``argv[0]``; this one when the
    kernel is not registered) in a subprocess: importing ipykernel here would make tqdm.auto
    in this process believe it runs inside a notebook."""
    import json
    import subprocess

    python = sys.executable
    try:
        from jupyter_client.kernelspec import KernelSpecManager

        python = KernelSpecManager().get_kernel_spec(KERNELSPEC["name"]).argv[0]
    except Exception:  # no nnlens kernel registered (before `make setup`): this interpreter is the one it would use
        pass
    code = ("import json, sys; from ipykernel.ipkernel import IPythonKernel; "
            "info = dict(IPythonKernel.language_info); info['version'] = '.'.join(map(str, sys.version_info[:3])); "
            "print(json.dumps(info))")
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def normalized(text: str, info: dict | None = None) -> str:
    """``text`` (a notebook's JSON) as ``normalize`` would write it."""
    nb = nbformat.reads(text, as_version=4)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata["language_info"] = info if info is not None else language_info()
    nb.metadata.pop("widgets", None)
    nb.nbformat, nb.nbformat_minor = 4, max(nb.nbformat_minor, 5)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        cell.metadata.pop("trusted", None)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    _, nb = nbformat.validator.normalize(nb)
    nb = nbformat.from_dict(nb)
    nbformat.validate(nb)
    return nbformat.writes(nb) + "\n"


def committed() -> list[Path]:
    return [profiles.notebook(s) for s in profiles.studies()]


def normalize(notebooks: list[Path]) -> list[Path]:
    """Rewrite each notebook in normalized form; returns those that changed."""
    changed = []
    info = language_info()
    for p in notebooks:
        before = p.read_text(encoding="utf-8")
        after = normalized(before, info)
        if after != before:
            _io.write_text(p, after)
            changed.append(p)
    return changed


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m nnlens.workbook.nbfiles", description=__doc__.split("\n\n")[0])
    ap.add_argument("cmd", choices=("normalize", "check"))
    ap.add_argument("notebooks", nargs="*", type=Path, help="default: every notebooks/NN_*.ipynb")
    args = ap.parse_args(argv)
    targets = args.notebooks or committed()
    if args.cmd == "normalize":
        for p in normalize(targets):
            print(f"normalized {p}")
        return 0
    info = language_info()
    stale = [p for p in targets if normalized(p.read_text(encoding="utf-8"), info) != p.read_text(encoding="utf-8")]
    for p in stale:
        print(f"not normalized: {p} (run `make normalize`)")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
