"""benchmarks/ntk.py at the smoke profile, as a user runs it, so the benchmark stays exercised."""
import os
import subprocess
import sys

from nnlens import paths
from nnlens.studies import profiles, s05_ntk


def test_smoke_benchmark_writes_a_table_notebook_05_reads(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(paths.ROOT / "lib"), os.environ.get("PYTHONPATH", "")])}
    bench = tmp_path / "reports" / "bench"
    r = subprocess.run([sys.executable, str(paths.ROOT / "benchmarks" / "ntk.py"), "--profile", "smoke",
                        "--out", str(bench)], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    cfg = profiles.load("05", "smoke")
    assert s05_ntk.bench_ready(cfg, "smoke", bench)                       # what the runner asks before notebook 05
    df = s05_ntk.load_bench(cfg, "smoke", bench)
    assert set(s05_ntk.SECTIONS) <= set(df.section)
    assert set(df.profile) == {"smoke"} and set(df.config) == {s05_ntk.config_id(cfg)}
    assert (df.loc[df.section == "agreement", "rel_err"] < 1e-4).all()     # float32, exact methods
    rows = s05_ntk.claims({"bench": df, "limits": s05_ntk.limit_checks(0)}, cfg)
    assert {r.id for r in rows} >= {"05.1", "05.2", "05.10", "05.11"}
