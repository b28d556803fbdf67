"""Exploring never overwrites published results: without NNLENS_REPORTS, outputs go to a scratch folder."""
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from nnlens import paths, plots, profiles, reports  # noqa: E402


@pytest.fixture
def by_hand(tmp_path, monkeypatch):
    """A notebook run by hand: no NNLENS_REPORTS; the repository's folders moved into tmp."""
    monkeypatch.delenv("NNLENS_REPORTS", raising=False)
    monkeypatch.setattr(paths, "REPORTS", tmp_path / "reports")
    monkeypatch.setattr(paths, "INTERACTIVE", tmp_path / ".scratch" / "interactive")
    monkeypatch.setattr(paths, "_ours", None)
    return tmp_path


def _published(root):
    return {p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_by_hand_outputs_go_to_scratch_and_say_so(by_hand, capsys):
    published = by_hand / "reports"
    (published / "smoke" / "bench").mkdir(parents=True)   # the runner publishes smoke into reports/smoke/
    (published / "smoke" / "bench" / "ntk.csv").write_text("method\nexplicit\n")
    (published / "claims.md").write_text("published\n")
    before = _published(published)

    assert profiles.resolve("smoke") == "smoke"
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and "smoke" in lines[0] and "make reproduce" in lines[0]
    scratch = by_hand / ".scratch" / "interactive" / "smoke"
    assert paths.reports_dir() == scratch and os.environ["NNLENS_REPORTS"] == str(scratch)
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    png, _ = plots.savefig(fig, "00_demo", close=True)
    ledger = reports.Ledger("01", "smoke")
    ledger.claim("01.1", "demo", value=1.0, threshold=">= 0", holds=True)
    ledger.save()
    assert png.parent == scratch / "figures" and (scratch / "claims.md").is_file()
    assert (scratch / "bench" / "ntk.csv").read_text() == "method\nexplicit\n"  # the runner's inputs, copied
    assert _published(published) == before

    # the same kernel rerun at another profile moves along; its files are kept apart
    profiles.resolve("default")
    assert paths.reports_dir() == by_hand / ".scratch" / "interactive" / "default"
    assert "'default'" in capsys.readouterr().out


def test_a_caller_that_sets_reports_decides(by_hand, monkeypatch, capsys):
    staging = by_hand / "staging"
    monkeypatch.setenv("NNLENS_REPORTS", str(staging))
    assert profiles.resolve("smoke") == "smoke"
    assert capsys.readouterr().out == ""
    assert paths.reports_dir() == staging and os.environ["NNLENS_REPORTS"] == str(staging)
    assert not (by_hand / ".scratch").exists()


def test_default_reports_dir_is_never_the_published_folder(by_hand, monkeypatch):
    monkeypatch.setenv("NNLENS_PROFILE", "smoke")
    assert paths.reports_dir() == by_hand / ".scratch" / "interactive" / "smoke"
    monkeypatch.delenv("NNLENS_PROFILE")
    assert paths.reports_dir() == by_hand / ".scratch" / "interactive" / "default"
    assert not (by_hand / "reports").exists()


def test_published_dir_follows_the_runner():
    from nnlens import runner

    for profile in profiles.PROFILES:
        assert paths.published_dir(profile) == runner.final_reports_dir(profile)
