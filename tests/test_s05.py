"""Study 05's claims on hand-built benchmark tables: every row can hold and can fail."""
import importlib
import subprocess

import numpy as np
import pandas as pd
import pytest

from nnlens.report import Threshold
from nnlens.studies import profiles
from nnlens.studies import s05_ntk as s05

CFG = profiles.load("05", "default")


def bench(good: bool = True) -> pd.DataFrame:
    """A benchmark table with every section the claims read; ``good=False`` misses every target."""
    f = 1.0 if good else 2000.0
    rows = []

    def add(**kw):
        rows.append({"profile": "default", "config": s05.config_id(CFG), "extrapolated": False, "peak_mb_run": np.nan,
                     **kw})
    for kind, base in (("pntk", 90.0), ("trntk", 1100.0)):
        add(section="headline", model="mlp", kind=kind, method="structured", seconds=0.1 * f, n=1000, n_run=1000)
        add(section="headline", model="mlp", kind=kind, method="unavoidable", seconds=0.095, n=1000, n_run=1000)
        add(section="headline", model="mlp", kind=kind, method="jac_contract", seconds=base, n=1000, n_run=128,
            extrapolated=True, rel_err=2e-7 if good else 3e-5)
    add(section="headline", model="cnn", kind="trntk", method="structured", seconds=1.4 * f, n=500, n_run=500)
    add(section="headline", model="cnn", kind="trntk", method="jac_contract", seconds=30.0, n=500, n_run=128,
        extrapolated=True, rel_err=6e-7)
    add(section="extrap_check", model="mlp", kind="pntk", method="jac_contract", seconds=3.9 * (1 if good else 2),
        n=256, n_run=128, extrapolated=True)
    add(section="extrap_check", model="mlp", kind="pntk", method="jac_contract", seconds=3.6, n=256, n_run=256)
    add(section="big_n", model="mlp", kind="pntk", method="structured", seconds=26.0, n=20000, n_run=20000,
        width=512, depth=3, peak_mb=1900.0 if good else 9000.0, kernel_mb=1526.0)
    for n in (100, 250):
        for method, mb in (("jac_contract", 300.0), ("jac_layer", 120.0 if good else 310.0)):
            add(section="n", model="mlp", kind="pntk", method=method, seconds=1.0, n=n, n_run=n, width=512, depth=2,
                peak_mb_run=mb)
    for kind in ("pntk", "trntk"):
        for method, sec in (("structured", 0.01), ("proj_gemm", 1.3), ("projected", 1.6 if good else 2.5)):
            add(section="proj_cost", model="mlp", kind=kind, method=method, seconds=sec, n=48, n_run=48,
                proj_dim=1024, threads=1, rel_err=0.03 if method == "projected" else np.nan)
    add(section="proj_cost", model="mlp", kind="pntk", method="trak_basic", seconds=12.0 if good else 1.0, n=48,
        n_run=48, proj_dim=1024, threads=1)
    add(section="sgemm", model="none", method="sgemm", seconds=0.1, n=2048)
    add(section="peak_fraction", model="mlp", kind="pntk", method="structured", seconds=0.1, peak_fraction=0.7)
    for sec in ("width", "depth", "cnn_n"):
        add(section=sec, model="mlp", kind="pntk", method="structured", seconds=0.1, n=250, n_run=250, width=64,
            depth=2)
    for m in ("structured", "autodiff"):
        add(section="agreement", model="mlp", kind="pntk", method=m, n=32, rel_err=7e-7 if good else 1e-4)
    for kind in ("pntk", "trntk"):
        for k in (16, 64, 256, 1024):
            add(section="projection", model="mlp", kind=kind, method="structured", proj_dim=k, n=100, seed=0,
                rel_err=0.5 * k ** (-0.5 if good else -0.2))
    add(section="wall", method="total", seconds=250.0 if good else 700.0)
    return pd.DataFrame(rows)


def limits(good: bool = True) -> dict:
    e = 1e-16 if good else 1e-3
    return dict(multi_output_entk=e, biases_trntk=e, cnn_trntk=e, cnn_entk=e, layerwise_sum=e, layerwise_parts=5)


IDS = [f"05.{i}" for i in range(1, 18)]


def test_every_claim_holds_on_a_good_table():
    rows = s05.claims({"bench": bench(True), "limits": limits(True)}, CFG)
    assert [r.id for r in rows] == IDS
    assert all(r.holds for r in rows), [r for r in rows if not r.holds]
    assert all(isinstance(r.holds, bool) for r in rows)


def test_every_claim_fails_on_a_bad_table():
    rows = s05.claims({"bench": bench(False), "limits": limits(False)}, CFG)
    assert [r.id for r in rows] == IDS
    assert not any(r.holds for r in rows), [r for r in rows if r.holds]


