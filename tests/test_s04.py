"""Study 04 (optimizer ANOVA): claims on hand-built results (each row holding and failing), the design
(step-matched budgets, the validation split), the per-cell learning-rate walk and the training job."""
import math

import numpy as np
import pandas as pd
import pytest

from nnlens import realdata, report
from nnlens.studies import profiles
from nnlens.studies import s04_anova as s04

CFG = profiles.load("04", "default")
SMOKE = profiles.load("04", "smoke")


# --------------------------------------------------------------------------- claims
def _arm(p_hc3=1e-6, worst_batches=(1024, 1024, 1024, 16, 64), lower=2, higher=0, p_majority=0.9, mde=3.0):
    idx = ["C(optimizer)", "C(batch)", "C(optimizer):C(batch)", "Residual"]
    anova = pd.DataFrame({"F": [2.0, 30.0, 1.0, np.nan], "PR(>F)": [0.3, 1e-9, 0.5, np.nan],
                          "partial_eta_sq": [0.1, 0.6, 0.05, np.nan]}, index=idx)
    hc3 = anova.assign(**{"F": [2.0, 9.0, 1.0, np.nan], "PR(>F)": [0.3, p_hc3, 0.5, np.nan]})
    art = anova.iloc[:3].assign(**{"PR(>F)": [0.2, 1e-7, 0.6]})
    worst = pd.DataFrame({"optimizer": [f"o{i}" for i in range(len(worst_batches))],
                          "worst_batch": list(worst_batches)})
    n = 4
    flags = ["lower"] * lower + ["higher"] * higher + ["none"] * (n - lower - higher)
    ratio = [0.2 if f == "lower" else 5.0 if f == "higher" else 1.1 for f in flags]
    pooled = pd.DataFrame({"batch": [16, 64, 256, 1024], "ratio": ratio,
                           "p_holm": [0.01 if f != "none" else 0.6 for f in flags],
                           "lower": [f == "lower" for f in flags], "higher": [f == "higher" for f in flags]})
    vr = pd.DataFrame({"batch": [16, 64, 256, 1024], "second": "second order", "first": "first order",
                       "ratio": ratio, "log_lo": np.log(ratio) - 0.5, "log_hi": np.log(ratio) + 0.5})
    return {"anova": anova, "anova_hc3": hc3, "art": art, "worst": worst, "variance_ratios": vr,
            "pooled_variance": pooled, "mde_ratio": mde, "n_seeds": 30, "p_majority": p_majority,
            "full_batch": 1024}


def _all(**arms):
    return {a: arms.get(a) or _arm() for a in s04.ARMS}


def _verdicts(**arms):
    rows = s04.claims(_all(**arms), CFG)
    assert all(isinstance(r, report.Row) for r in rows)
    return {r.id: r.holds for r in rows}


def test_claims_hold_on_results_that_support_them():
    assert _verdicts() == {f"04.{i}": True for i in range(1, 11)}


def test_new_arms_give_the_batch_and_full_batch_claims_each_failing_on_its_own():
    rows = {r.id: r for r in s04.claims(_all(), CFG)}
    assert "gradient-evaluation-matched" in rows["04.7"].statement and "early-stopped" in rows["04.10"].statement
    assert not any("variance" in rows[i].statement for i in ("04.7", "04.8", "04.9", "04.10"))   # too few seeds
    assert _verdicts(grads=_arm(p_hc3=0.2)) == {**_verdicts(), "04.7": False}                 # null: no batch effect
    assert _verdicts(grads=_arm(worst_batches=(16, 64, 1024, 256, 16))) == {**_verdicts(), "04.8": False}
    assert _verdicts(converged=_arm(p_hc3=0.2)) == {**_verdicts(), "04.9": False}
    assert _verdicts(converged=_arm(worst_batches=(1024, 16, 64, 16, 256))) == {**_verdicts(), "04.10": False}


