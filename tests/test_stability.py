"""Stability table: reruns with the nuisances varied, merged into the ledger with one rule."""
import json
import os

import pandas as pd
import pytest

from nnlens.report import ledger
from nnlens.studies import profiles
from nnlens.workbook import stability


def _claims(folder, rows):
    (folder / "claims").mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=ledger.CLAIM_COLUMNS).to_csv(folder / "claims" / "03.csv", index=False)


ROWS = [
    {"id": "03.1", "kind": "paper claim", "statement": "s1", "value": "0.71", "threshold": "x ≥ 0.5",
     "verdict": "holds", "note": "", "reason": "r", "profile": "smoke"},
    {"id": "03.2", "kind": "paper claim", "statement": "s2", "value": "0.9", "threshold": "x ≥ 0.5",
     "verdict": "holds", "note": "", "reason": "r", "profile": "smoke"},
    {"id": "03.3", "kind": "control", "statement": "s3", "value": "0.2", "threshold": "x ≥ 0.5",
     "verdict": "does not hold", "note": "", "reason": "r", "profile": "smoke"},
]


def test_a_paper_claim_whose_verdict_changes_between_reruns_is_inconclusive(tmp_path):
    _claims(tmp_path, ROWS)
    stab = pd.DataFrame([
        ("smoke", "threads=1", "threads", "03.1", "paper claim", "holds", "0.70"),
        ("smoke", "seed+1", "seed", "03.1", "paper claim", "does not hold", "0.42"),
        ("smoke", "threads=1", "threads", "03.2", "paper claim", "holds", "0.9"),
        ("smoke", "seed+1", "seed", "03.2", "paper claim", "holds", "0.88"),
        ("smoke", "seed+1", "seed", "03.3", "control", "holds", "0.6"),
        ("default", "seed+1", "seed", "03.2", "paper claim", "does not hold", "0.1"),   # another profile
    ], columns=ledger.STABILITY_COLUMNS)
    stab.to_csv(tmp_path / ledger.STABILITY_FILE, index=False)
    df = ledger.load_claims(tmp_path / "claims").set_index("id")
    assert df.loc["03.1", "verdict"] == "inconclusive"
    assert "seed+1: does not hold (0.42)" in df.loc["03.1", "note"]
    assert "published: holds (0.71)" in df.loc["03.1", "note"]
    assert df.loc["03.2", "verdict"] == "holds"                      # the same in every run of its profile
    assert df.loc["03.2", "stability"] == "threads=1: holds (0.9); seed+1: holds (0.88)"
    assert df.loc["03.3", "verdict"] == "does not hold"              # the rule is for paper claims only
    text = ledger.claims_md_text(tmp_path / "claims")
    assert "| reruns" in text and "threads=1: holds (0.70)" in text
    assert "1 of 2 paper claims hold (1 inconclusive)" in text


def test_without_a_stability_file_nothing_changes(tmp_path):
    _claims(tmp_path, ROWS)
    df = ledger.load_claims(tmp_path / "claims")
    assert list(df["verdict"]) == ["holds", "holds", "does not hold"]
    assert "reruns" not in ledger.claims_md_text(tmp_path / "claims")


def test_overrides_reach_the_config_through_the_kernels_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(profiles.OVERRIDES_ENV, json.dumps({"2": {"lds_seed": 3}, "01": {"seeds": [4, 5]}}))
    try:
        profiles.start("smoke", str(tmp_path))
        assert profiles.load("02", "smoke").lds_seed == 3 and profiles.load("01", "smoke").seeds == (4, 5)
        assert profiles.load("03", "smoke", seed=0).seed == 0
    finally:
        monkeypatch.delenv(profiles.OVERRIDES_ENV)
        profiles.start("smoke", str(tmp_path))
    assert profiles.load("02", "smoke").lds_seed == 0
    with pytest.raises(profiles.ProfileError, match="NNLENS_OVERRIDES must be JSON"):
        profiles.parse_overrides("lds_seed=3")


def test_every_study_is_rerun_with_one_and_two_threads_and_its_seed_field_moved():
    studies = list(profiles.studies())
    plan = {r.name: r for r in stability.reruns("smoke", studies)}
    assert plan["threads=1"].threads == 1 and plan["threads=2"].threads == 2
    assert plan["threads=1"].studies(studies) == studies
    seeds = plan["seed+1"].overrides
    assert set(seeds) == {"01", "02", "03", "04"} and plan["seed+1"].studies(studies) == ["01", "02", "03", "04"]
    for s, fields in seeds.items():                                  # every override is a valid config field
        for name, value in fields.items():
            assert getattr(profiles.load(s, "smoke", **fields), name) == value


