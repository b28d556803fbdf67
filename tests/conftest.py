"""Shared fixtures: every test writes reports and caches into its own temporary folders."""
import os

import pytest
import torch


@pytest.fixture(autouse=True)
def _isolated_outputs(tmp_path, monkeypatch):
    monkeypatch.setenv("NNLENS_REPORTS", str(tmp_path / "reports"))
    monkeypatch.setenv("NNLENS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("NNLENS_PROGRESS", "0")
    monkeypatch.delenv("NNLENS_PROFILE", raising=False)
    yield


@pytest.fixture
def out(tmp_path):
    """A run's outputs in the test's own folder (``report.Outputs``)."""
    from nnlens import report

    return report.Outputs(tmp_path / "reports")


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


torch.set_num_threads(min(2, os.cpu_count() or 1))