def test_eta_table_has_every_arm_and_term():
    t = s04.eta_table(_all())
    assert list(t["arm"]) == list(s04.ARMS) and (t["eta_batch"] == 0.6).all() and (t["eta_interaction"] == 0.05).all()
    assert (t["p_hc3_batch"] == 1e-6).all() and set(t["label"]) == set(s04.ARM_LABELS.values())


def test_each_claim_fails_on_its_own_in_either_arm():
    assert _verdicts(steps=_arm(p_hc3=0.2)) == {**_verdicts(), "04.1": False}
    assert _verdicts(epochs=_arm(p_hc3=0.2))["04.4"] is False
    assert _verdicts(steps=_arm(worst_batches=(1024, 1024, 16, 64)))["04.2"] is False    # half is not a majority
    assert _verdicts(epochs=_arm(worst_batches=(16,) * 5))["04.5"] is False
    assert _verdicts(steps=_arm(lower=0))["04.3"] is False
    assert _verdicts(epochs=_arm(lower=0))["04.6"] is False


def test_04_1_uses_the_robust_test_not_the_classical_one():
    r = _arm(p_hc3=0.08)                       # classical p = 1e-9 and aligned-rank p = 1e-7 would pass
    row = s04.claims(_all(steps=r), CFG)[0]
    assert row.holds is False and "HC3" in row.value and "classical p = 1.00e-09" in row.value


def test_04_3_counts_both_directions():
    assert _verdicts(steps=_arm(lower=1, higher=2))["04.3"] is False     # the audit's case: one lower, two higher
    assert _verdicts(steps=_arm(lower=2, higher=2))["04.3"] is False     # a tie is not "lower"
    assert _verdicts(steps=_arm(lower=2, higher=1))["04.3"] is True
    row = s04.claims(_all(steps=_arm(lower=1, higher=2)), CFG)[2]
    assert "lower: @16 x0.2" in row.value and "higher: @64 x5" in row.value


def test_04_3_is_inconclusive_when_the_design_cannot_detect_the_effect():
    rows = {r.id: r for r in s04.claims(_all(steps=_arm(lower=0, mde=6.0), epochs=_arm(lower=0, mde=2.0)), CFG)}
    assert rows["04.3"].verdict == "inconclusive" and "ratio of 6x" in rows["04.3"].note
    assert rows["04.6"].verdict == "does not hold"                       # could detect 2x, found nothing


def test_pooled_variance_test_null_and_effect_at_the_design_size():
    rng = np.random.default_rng(0)
    first, second = ["sgdm", "adam"], ["lbfgs", "adahessian", "sophiah"]

    def grid(ratio):
        return pd.DataFrame([{"batch": b, "optimizer": o, "best_acc": rng.standard_normal() /
                              (np.sqrt(ratio) if o in second and b == 16 else 1.0)}
                             for b in (16, 64, 256, 1024) for o in first + second for _ in range(30)])
    null = [s04.variance.pooled_tests(grid(1.0), "best_acc", first, second)["lower"].any() for _ in range(40)]
    effect = [s04.variance.pooled_tests(grid(6.0), "best_acc", first, second)["lower"].any() for _ in range(40)]
    assert np.mean(null) <= 0.15 and np.mean(effect) >= 0.8
    ci = s04.variance.ratio_intervals(grid(6.0), "best_acc", first, second)
    pooled = ci[(ci["second"] == "second order") & (ci["batch"] == 16)].iloc[0]
    assert pooled["log_hi"] < 0 < ci[(ci["second"] == "second order") & (ci["batch"] == 64)].iloc[0]["log_hi"]


def test_min_detectable_ratio_falls_with_seeds():
    m10, _ = s04.variance.min_detectable_ratio(10, 2, 3, 4)
    m30, curve = s04.variance.min_detectable_ratio(30, 2, 3, 4)
    assert m30 < m10 and curve["power"].iloc[0] < 0.2                    # no power at a 1.25x ratio


