"""Exploring never overwrites published results: a notebook run by hand writes to a scratch folder.

Where outputs go is a value (``report.Outputs``) that ``studies.profiles.start`` makes once, at the
notebook's edge; nothing writes an environment variable at run time.
"""
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from nnlens import paths, report  # noqa: E402
from nnlens.studies import profiles  # noqa: E402


@pytest.fixture
def by_hand(tmp_path, monkeypatch):
    """A notebook run by hand: no NNLENS_REPORTS; the repository's folders moved into tmp."""
    monkeypatch.delenv("NNLENS_REPORTS", raising=False)
    monkeypatch.setattr(paths, "REPORTS", tmp_path / "reports")
    monkeypatch.setattr(paths, "INTERACTIVE", tmp_path / ".scratch" / "interactive")
    return tmp_path


def _published(root):
    return {p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_by_hand_outputs_go_to_scratch_and_say_so(by_hand, capsys):
    published = by_hand / "reports"
    (published / "smoke" / "bench").mkdir(parents=True)   # the runner publishes smoke into reports/smoke/
    (published / "smoke" / "bench" / "ntk.csv").write_text("method\nexplicit\n")
    (published / "claims.md").write_text("published\n")
    before = _published(published)
    env_before = dict(os.environ)

    profile, out = profiles.start("smoke")
    assert profile == "smoke"
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and "smoke" in lines[0] and "make reproduce" in lines[0]
    scratch = by_hand / ".scratch" / "interactive" / "smoke"
    assert out.root == scratch and dict(os.environ) == env_before       # a value, not an environment variable
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    png, _ = out.savefig(fig, "00_demo", close=True)
    ledger = report.Ledger("01", "smoke", out)
    ledger.claim("01.1", "demo", value=1.0, threshold=">= 0", holds=True)
    ledger.save()
    assert png.parent == scratch / "figures" and (scratch / "claims.md").is_file()
    assert (scratch / "bench" / "ntk.csv").read_text() == "method\nexplicit\n"  # the runner's inputs, copied
    assert _published(published) == before

    # another profile gets its own folder
    _, out2 = profiles.start("default")
    assert out2.root == by_hand / ".scratch" / "interactive" / "default"
    assert "'default'" in capsys.readouterr().out


def test_the_runner_parameter_and_the_test_variables_decide(by_hand, monkeypatch, capsys):
    staging = by_hand / "staging"
    profile, out = profiles.start("default", str(staging))                  # papermill's parameter
    assert (profile, out.root) == ("default", staging) and capsys.readouterr().out == ""
    monkeypatch.setenv("NNLENS_REPORTS", str(by_hand / "nbval"))           # make test: nbval cannot inject
    monkeypatch.setenv("NNLENS_PROFILE", "smoke")
    profile, out = profiles.start("default")
    assert (profile, out.root) == ("smoke", by_hand / "nbval")
    assert not (by_hand / ".scratch").exists()


def test_unknown_profile_fails_with_the_valid_ones(by_hand):
    with pytest.raises(profiles.ProfileError, match="valid profiles: smoke, default, paper"):
        profiles.start("huge")


def test_published_dir_follows_the_runner():
    from nnlens.workbook import runner

    for profile in profiles.PROFILES:
        assert paths.published_dir(profile) == runner.final_reports_dir(profile)