def test_a_rerun_runs_into_its_own_folder_cache_and_overrides(tmp_path, monkeypatch):
    seen = {}

    def fake_reproduce(profile, studies, kernel, threads, force):
        seen.update(folder=stability.runner.final_reports_dir(profile), threads=threads, studies=studies,
                    overrides=os.environ[profiles.OVERRIDES_ENV], cache=os.environ["NNLENS_CACHE"])
        _claims(seen["folder"], ROWS[:1])
        return 0

    monkeypatch.setattr(stability.runner, "reproduce", fake_reproduce)
    before = stability.runner.final_reports_dir
    rerun = stability.Rerun("seed+1", "seed", overrides={"03": {"seed": 1}})
    folder = stability.run_rerun(rerun, "smoke", ["03", "04"], tmp_path / "scratch")
    assert stability.runner.final_reports_dir is before and profiles.OVERRIDES_ENV not in os.environ
    assert seen["folder"] == folder == tmp_path / "scratch" / "seed+1" and seen["studies"] == ["03"]
    assert json.loads(seen["overrides"]) == {"03": {"seed": 1}} and seen["cache"].endswith("seed+1")
    table = stability.collect({"seed+1": (rerun, folder)})
    assert list(table.columns) == ledger.STABILITY_COLUMNS and table.iloc[0]["verdict"] == "holds"


def _publish(folder, commit, threads=2, profile="smoke", studies=("03",)):
    _claims(folder, ROWS)
    (folder / "manifests").mkdir(parents=True, exist_ok=True)
    for s in studies:
        (folder / "manifests" / f"{s}.json").write_text(json.dumps({"profile": profile, "commit": commit}))
    (folder / "timings.json").write_text(json.dumps({"studies": {s: {"threads": threads} for s in studies}}))


def test_the_published_reports_are_the_reference_only_when_they_come_from_this_code(tmp_path, monkeypatch):
    monkeypatch.setattr(stability.paths, "published_dir", lambda profile: tmp_path)
    monkeypatch.setattr(stability.provenance, "code_commit", lambda: "abc1234")
    _publish(tmp_path, "abc1234")
    assert stability.published_reference("smoke", ["03"]) == tmp_path
    assert stability.published_reference("default", ["03"]) is None             # another profile's manifest
    assert stability.published_reference("smoke", ["03", "04"]) is None         # a study never published
    _publish(tmp_path, "0ld0000")
    assert stability.published_reference("smoke", ["03"]) is None               # older code
    _publish(tmp_path, "abc1234", threads=1)
    assert stability.published_reference("smoke", ["03"]) is None               # not the reference's threads
    monkeypatch.setattr(stability.provenance, "code_commit", lambda: "abc1234+dirty")
    _publish(tmp_path, "abc1234+dirty")
    assert stability.published_reference("smoke", ["03"]) is None               # uncommitted code: rerun


def test_stability_reuses_the_published_reference_and_runs_the_other_reruns(tmp_path, monkeypatch):
    published = tmp_path / "published"
    _publish(published, "abc1234")
    monkeypatch.setattr(stability.paths, "published_dir", lambda profile: published)
    monkeypatch.setattr(stability.provenance, "code_commit", lambda: "abc1234")
    ran = []

    def fake_run(rerun, profile, studies, scratch, kernel="nnlens", shared_cache=False):
        ran.append(rerun.name)
        folder = scratch / rerun.name
        rows = [dict(r, verdict="does not hold", value="0.1") if r["id"] == "03.1" and rerun.name == "seed+1" else r
                for r in ROWS]
        _claims(folder, rows)
        return folder

    monkeypatch.setattr(stability, "run_rerun", fake_run)
    target = stability.stability("smoke", "03", scratch=tmp_path / "scratch", jobs=1)
    assert ran == ["threads=1", "seed+1"]                                        # the reference was not rerun
    table = pd.read_csv(target)
    assert set(table["rerun"]) == {"threads=2", "threads=1", "seed+1"}
    assert "seed+1: does not hold (0.1)" in (published / "claims.md").read_text()   # the flip reaches the ledger
    ran.clear()
    stability.stability("smoke", "03", scratch=tmp_path / "scratch", jobs=1, reuse_published=False)
    assert ran == ["threads=2", "threads=1", "seed+1"]


def test_a_worker_process_runs_only_the_rerun_it_names(tmp_path, monkeypatch):
    ran = []
    monkeypatch.setattr(stability, "run_rerun", lambda r, profile, studies, scratch, kernel, shared: ran.append(
        (r.name, profile, studies, scratch)))
    assert stability.main(["--profile", "smoke", "--study", "03", "--reruns", "seed+1", "--scratch", str(tmp_path),
                           "--run-only"]) == 0
    assert ran == [("seed+1", "smoke", ["03"], tmp_path)]