def test_claims_need_the_study_config():
    with pytest.raises(TypeError, match="Study04"):
        s04.claims(_all(), profiles.load("01", "default"))


# --------------------------------------------------------------------------- design
@pytest.mark.skipif(bool(realdata.missing("mnist")), reason="needs MNIST in data/raw (make data)")
def test_default_split_and_budgets():
    assert CFG.dataset == "mnist" and SMOKE.dataset == "digits"                       # smoke needs no files
    fit, tune = s04.splits(CFG.dataset, CFG.n_train, CFG.n_val, CFG.n_test, CFG.pool)
    assert len(fit.x_train) == 1024 and len(tune.x_test) == CFG.n_val and len(fit.x_test) == CFG.n_test == 2000
    assert fit.x_train.shape[1:] == (1, 14, 14) and np.bincount(fit.y_train.numpy()).min() >= 100
    assert tune.x_train is fit.x_train
    rows = {tuple(r) for r in tune.x_test.flatten(1).numpy().round(5)}
    assert not rows & {tuple(r) for r in fit.x_train.flatten(1).numpy().round(5)}      # validation is held out
    assert np.bincount(tune.y_test.numpy()).min() >= 30                                # stratified
    b = s04.budgets(CFG)
    steps, epochs = b[b["arm"] == "steps"], b[b["arm"] == "epochs"]
    assert list(steps["batch"]) == [16, 64, 256, 1024]
    assert set(steps["updates"]) == {CFG.epochs * 64}                                  # step-matched exactly
    assert list(steps["eval_every"]) == [1, 4, 16, 64] and list(steps["epochs"]) == [3, 12, 48, 192]
    assert list(epochs["epochs"]) == [CFG.epochs] * 4 and list(epochs["updates"]) == [192, 48, 12, 3]
    grads, conv = b[b["arm"] == "grads"], b[b["arm"] == "converged"]
    assert set(grads["grad_evals"]) == {CFG.epochs * 1024} and list(grads["epochs"]) == [CFG.epochs] * 4
    assert set(conv["updates"]) == {s04.CONVERGED_CAP * CFG.epochs * 64} and list(conv["eval_every"]) == [1, 4, 16, 64]
    with pytest.raises(ValueError, match="n_val"):
        s04.splits("digits", 100, 80, 50)


def test_train_job_reads_accuracy_at_matched_updates():
    kw = dict(dataset="digits", n_train=200, n_val=40, n_test=60, model="mlp", width=8, depth=1, optimizer="sgdm",
              lr=0.1, seed=0)
    full = s04.train_job(**kw, split="test", batch_size=0, epochs=8, eval_every=4)
    small = s04.train_job(**kw, split="val", batch_size=40, epochs=2, eval_every=1)
    assert full["updates"] == small["updates"] == 8 and full["batch"] == 160
    assert len(full["curve"]) == len(small["curve"]) == 2 and full["best_acc"] == max(full["curve"])
    assert full["best_update"] in (4, 8) and full["finite"] and full["cpu_seconds"] > 0
    assert all(a * 60 == round(a * 60) for a in full["curve"])                         # read on the 60 test images
    assert all(a * 40 == round(a * 40) for a in small["curve"])                        # ... or the 40 validation ones
    with pytest.raises(ValueError, match="multiple"):
        s04.train_job(**kw, split="test", batch_size=0, epochs=5, eval_every=4)


def test_diverged_run_scores_zero_after_divergence():
    out = s04.train_job(dataset="digits", n_train=200, n_val=40, n_test=60, split="test", model="mlp", width=8,
                        depth=1, optimizer="sgdm", lr=1e12, seed=0, batch_size=0, epochs=6, eval_every=2)
    assert not out["finite"] and out["curve"][1:] == [0.0, 0.0] and out["final_acc"] == 0.0


