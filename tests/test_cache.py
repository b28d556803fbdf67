"""Caches are keyed by the code that made the artifact: a code change misses, never masks an error."""
import json
import shutil
import sys

import pytest
import torch

from nnlens import cache, data, models, sweeps, train


@pytest.fixture(scope="module")
def tiny():
    return data.digits(n_train=64, n_test=32, seed=0)


def test_closure_follows_imports_and_only_them():
    mods = cache.closure("nnlens.train")
    assert {"nnlens.train", "nnlens.models", "nnlens.utils", "nnlens", "nnlens.cache"} <= set(mods)
    assert not [m for m in mods if m.startswith(("nnlens.report", "nnlens.studies", "nnlens.workbook"))]  # the wings
    s04 = cache.closure("nnlens.studies.s04_anova")
    assert {"nnlens.studies", "nnlens.train", "nnlens.sweeps", "nnlens.data"} <= set(s04)
    ntk = cache.closure("nnlens.ntk")
    assert "nnlens.ntk.engine" in ntk                                        # relative import inside a package


def test_code_hash_changes_with_the_source_of_a_module_it_imports(tmp_path, monkeypatch):
    """A module outside the package (like a test's job) is hashed with the nnlens modules it imports."""
    mod = tmp_path / "cachejob_mod.py"
    mod.write_text("from nnlens import utils\n\ndef job(x):\n    return {'x': x}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    before = cache.code_hash("cachejob_mod")
    assert "nnlens.utils" in cache.closure("cachejob_mod")
    assert cache.code_hash("cachejob_mod") == before                         # stable
    mod.write_text("from nnlens import utils\n\ndef job(x):\n    return {'x': x + 1}\n")
    assert cache.code_hash("cachejob_mod") != before                         # its own source
    # a change in an imported nnlens module: point the package folder at an edited copy
    pkg = tmp_path / "nnlens"
    shutil.copytree(cache.ROOT, pkg, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(cache, "ROOT", pkg)
    h0 = cache.code_hash("nnlens.train")
    (pkg / "utils.py").write_text((pkg / "utils.py").read_text() + "\n# edited\n")
    assert cache.code_hash("nnlens.train") != h0
    h1 = cache.code_hash("nnlens.train")
    (pkg / "report" / "figures.py").write_text((pkg / "report" / "figures.py").read_text() + "\n# edited\n")
    assert cache.code_hash("nnlens.train") == h1                             # not imported by training


def test_an_imported_module_is_hashed_as_it_runs_not_as_edited_since(tmp_path, monkeypatch):
    """A running process executes the code it imported: editing the file later must not change its key."""
    mod = tmp_path / "cachejob_loaded.py"
    mod.write_text("def job(x):\n    return {'x': x}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import cachejob_loaded  # noqa: F401  (imported: now it is code that runs here)

    try:
        before = cache.code_hash("cachejob_loaded")
        mod.write_text("def job(x):\n    return {'x': x + 1}\n")
        assert cache.code_hash("cachejob_loaded") == before
        monkeypatch.setattr(cache, "_RUNNING", {})         # a new process: sees the edit
        assert cache.code_hash("cachejob_loaded") != before
    finally:
        sys.modules.pop("cachejob_loaded", None)


def test_fit_cache_misses_after_a_code_change(tiny, monkeypatch):
    spec = models.spec_for("mlp", tiny, width=8, depth=1)
    cfg = train.TrainConfig(optimizer="sgd", lr=0.1, epochs=1, batch_size=32)
    first = train.fit(spec, tiny, cfg)
    assert train.fit(spec, tiny, cfg).cached
    real = cache.code_hash
    monkeypatch.setattr(cache, "code_hash", lambda m: real(m) + "-edited")
    again = train.fit(spec, tiny, cfg)
    assert not again.cached and again.key != first.key


def test_fit_that_raises_after_a_code_change_is_not_masked_by_the_cache(tiny, monkeypatch):
    spec = models.spec_for("mlp", tiny, width=8, depth=1)
    cfg = train.TrainConfig(optimizer="sgd", lr=0.1, epochs=1, batch_size=32)
    train.fit(spec, tiny, cfg)                                               # a good model is cached

    def broken(*a, **k):
        raise RuntimeError("the new training code is broken")

    real = cache.code_hash
    monkeypatch.setattr(cache, "code_hash", lambda m: real(m) + "-edited")
    monkeypatch.setattr(train, "_train", broken)
    with pytest.raises(RuntimeError, match="new training code is broken"):
        train.fit(spec, tiny, cfg)


def square(x: int) -> dict:
    return {"y": x * x}


def test_sweep_store_misses_after_a_code_change(tmp_path, monkeypatch):
    store = tmp_path / "store"
    grid = [{"x": 1}, {"x": 2}]
    sweeps.run(square, grid, backend="sequential", store=store)
    assert len(list(store.glob("*.json"))) == 2
    for p in store.glob("*.json"):                                           # tamper: a cached result of "old code"
        doc = json.loads(p.read_text())
        doc["result"]["y"] = -1
        p.write_text(json.dumps(doc))
    assert list(sweeps.run(square, grid, backend="sequential", store=store)["y"]) == [-1, -1]  # same code: hit
    real = cache.code_hash
    monkeypatch.setattr(cache, "code_hash", lambda m: real(m) + "-edited")
    assert list(sweeps.run(square, grid, backend="sequential", store=store)["y"]) == [1, 4]    # new code: recomputed
    assert sweeps.job_key(square, {"x": 1}) != sweeps.job_key(square, {"x": 1}, code=real(__name__))


def test_torch_version_is_in_the_training_key(tiny, monkeypatch):
    spec = models.spec_for("mlp", tiny, width=8, depth=1)
    cfg = train.TrainConfig(epochs=1)
    k = train.cache_key(spec, tiny, cfg)
    monkeypatch.setattr(torch, "__version__", "0.0.0-other")
    assert train.cache_key(spec, tiny, cfg) != k
    assert sys.modules["nnlens.train"] is train
