"""The conventions every study notebook keeps (DESIGN.md, STYLE.md), checked statically.

Running them is nbval's job in `make test`; this catches a committed output, a
parameters cell that papermill cannot override, or a notebook that does not start with
``profiles.start(profile, outputs)`` (the one place a notebook reads NNLENS_PROFILE and
NNLENS_REPORTS), before anything runs.
"""
import ast

import nbformat
import pytest

from nnlens import paths
from nnlens.studies import profiles

NOTEBOOKS = sorted(paths.NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


def test_there_is_one_notebook_per_study():
    assert [p.name[:2] for p in NOTEBOOKS] == list(profiles.studies())


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_conventions(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), "commit notebooks without outputs"
    params = code[0]
    assert "parameters" in params.metadata.get("tags", []), "the first code cell must be tagged 'parameters'"
    tree = ast.parse(params.source)
    assigns = [n for n in tree.body if isinstance(n, ast.Assign)]
    assert len(assigns) == len(tree.body), "the parameters cell holds assignments only"
    assert assigns[0].targets[0].id == "profile" and assigns[0].value.value == "default"
    assert assigns[1].targets[0].id == "outputs" and assigns[1].value.value == "", "the runner sets 'outputs'"
    for a in assigns:
        ast.literal_eval(a.value)  # literals only, so papermill can override them
    study = path.name[:2]
    assert "profile, out = profiles.start(profile, outputs)" in code[1].source, \
        "the cell after the parameters must start with profiles.start (it honours NNLENS_PROFILE)"
    assert f'profiles.load("{study}", profile' in code[1].source
    body = "\n".join(c.source for c in code)
    assert f'report.Ledger("{study}", profile, out)' in body and "ledger.save()" in body
    assert f'report.write_manifest(out, "{study}", profile' in body
    assert nb.metadata["kernelspec"] == {"display_name": "Python (nnlens)", "language": "python", "name": "nnlens"}