# --------------------------------------------------------------------------- the learning-rate walk
def _fake_run(peak: dict, calls: list):
    """A stand-in for the sweep: validation accuracy peaks at ``peak[optimizer]``, falls with log-distance."""
    def run(cfg, jobs, store, address):
        calls.append(jobs)
        return pd.DataFrame([{"best_acc": 0.9 - 0.1 * abs(math.log10(j["lr"] / peak[j["optimizer"]])),
                              "cpu_seconds": 0.01} for j in jobs])
    return run


def test_lr_walk_finds_the_peak_outside_the_start_window(monkeypatch):
    calls = []
    peak = {"sgdm": 0.3, "adam": 1e-3, "lbfgs": 1.0, "adahessian": 0.03}           # sgdm and adam: outside
    monkeypatch.setattr(s04.runs, "_run", _fake_run(peak, calls))
    cfg = profiles.load("04", "smoke", lr_grid=(("sgdm", (0.01, 0.03, 0.1, 0.3, 1.0)),
                                                 ("adam", (3e-4, 1e-3, 3e-3, 1e-2, 3e-2)),
                                                 ("lbfgs", (0.3, 1.0, 3.0)), ("adahessian", (0.01, 0.03, 0.1))))
    table, chosen = s04.tune_lr(cfg)
    got = chosen.groupby("optimizer")["lr"].agg(set).to_dict()
    assert got == {o: {lr} for o, lr in peak.items()}
    assert set(chosen["arm"]) == set(s04.TUNED) and len(chosen) == 3 * len(cfg.batch_sizes) * len(cfg.optimizers)
    jobs = [j for c in calls for j in c]
    assert {j["split"] for j in jobs} == {"val"}
    assert {j["seed"] for j in jobs} == {s04.TUNE_SEED0 + i for i in range(cfg.tune_seeds)}
    assert not {j["seed"] for j in jobs} & set(range(cfg.seeds))                     # never a grid seed
    tried = table.groupby(["arm", "batch_size", "optimizer"])["lr"].agg(set)
    assert tried[("steps", 0, "sgdm")] == {0.03, 0.1, 0.3, 1.0}                       # walked one step up
    assert tried[("steps", 0, "adam")] == {3e-4, 1e-3, 3e-3, 1e-2}                    # ... and one down
    assert not chosen.loc[chosen["optimizer"] == "sgdm", "at_edge"].any()
    assert len(calls) == 2                                                            # every cell advanced together


def test_lr_walk_marks_a_choice_at_the_end_of_the_ladder(monkeypatch):
    monkeypatch.setattr(s04.runs, "_run", _fake_run({"sgdm": 10.0, "adam": 1e-2, "lbfgs": 1.0, "adahessian": 0.1}, []))
    _, chosen = s04.tune_lr(SMOKE)
    sgdm = chosen[chosen["optimizer"] == "sgdm"]
    assert (sgdm["lr"] == 0.3).all() and sgdm["at_edge"].all()


def test_lr_grid_must_cover_every_optimizer_in_increasing_order():
    with pytest.raises(ValueError, match="no candidates"):
        s04.tune_lr(profiles.load("04", "smoke", lr_grid=(("sgdm", (0.1,)),)))
    with pytest.raises(ValueError, match="increasing"):
        s04.tune_lr(profiles.load("04", "smoke", lr_grid=(("sgdm", (0.3, 0.1)), ("adam", (0.01,)),
                                                           ("lbfgs", (1.0,)), ("adahessian", (0.1,)))))