# one number per row, moved just past its threshold (strict cuts at the value itself): only that row fails
SUMMARY_MISSES = {
    "05.1": ("mlp_pntk_rel_err", 1.1e-5), "05.2": ("agreement_max_rel_err", 1.1e-5),
    "05.3": ("mlp_pntk_speedup", 9.9), "05.4": ("mlp_trntk_speedup", 9.9), "05.5": ("cnn_trntk_speedup", 2.9),
    "05.6": ("mlp_trntk_over_unavoidable", 2.1), "05.7": ("extrap_over_measured", 1.3),
    "05.8": ("big_n_extra_gb", 4.0), "05.9": ("bench_wall_s", 600.0), "05.10": ("proj_slope_pntk", -0.34),
    "05.16": ("proj_cost", {"pntk": 1.2, "trntk": 1.51}), "05.17": ("trak_over_projected", 0.99),
}
LIMIT_MISSES = {"05.11": ("layerwise_sum", 1.1e-10), "05.12": ("multi_output_entk", 1.1e-8),
                "05.13": ("biases_trntk", 1.1e-8), "05.14": ("cnn_entk", 1.1e-8)}
TIMED = {"05.3", "05.4", "05.5", "05.6", "05.7", "05.9", "05.16", "05.17"}


def _verdicts(rows) -> dict:
    return {r.id: r.verdict for r in rows}


@pytest.mark.parametrize("cid", IDS)
def test_each_row_fails_alone_when_its_number_misses(cid, monkeypatch):
    claims_module = importlib.import_module("nnlens.studies.s05_ntk.claims")
    df, lim = bench(True), limits(True)
    if cid in SUMMARY_MISSES:
        key, value = SUMMARY_MISSES[cid]
        s = {**s05.summary(df), key: value}
        monkeypatch.setattr(claims_module, "summary", lambda _df: s)
    elif cid in LIMIT_MISSES:
        key, value = LIMIT_MISSES[cid]
        lim = {**lim, key: value}
    else:                                                               # 05.15: layer-wise peak above the full one
        df = df.assign(peak_mb_run=np.where(df.method == "jac_layer", 310.0, df.peak_mb_run))
    verdicts = _verdicts(s05.claims({"bench": df, "limits": lim}, CFG))
    assert verdicts.pop(cid) == "does not hold"
    assert set(verdicts.values()) == {"holds"}


def test_every_threshold_is_data_with_a_reason():
    rows = s05.claims({"bench": bench(True), "limits": limits(True)}, CFG)
    for r in rows:
        assert isinstance(r.threshold, Threshold) and r.threshold.reason and r.kind == "engineering target"
        assert ("machine's load" in r.threshold.reason) == (r.id in TIMED), r.id
    row = {r.id: r for r in rows}
    assert row["05.3"].value == "900x" and row["05.3"].threshold.text() == "baseline time / structured time ≥ 10x"
    assert row["05.8"].value == "0.37 GB" and row["05.8"].threshold.text() == "extra peak memory < 4 GB"
    assert row["05.1"].value == "6e-07 (relative Frobenius error)"


def test_rows_without_data_are_left_out():
    df = bench(True)
    df = df[~df.section.isin(["extrap_check", "big_n"])].assign(peak_mb_run=np.nan)   # smoke: no memory
    df = df[df.method != "trak_basic"]                                                   # traker not installed
    ids = [r.id for r in s05.claims({"bench": df, "limits": limits()}, CFG)]
    assert "05.7" not in ids and "05.8" not in ids and "05.15" not in ids and "05.17" not in ids


def test_projection_slope_is_measured():
    s = s05.summary(bench(True))
    assert s["proj_slope_pntk"] == pytest.approx(-0.5) and s["proj_slope_trntk"] == pytest.approx(-0.5)
    assert s["mlp_pntk_speedup"] == pytest.approx(900.0)
    assert s["proj_cost"]["pntk"] == pytest.approx(1.6 / 1.31) and s["trak_over_projected"] == pytest.approx(7.5)


def _write(out, df):
    path = out.bench / "ntk.csv"
    df.to_csv(path, index=False)
    return path


def test_load_bench_reads_a_table_of_its_config(out, monkeypatch):
    _write(out, bench(True))
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("the library never starts the benchmark"))
    assert s05.bench_ready(CFG, "default", out.bench)
    assert len(s05.load_bench(CFG, "default", out.bench)) == len(bench(True))


def test_a_table_of_another_config_or_profile_is_stale_and_says_what_makes_it(out, monkeypatch):
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("the library never starts the benchmark"))
    with pytest.raises(FileNotFoundError, match="is missing: run `python benchmarks/ntk.py --profile default"):
        s05.load_bench(CFG, "default", out.bench)
    _write(out, bench(True).assign(config="0123456789ab"))
    assert not s05.bench_ready(CFG, "default", out.bench)
    with pytest.raises(FileNotFoundError, match="another profile, config or benchmark version"):
        s05.load_bench(CFG, "default", out.bench)
    _write(out, bench(True))
    assert not s05.bench_ready(CFG, "smoke", out.bench)
    _write(out, bench(True)[lambda d: d.section != "wall"])                  # a section missing
    assert not s05.bench_ready(CFG, "default", out.bench)


def test_figures_draw_from_the_table():
    import matplotlib.pyplot as plt
    for fig in (s05.plot_scaling(bench(True)), s05.plot_projection(bench(True))):
        assert len(fig.legends) + sum(bool(ax.get_legend()) for ax in fig.axes) >= 1
        plt.close(fig)
    assert len(s05.table(bench(True), "big_n")) == 1 and len(s05.projection_cost(bench(True))) == 2
