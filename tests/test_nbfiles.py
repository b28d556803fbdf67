"""Committed notebooks are in the form JupyterLab saves them, so opening one does not mark it modified."""
import json

import nbformat
import pytest

from nnlens.workbook import nbfiles


@pytest.mark.parametrize("path", nbfiles.committed(), ids=lambda p: p.stem)
def test_committed_notebook_is_normalized(path):
    text = path.read_text(encoding="utf-8")
    info = json.loads(text)["metadata"].get("language_info", {})
    # the interpreter's patch version is what a given machine's kernel reports; the rest must match exactly
    expected = {**nbfiles.language_info(), "version": info.get("version")}
    assert nbfiles.normalized(text, expected) == text, f"run `make normalize` ({path.name})"
    assert str(info.get("version", "")).startswith("3."), "language_info.version missing"


def test_normalize_strips_outputs_and_fills_the_metadata(tmp_path):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("1 + 1", execution_count=3,
                                     outputs=[nbformat.v4.new_output("execute_result", {"text/plain": "2"},
                                                                     execution_count=3)])
    cell.metadata["execution"] = {"iopub.status.busy": "2026-01-01T00:00:00Z"}
    nb.cells = [nbformat.v4.new_markdown_cell("# t"), cell]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "00_t.ipynb"
    nbformat.write(nb, path)
    assert nbfiles.normalize([path]) == [path]
    out = nbformat.read(path, as_version=4)
    code = out.cells[1]
    assert code.outputs == [] and code.execution_count is None and "execution" not in code.metadata
    assert out.metadata.kernelspec == nbfiles.KERNELSPEC
    assert out.metadata.language_info["name"] == "python" and out.metadata.language_info["pygments_lexer"]
    text = path.read_text()
    assert text.endswith("}\n") and nbfiles.normalize([path]) == []   # idempotent: a second pass changes nothing
    assert nbfiles.main(["check", str(path)]) == 0
    path.write_text(text.replace('"version": 3', '"version": 2'))
    assert nbfiles.main(["check", str(path)]) == 1