def test_shared_cells_run_once(monkeypatch):
    calls = []
    monkeypatch.setattr(s04.runs.sweeps, "run", lambda fn, grid, **kw: calls.append(grid) or pd.DataFrame(
        [{**g, "best_acc": 0.5, "cpu_seconds": 1.0, "batch": g["batch_size"] or 256} for g in grid]))
    chosen = pd.DataFrame([{"arm": a, "optimizer": o, "batch_size": b, "lr": 0.1} for a in s04.TUNED
                           for o in SMOKE.optimizers for b in SMOKE.batch_sizes])
    df = s04.run_grid(SMOKE, chosen)
    n_cells = len(SMOKE.optimizers) * SMOKE.seeds
    first = len(s04.orders(SMOKE)[0]) * len(SMOKE.batch_sizes) * SMOKE.arm_seeds
    assert len(df) == 3 * len(SMOKE.batch_sizes) * n_cells
    assert len(calls[0]) == len(df) - n_cells - first      # the smallest batch: one run for steps and epochs; the
    grads = df[df["arm"] == "grads"]                        # grads arm's first-order cells are the epochs arm's jobs
    assert grads["grad_budget"].isna().eq(grads["optimizer"].isin(s04.orders(SMOKE)[0])).all()


def test_sophia_uses_curvature_and_lbfgs_counts_its_gradient_evaluations():
    kw = dict(dataset="digits", n_train=200, n_val=40, n_test=60, split="val", model="mlp", width=8, depth=1,
              batch_size=40, epochs=2, eval_every=1, seed=0)
    sophia = s04.train_job(**kw, optimizer="sophiah", lr=0.01)
    assert 0.0 <= sophia["clip_fraction"] <= 1.0 and 0.0 <= sophia["hessian_nonpositive"] <= 1.0
    assert sophia["clip_fraction"] < 0.9                  # the shipped SophiaH clipped 89-100%: sign-momentum
    lbfgs = s04.train_job(**kw, optimizer="lbfgs", lr=1.0)
    assert lbfgs["grad_evals_per_update"] > 1.0 and math.isnan(lbfgs["clip_fraction"])
    assert s04.train_job(**kw, optimizer="sgdm", lr=0.1)["grad_evals_per_update"] == 1.0


def test_train_job_reads_only_its_marks_and_equals_a_run_read_every_epoch():
    """train_job evaluates only every eval_every epochs (train.fit's eval_every); the readings equal those of
    a run evaluated after every epoch (evaluation draws no randomness), and pooling 2x2 halves each image side."""
    from nnlens import models, train

    kw = dict(dataset="digits", n_train=200, n_val=40, n_test=60, model="mlp", width=8, depth=1, optimizer="sgdm",
              lr=0.1, seed=0, split="test", batch_size=0, epochs=8, eval_every=4)
    out = s04.train_job(**kw)
    fit, _ = s04.splits("digits", 200, 40, 60)
    h = train.fit(models.spec_for("mlp", fit, width=8, depth=1), fit,
                  train.TrainConfig(optimizer="sgdm", lr=0.1, epochs=8, batch_size=0, seed=0, schedule="constant"),
                  cache=False,
                  progress=False, device="cpu").history
    assert out["curve"] == [float(h.set_index("epoch").loc[e, "test_acc"]) for e in (4, 8)]
    pooled, held = s04.splits("digits", 200, 40, 60, 2)
    loaded = np.concatenate([pooled.x_train.numpy(), held.x_test.numpy()])             # the 200 standardized ones
    assert pooled.x_train.shape[1:] == (1, 4, 4) and abs(loaded.mean()) < 1e-5 and abs(loaded.std() - 1) < 1e-2
    assert s04.train_job(**kw, pool=2)["finite"]


def test_seed_offset_moves_the_grid_seeds_to_a_disjoint_set(monkeypatch, tmp_path):
    from nnlens.studies.s04_anova import runs
    seen = {}

    def fake_run(cfg, jobs, store, address):
        seen.setdefault(cfg.seed_offset, set()).update(j["seed"] for j in jobs)
        return pd.DataFrame([dict(j, peak_test_acc=0.5, peak_val_acc=0.5, cpu_seconds=0.0, batch=j["batch_size"])
                             for j in jobs])

    monkeypatch.setattr(runs, "_run", fake_run)
    for off in (0, 1):
        cfg = profiles.load("04", "smoke", seed_offset=off)
        chosen = pd.DataFrame([{"arm": b.arm, "optimizer": o, "batch_size": b.batch_size, "lr": 0.1}
                               for b in runs.budgets(cfg).itertuples() for o in cfg.optimizers])
        runs.run_grid(cfg, chosen, store=tmp_path)
    assert seen[0] == set(range(3)) and seen[1] == {100_000 + i for i in range(3)}


