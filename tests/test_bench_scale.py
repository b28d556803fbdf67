"""benchmarks/scale.py --smoke, as a user runs it: every section on synthetic data, so the benchmark stays exercised."""
import os
import subprocess
import sys

import pandas as pd

from nnlens import paths


def test_smoke_benchmark_writes_its_three_tables(tmp_path):
    env = {**os.environ, "NNLENS_REPORTS": str(tmp_path / "reports"), "NNLENS_CACHE": str(tmp_path / "cache"),
           "PYTHONPATH": os.pathsep.join([str(paths.ROOT / "lib"), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, str(paths.ROOT / "benchmarks" / "scale.py"), "--smoke",
                        "--out", str(tmp_path / "reports" / "bench")],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    bench = tmp_path / "reports" / "bench"
    main = pd.read_csv(bench / "scale.csv")
    kernel = main[main.section == "kernel"].iloc[0]
    assert kernel.n == 400 and kernel.blocks == 28 and kernel.bytes_written >= kernel.kernel_bytes > 0
    assert 0 < kernel.peak_fraction and kernel.factor_bytes > 0
    assert list(main.loc[main.section == "kglm", "epoch"]) == [1, 2]
    tau = main[main.section == "tau"]
    assert {"trntk exact", "trntk khatri_rao", "trntk kron", "trntk dense"} <= set(tau.kernel)
    assert tau["tau"].between(-1, 1).all()
    assert not (tmp_path / "cache" / "scale" / "smoke.zarr").exists()                # removed without --keep
    proj = pd.read_csv(bench / "scale_projection.csv")
    assert {"exact", "dense", "kron", "khatri_rao", "trak_basic"} <= set(proj.method.dropna())
    assert (proj.loc[proj.method == "exact", "rel_err"] == 0).all()
    assert (proj.loc[proj.section != "wall", "load_after"] >= 0).all()                # every row records the load
    peak = pd.read_csv(bench / "scale_peak.csv")
    assert {"mlp", "cnn", "resnet18"} <= set(peak.model.dropna()) and (peak.peak_fraction.dropna() > 0).all()