def test_gradient_matched_job_reads_at_fractions_of_its_budget():
    kw = dict(dataset="digits", n_train=200, n_val=40, n_test=60, model="mlp", width=8, depth=1, seed=0,
              split="test", batch_size=40, epochs=3, eval_every=1)
    plain = s04.train_job(**kw, optimizer="sgdm", lr=0.1)
    assert s04.train_job(**kw, optimizer="sgdm", lr=0.1, grad_budget=3 * 160)["curve"] == plain["curve"]
    lbfgs = s04.train_job(**kw, optimizer="lbfgs", lr=1.0, grad_budget=3 * 160)
    assert len(lbfgs["curve"]) == 3 and lbfgs["updates"] * lbfgs["grad_evals_per_update"] * 40 >= 3 * 160
    assert lbfgs["updates"] < plain["updates"] / 3                  # ~6 evaluations per update: far fewer updates


def test_converged_job_reports_test_accuracy_at_the_best_validation_reading():
    kw = dict(dataset="digits", n_train=200, n_val=40, n_test=60, model="mlp", width=8, depth=1, seed=0,
              optimizer="sgdm", lr=0.1, batch_size=40, eval_every=1)
    out = s04.arms.converged_job(**kw, epochs=60, patience=2)
    val, test = out["val_curve"], out["curve"]
    k = int(np.argmax(val))
    assert out["best_acc"] == test[k] and out["val_acc"] == max(val) and len(val) == len(test)
    assert len(val) - 1 - k == 2 and len(val) < 60 and out["stopped_early"]   # 2 readings without a gain
    assert out["updates"] == len(val) * 4 and out["best_update"] == (k + 1) * 4
    capped = s04.arms.converged_job(**kw, epochs=3, patience=50)    # the cap ends a run that never stalls
    assert len(capped["curve"]) == 3 and capped["curve"] == test[:3] and not capped["stopped_early"]
    table = s04.cells(pd.DataFrame([dict(out, arm="converged", optimizer="sgdm", lr=0.1, seed=0),
                                    dict(capped, arm="converged", optimizer="sgdm", lr=0.1, seed=1)]))
    assert table["stopped_early"].tolist() == [0.5]


def test_converged_arm_reuses_the_step_matched_lr_and_follows_seed_offset(monkeypatch, tmp_path):
    from nnlens.studies.s04_anova import runs
    seen = []

    def fake_run(cfg, jobs, store, address, fn=None):
        seen.extend(jobs)
        return pd.DataFrame([dict(j, best_acc=0.5, cpu_seconds=0.0, batch=j["batch_size"] or 256) for j in jobs])

    monkeypatch.setattr(runs, "_run", fake_run)
    cfg = profiles.load("04", "smoke", seed_offset=1)
    chosen = pd.DataFrame([{"arm": a, "optimizer": o, "batch_size": b, "lr": 0.1 if a == "steps" else 9.0}
                           for a in s04.TUNED for o in cfg.optimizers for b in cfg.batch_sizes])
    df = s04.run_converged(cfg, chosen, store=tmp_path)
    assert {j["lr"] for j in seen} == {0.1} and {j["seed"] for j in seen} == {100_000 + i for i in range(3)}
    assert set(df["arm"]) == {"converged"}
    assert len(df) == len(cfg.optimizers) * len(cfg.batch_sizes) * cfg.converged_seeds
    assert {j["epochs"] for j in seen if j["batch_size"] == 64} == {s04.CONVERGED_CAP * cfg.epochs}
